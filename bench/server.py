"""A real `crm serve` process and a lean HTTP/1.1 keep-alive load generator.

The load generator is a few dozen lines of asyncio streams rather than httpx: on a 2-core
machine the client shares the CPU with the server and PostgreSQL, so its own cost per request
must be small (it is measured and printed). Set-up calls (register, capture) use httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx

from bench.common import SECRET, say, url

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(dbname: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    # the benchmarks measure throughput, not the production rate limits
    env |= {"CRM_RATE_LIMIT_AUTH": "off", "CRM_RATE_LIMIT_ORG": "off"}
    env |= {"CRM_PROVIDER_PRIVATE_URLS": "on"}  # the bench's provider servers are local
    # no SMTP server: the registrations' mails are written as files, out of the checkout
    env |= {"CRM_MAIL_DIR": str(Path(tempfile.gettempdir()) / "crm-bench-mail")}
    env |= {"CRM_DATABASE_URL": url(dbname), "CRM_SECRET_KEY": SECRET, **extra}
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _crm() -> str:
    exe = VENV_BIN / "crm"
    return str(exe) if exe.exists() else "crm"


@contextmanager
def crm_server(dbname: str, *, projections: bool = True, **extra_env: str) -> Iterator[Server]:
    """`crm migrate` then `crm serve --port N` as a child process; always stopped afterwards."""
    env = server_env(dbname, **extra_env)
    subprocess.run([_crm(), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finally
        prefix="crm-bench-server-", suffix=".log", delete=False
    )
    args = [_crm(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if os.environ.get("CRM_BENCH_WORKERS"):  # several server processes (CPU shown: supervisor's)
        args += ["--workers", os.environ["CRM_BENCH_WORKERS"]]
    if not projections:
        args.append("--no-projections")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, port, Path(log.name))
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"crm serve exited with {process.returncode}:\n{server.log_tail()}"
                )
            try:
                if httpx.get(server.base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"crm serve did not answer /health:\n{server.log_tail()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


# --------------------------------------------------------------------------- set-up via httpx


@dataclass
class Tenant:
    organization_id: str
    user_id: str
    token: str
    position: int = 0
    stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Org-Id": self.organization_id}


def register(client: httpx.Client, name: str) -> Tenant:
    response = client.post(
        "/auth/register",
        json={
            "email": f"{uuid4().hex[:12]}@bench.example.com",
            "password": "correct horse battery staple",
            "full_name": f"Owner of {name}",
            "organization_name": name,
        },
    )
    response.raise_for_status()
    body = response.json()
    tenant = Tenant(
        body["organization_id"], body["user_id"], body["access_token"], body["position"]
    )
    stages = client.get(
        "/crm/pipeline/stages",
        headers=tenant.headers | {"X-Min-Position": str(tenant.position)},
    )
    stages.raise_for_status()
    tenant.stages = stages.json()
    if not tenant.stages:  # projectors not running here: the default stages' ids are derived
        tenant.stages = default_stages(tenant.organization_id)
    return tenant


def default_stages(organization_id: str) -> list[dict[str, Any]]:
    from domain.pipeline import Pipeline
    from domain.values import Actor

    pipeline = Pipeline.create_default(
        organization_id=UUID(organization_id), actor=Actor(kind="system", id="bench")
    )
    return [
        {"id": str(s.id), "name": s.name, "stage_type": str(s.stage_type)} for s in pipeline.stages
    ]


def capture(client: httpx.Client, tenant: Tenant, n: int) -> list[tuple[str, int]]:
    """Capture n leads; return (id, version) of each."""
    out = []
    for i in range(n):
        response = client.post(
            "/crm/leads",
            headers=tenant.headers,
            json={
                "full_name": f"Bench Lead {i}",
                "company": "Bench Ltd",
                "email": f"lead{i}@bench.example.com",
                "estimated_value": "1250.00",
            },
        )
        response.raise_for_status()
        body = response.json()
        tenant.position = max(tenant.position, body["position"])
        out.append((body["id"], body["version"]))
    return out


# --------------------------------------------------------------------------- raw HTTP client


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.reader is None:
            await self.open()
        assert self.writer is not None and self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        response_headers = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                response_headers[k.strip().lower()] = v.strip()
        length = int(response_headers.get("content-length", "0"))
        data = await self.reader.readexactly(length) if length else b""
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
            self.reader = self.writer = None
        return status, response_headers, data


@dataclass
class MoveWorker:
    """One connection moving its own leads back and forth between two open stages."""

    tenant: Tenant
    leads: list[list[Any]]  # [id, version, index into `targets`]
    targets: list[str]  # two open stage ids
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    measuring: bool = False
    count: int = 0

    async def run(self, conn: HttpConnection, stop: Callable[[], bool]) -> None:
        headers = self.tenant.headers
        i = 0
        while not stop():
            lead = self.leads[i % len(self.leads)]
            i += 1
            target = self.targets[(lead[2] + 1) % len(self.targets)]
            body = json.dumps({"stage_id": target, "expected_version": lead[1]}).encode()
            t0 = time.perf_counter()
            status, _, data = await conn.request(
                "PATCH", f"/crm/leads/{lead[0]}/stage", headers, body
            )
            elapsed = time.perf_counter() - t0
            if status == 200:
                written = json.loads(data)
                lead[1] = written["version"]
                lead[2] += 1
                self.tenant.position = max(self.tenant.position, written["position"])
                if self.measuring:
                    self.latencies.append(elapsed)
                    self.count += 1
            else:
                self.errors[status] = self.errors.get(status, 0) + 1
                if status == 409:  # should not happen: resynchronise the version
                    lead[1] = json.loads(data).get("current_version", lead[1])
                if sum(self.errors.values()) > 50:
                    raise RuntimeError(f"too many HTTP errors: {self.errors} {data[:300]!r}")


@dataclass
class LoadResult:
    commands: int
    seconds: float
    latencies: list[float]
    errors: dict[int, int]

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds > 0 else 0.0


def drive_moves(
    port: int,
    workers: list[MoveWorker],
    *,
    warmup: float,
    seconds: float,
    meter: Any = None,
) -> LoadResult:
    """Run every worker on its own connection: `warmup` unmeasured, then `seconds` measured."""

    async def main() -> LoadResult:
        conns = [HttpConnection("127.0.0.1", port) for _ in workers]
        for c in conns:
            await c.open()
        phase = {"stop": False}
        tasks = [
            asyncio.create_task(w.run(c, lambda: phase["stop"]))
            for w, c in zip(workers, conns, strict=True)
        ]
        try:
            await _sleep_or_fail(warmup, tasks)
            if meter is not None:
                meter.__enter__()
            t0 = time.perf_counter()
            for w in workers:
                w.measuring = True
            await _sleep_or_fail(seconds, tasks)
            for w in workers:
                w.measuring = False
            elapsed = time.perf_counter() - t0
            if meter is not None:
                meter.__exit__(None, None, None)
            phase["stop"] = True
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        finally:
            for t in tasks:
                t.cancel()
            for c in conns:
                await c.close()
        latencies = [x for w in workers for x in w.latencies]
        errors: dict[int, int] = {}
        for w in workers:
            for k, v in w.errors.items():
                errors[k] = errors.get(k, 0) + v
        return LoadResult(sum(w.count for w in workers), elapsed, latencies, errors)

    return asyncio.run(main())


async def _sleep_or_fail(seconds: float, tasks: list[asyncio.Task[None]]) -> None:
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for t in done:
        if t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
        raise RuntimeError("a load worker stopped early")


def prepare_movers(
    base: str, tenants: list[Tenant], conns_per_tenant: int, leads_per_conn: int
) -> list[MoveWorker]:
    """Capture each connection's own leads through HTTP; moves go between two open stages."""
    workers = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for tenant in tenants:
            open_stages = [s["id"] for s in tenant.stages if s["stage_type"] == "open"]
            targets = open_stages[:2]
            for _ in range(conns_per_tenant):
                leads = capture(client, tenant, leads_per_conn)
                workers.append(MoveWorker(tenant, [[i, v, 0] for i, v in leads], targets))
    say(
        f"    set-up: {len(tenants)} org(s), {len(workers)} connections, "
        f"{len(workers) * leads_per_conn} leads captured over HTTP"
    )
    return workers
