"""`crm serve --workers 2` as real processes: a scrape of any worker sums every worker's requests
and live connections (prometheus_client's multiprocess mode, under a directory the serve command
makes and removes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.settings import load_settings
from tests.interfaces.test_live_stream import EventStream, Member
from tests.interfaces.test_process import SECRET, Proc, child_env, free_port, wait_healthy

pytestmark = pytest.mark.slow
OPS_TOKEN = "process-ops-token-0123456789abcdef"
OPERATOR = {"Authorization": f"Bearer {OPS_TOKEN}"}


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape on a new connection (so any worker may answer it)."""
    response = httpx.get(f"{base}/metrics", headers=OPERATOR, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def live(base: str, transport: str) -> float:
    return scrape(base).get(("crm_live_connections", (("transport", transport),)), -1)


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_scrape_of_any_worker_sums_every_workers_requests_and_live_connections(
    tmp_path: Path,
) -> None:
    crm = {
        "CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db",
        "CRM_SECRET_KEY": SECRET,
        "CRM_THREADS": "2",
        "CRM_OPS_TOKEN": OPS_TOKEN,
        "CRM_RATE_LIMIT_AUTH": "off",
    }
    settings = load_settings(crm)
    engine = make_engine(settings)
    migrate(settings, engine)
    engine.dispose()
    port = free_port()
    env = child_env(**crm) | {"TMPDIR": str(tmp_path)}  # where serve makes its metrics directory
    server = Proc(
        ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], env, tmp_path
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, server)
        (metrics_dir,) = tmp_path.glob("crm-metrics-*")

        def writers() -> set[str]:
            return {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}

        sent = 0
        while len(writers()) < 2 and sent < 400:  # new connections until both workers answered
            assert httpx.get(f"{base}/database/info", headers=OPERATOR).status_code == 200
            sent += 1
        assert len(writers()) == 2, f"one worker answered all {sent} requests"
        key = (
            "crm_http_requests_total",
            (("method", "GET"), ("route", "/database/info"), ("status", "200")),
        )
        for _ in range(6):  # whichever worker answers the scrape, it counts every worker's
            assert scrape(base)[key] == sent

        member = Member(base, "Acme")
        stream = EventStream(base, headers=member.headers)
        try:
            assert all(live(base, "sse") == 1 for _ in range(4))
            ws_base = base.replace("http://", "ws://")
            with connect(f"{ws_base}/ws?ticket={member.ticket()}", open_timeout=10) as ws:
                assert json.loads(ws.recv(timeout=10))["ready"] is True
                assert all(live(base, "websocket") == 1 for _ in range(4))
            assert eventually(lambda: live(base, "websocket") == 0)
        finally:
            stream.close()
        assert eventually(lambda: live(base, "sse") == 0)
        assert server.stop() == 0, server.output()
    finally:
        server.kill()
    output = server.output()
    assert "Traceback" not in output, output
    assert not list(tmp_path.glob("crm-metrics-*")), "the metrics directory outlived the server"
