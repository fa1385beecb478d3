"""`crm serve` as a real process, driven over HTTP: SQLite with in-process projectors,
PostgreSQL split into an API process and a projector process, and `make run` as it is typed."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from click.testing import CliRunner

from interfaces.cli import main
from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.settings import load_settings
from tests.support.databases import scratch_postgres

SECRET = "process-test-secret-key-of-at-least-32-chars"
CRM = str(Path(sys.executable).with_name("crm"))
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**crm: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return env | {"PYTHONUNBUFFERED": "1"} | crm


@dataclass
class Proc:
    """A `crm` child process whose output goes to a file (read it when something fails)."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    popen: subprocess.Popen[bytes] = field(init=False)
    log: IO[str] = field(init=False)

    def __post_init__(self) -> None:
        self.log = (self.cwd / f"{self.args[0]}-{time.monotonic_ns()}.log").open("w+")
        self.popen = subprocess.Popen(
            [CRM, *self.args], env=self.env, cwd=self.cwd, stdout=self.log, stderr=self.log
        )

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        """SIGTERM, then the exit status of a graceful shutdown."""
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.args} ignored SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def wait_healthy(base: str, server: Proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.popen.poll() is None, f"the server exited:\n{server.output()}"
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no healthy answer within {timeout}s:\n{server.output()}")


class Api:
    """One user's session: bearer token, organization header, and read-your-writes position."""

    def __init__(self, http: httpx.Client, body: dict[str, Any]) -> None:
        self.http = http
        self.position = int(body["position"])
        self.headers = {
            "Authorization": f"Bearer {body['access_token']}",
            "X-Org-Id": body["organization_id"],
        }

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        headers = self.headers | {"X-Min-Position": str(self.position)}
        response = self.http.request(method, path, headers=headers, **kw)
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        assert "X-Stale" not in response.headers, f"{method} {path} answered stale"
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("position"), int):
            self.position = max(self.position, body["position"])
        return body


def items(body: Any) -> list[dict[str, Any]]:
    return list(body["items"] if isinstance(body, dict) else body)


def drive(base: str) -> None:
    """The manager's first day over real HTTP, reading each write back."""
    with httpx.Client(base_url=base, timeout=15) as http:
        registered = http.post(
            "/auth/register",
            json={
                "email": f"owner-{time.monotonic_ns()}@process.example",
                "password": "correct horse battery",
                "full_name": "Process Owner",
                "organization_name": "Process Org",
            },
        )
        assert registered.status_code == 201, registered.text
        api = Api(http, registered.json())
        stages = api.call("GET", "/crm/pipeline/stages", 200)
        assert [s["name"] for s in stages][:2] == ["Lead", "Contact"]
        lead = api.call("POST", "/crm/leads", 201, json={"full_name": "Ana", "company": "Costa"})
        moved = api.call(
            "PATCH",
            f"/crm/leads/{lead['id']}/stage",
            200,
            json={"stage_id": stages[1]["id"], "expected_version": lead["version"]},
        )
        assert moved["version"] == lead["version"] + 1
        assert moved["position"] > lead["position"]
        board = api.call("GET", "/crm/pipeline/board", 200)
        contact = next(s for s in board["stages"] if s["id"] == stages[1]["id"])
        assert [card["id"] for card in contact["leads"]] == [lead["id"]]
        activities = items(api.call("GET", f"/crm/leads/{lead['id']}/activities", 200))
        assert {a["version"] for a in activities} == {1, 2}
        audit = items(api.call("GET", "/audit/events", 200, params={"resource_id": lead["id"]}))
        assert sorted(e["version"] for e in audit) == [1, 2]
        schema = http.get("/schema/openapi.json")
        assert schema.status_code == 200
        assert "/crm/leads/{lead_id}/stage" in schema.json()["paths"]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    with scratch_postgres("crm_test_proc") as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_crm_serve_answers_the_contract_as_a_real_process(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/crm.db"
    else:
        url = request.getfixturevalue("postgres_database")
    crm = {"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": SECRET, "CRM_THREADS": "4"}
    settings = load_settings(crm)
    engine = make_engine(settings)
    migrate(settings, engine)
    engine.dispose()
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    procs: list[Proc] = []
    try:
        if backend == "postgres":  # the split deployment: API and projectors apart
            procs.append(Proc(["projections", "run"], child_env(**crm), tmp_path))
            serve.append("--no-projections")
        procs.append(server := Proc(serve, child_env(**crm), tmp_path))
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        drive(base)
        for proc in reversed(procs):
            assert proc.stop() == 0, proc.output()
    finally:
        for proc in procs:
            proc.kill()
    assert "Application shutdown complete" in server.output()
    assert "Traceback" not in "".join(p.output() for p in procs)
    if backend == "postgres":
        assert "projectors stopped" in procs[0].output()


def test_make_run_serves_the_seeded_demo_from_the_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`crm migrate && crm seed-demo && crm serve` with no CRM_ variable, as `make run` does
    (the first two through click in this process, to save two interpreter start-ups)."""
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(name)
    for command in ("migrate", "seed-demo"):
        result = CliRunner().invoke(main, [command])
        assert result.exit_code == 0, result.output
    login = re.search(r"login: (\S+)", result.stdout)
    password = re.search(r"password: (\S+)", result.stdout)
    assert login and password, result.stdout
    assert (tmp_path / "var" / "crm.db").exists()
    port = free_port()
    server = Proc(["serve", "--host", "127.0.0.1", "--port", str(port)], child_env(), tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        response = httpx.post(
            f"{base}/auth/login",
            json={"email": login.group(1), "password": password.group(1)},
            timeout=15,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["access_token"]
        assert [o["name"] for o in body["organizations"]] == ["Demo Organization"]
        assert server.stop() == 0, server.output()
    finally:
        server.kill()


def test_crm_serve_with_workers_serves_from_several_processes_and_one_projector(
    tmp_path: Path, postgres_database: str
) -> None:
    crm = {"CRM_DATABASE_URL": postgres_database, "CRM_SECRET_KEY": SECRET, "CRM_THREADS": "4"}
    settings = load_settings(crm)
    engine = make_engine(settings)
    migrate(settings, engine)
    engine.dispose()
    port = free_port()
    server = Proc(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        child_env(**crm),
        tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        drive(base)  # reads after writes wait on the projector child through the positions table
        assert server.stop() == 0, server.output()
    finally:
        server.kill()
    output = server.output()
    assert output.count("Application startup complete") == 2, output
    assert "projectors stopped" in output
    assert "Traceback" not in output
