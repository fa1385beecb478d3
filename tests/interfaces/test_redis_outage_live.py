"""A real `crm serve` whose Redis (the test's own redis-server) stops and starts again: the live
stream stays open on the process's own fan-out, tells its reader to refetch when Redis is back,
and Redis carries the changes again — no restart, no traceback, one log line each way."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from interfaces.database import make_engine
from interfaces.live import channel
from interfaces.migrate import migrate
from interfaces.settings import load_settings
from tests.interfaces.test_live_stream import EventStream, Member
from tests.interfaces.test_process import SECRET, Proc, child_env, free_port, wait_healthy
from tests.support.redis_server import PASSWORD, own_redis

pytestmark = pytest.mark.slow


def health_becomes(base: str, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base}/health", timeout=5)
        body: dict[str, Any] = response.json()
        if body["status"] == status:
            assert response.status_code == 200
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def until_resync(stream: EventStream) -> list[dict[str, Any]]:
    """The changes a stream delivers until it says `resync` (then it ends)."""
    changes = []
    while (event := stream.next(timeout=10)).get("event") != "resync":
        if "data" in event and "event" not in event:
            changes.append(json.loads(event["data"]))
    return changes


def test_live_updates_fall_back_to_the_process_while_redis_is_down_and_use_it_when_back(
    tmp_path: Path,
) -> None:
    with own_redis() as redis_server, ExitStack() as stack:
        crm = {
            "CRM_SECRET_KEY": SECRET,
            "CRM_THREADS": "4",
            "CRM_RATE_LIMIT_AUTH": "off",
            "CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db",
            "CRM_REDIS_URL": redis_server.url,
        }
        settings = load_settings(crm)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        port = free_port()
        server = Proc(
            ["serve", "--host", "127.0.0.1", "--port", str(port)], child_env(**crm), tmp_path
        )
        stack.callback(server.kill)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, server)
        acme = Member(base, "Acme")
        opened_up = EventStream(base, headers=acme.headers)
        stack.callback(opened_up.close)
        opened_up.wait_for(acme.capture()["id"])

        redis_server.stop()
        during = acme.capture()  # 201: a command, and its projection, go on
        opened_up.wait_for(during["id"])  # in-process fan-out
        opened_down = EventStream(base, params={"ticket": acme.ticket()})
        stack.callback(opened_down.close)
        later = acme.capture()
        opened_down.wait_for(later["id"])
        assert health_becomes(base, "degraded")["dependencies"]["redis"]["status"] == "unhealthy"

        redis_server.start()
        health_becomes(base, "healthy")
        until_resync(opened_up)  # others' changes of the outage went elsewhere: refetch
        until_resync(opened_down)
        listener = redis_server.client().pubsub()
        listener.subscribe(channel(UUID(acme.organization_id)))
        assert listener.get_message(timeout=2)["type"] == "subscribe"
        fresh = EventStream(base, headers=acme.headers)
        stack.callback(fresh.close)
        back = acme.capture()
        fresh.wait_for(back["id"])
        heard = []  # published on Redis again
        deadline = time.monotonic() + 10
        while back["id"] not in json.dumps(heard) and time.monotonic() < deadline:
            found = listener.get_message(timeout=1)
            if found and found["type"] == "message":
                heard.append(json.loads(found["data"]))
        assert back["id"] in json.dumps(heard)
        listener.close()
        for stream in (fresh, opened_down, opened_up):
            stream.close()

        assert server.stop() == 0
        output = server.output()
    assert "Traceback" not in output, output
    assert PASSWORD not in output
    assert output.count("does not answer") == 1, output
    assert output.count("answers again") == 1, output
