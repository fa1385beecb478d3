"""The live stream against a real `crm serve` (test clients buffer whole responses): SQLite with
the in-process fan-out, PostgreSQL with Redis pub/sub. Members hear their organization only."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.settings import load_settings
from tests.interfaces.test_process import SECRET, Proc, child_env, free_port, wait_healthy
from tests.support.databases import REDIS_URL, redis_available, scratch_postgres

pytestmark = pytest.mark.slow
QUIET = 1.0  # how long a stream that must hear nothing is listened to


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server per backend for the module; it must stop cleanly once the streams closed."""
    tmp = tmp_path_factory.mktemp("live")
    crm = {"CRM_SECRET_KEY": SECRET, "CRM_THREADS": "4", "CRM_RATE_LIMIT_AUTH": "off"}
    with ExitStack() as stack:
        if request.param == "sqlite":
            crm["CRM_DATABASE_URL"] = f"sqlite:///{tmp}/crm.db"
        else:
            if not redis_available():
                pytest.skip("Redis is not reachable on 127.0.0.1:6379")
            crm["CRM_DATABASE_URL"] = stack.enter_context(scratch_postgres("crm_test_live"))
            crm["CRM_REDIS_URL"] = REDIS_URL
        settings = load_settings(crm)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        port = free_port()
        server = Proc(["serve", "--host", "127.0.0.1", "--port", str(port)], child_env(**crm), tmp)
        stack.callback(server.kill)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server)
        yield url
        assert server.stop() == 0, server.output()
        assert "Traceback" not in server.output()


class Member:
    def __init__(self, base: str, name: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=15)
        body = self.http.post(
            "/auth/register",
            json={
                "email": f"{name.lower()}-{time.monotonic_ns()}@live.example",
                "password": "correct horse battery",
                "full_name": name,
                "organization_name": name,
            },
        ).json()
        self.organization_id: str = body["organization_id"]
        self.headers = {
            "Authorization": f"Bearer {body['access_token']}",
            "X-Org-Id": self.organization_id,
        }

    def capture(self) -> dict[str, Any]:
        response = self.http.post("/crm/leads", headers=self.headers, json={"full_name": "Ana"})
        assert response.status_code == 201, response.text
        lead: dict[str, Any] = response.json()
        return lead

    def ticket(self) -> str:
        response = self.http.post("/events/ticket", headers=self.headers)
        assert response.status_code == 200, response.text
        ticket: str = response.json()["ticket"]
        return ticket


class EventStream:
    """Reads `GET /events/stream` on a thread and queues each event (comments included)."""

    def __init__(self, base: str, **request: Any) -> None:
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.status: queue.Queue[int] = queue.Queue()
        self.sock: socket.socket | None = None
        self.http = httpx.Client(base_url=base, timeout=httpx.Timeout(5, read=60))
        self.thread = threading.Thread(target=self._read, kwargs=request, daemon=True)
        self.thread.start()
        assert self.status.get(timeout=10) == 200
        assert self.next()["event"] == "ready"  # subscribed: nothing published from now is lost

    def _read(self, **request: Any) -> None:
        try:
            with self.http.stream("GET", "/events/stream", **request) as response:
                self.sock = response.extensions["network_stream"].get_extra_info("socket")
                self.status.put(response.status_code)
                event: dict[str, str] = {}
                for line in response.iter_lines():
                    if line:
                        name, _, value = line.partition(":")
                        event[name or "comment"] = value.removeprefix(" ")
                    elif event:
                        self.events.put(event)
                        event = {}
        except httpx.HTTPError:
            pass  # closed by the test

    def next(self, timeout: float = 10) -> dict[str, str]:
        return self.events.get(timeout=timeout)

    def changes(self, until: float) -> list[dict[str, Any]]:
        """Change messages received within `until` seconds (pings skipped)."""
        found = []
        deadline = time.monotonic() + until
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.next(left)
            except queue.Empty:
                break
            if "data" in event and "event" not in event:
                found.append(json.loads(event["data"]))
        return found

    def wait_for(self, aggregate_id: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while not any(c["aggregate_id"] == aggregate_id for m in seen for c in m["changes"]):
            event = self.next()
            if "data" in event and "event" not in event:
                seen.append(json.loads(event["data"]))
        return seen

    def close(self) -> None:
        if self.sock is not None:  # wakes the reading thread; the server sees the disconnect
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=10)
        self.http.close()


def test_a_member_streams_their_organizations_changes_and_nobody_elses(base: str) -> None:
    acme, other = Member(base, "Acme"), Member(base, "Other")
    mine = EventStream(base, headers=acme.headers)
    theirs = EventStream(base, params={"ticket": other.ticket()})  # as a browser's EventSource
    try:
        lead = acme.capture()
        seen = mine.wait_for(lead["id"])
        assert {m["organization_id"] for m in seen} == {acme.organization_id}
        leads = next(m for m in seen if lead["id"] in json.dumps(m["changes"]))
        change = {
            "event": "Lead.Captured",
            "aggregate_id": lead["id"],
            "position": lead["position"],
        }
        assert change in leads["changes"]
        assert leads["truncated"] is False and leads["position"] >= lead["position"]
        heard = theirs.changes(QUIET)
        assert {m["organization_id"] for m in heard} <= {other.organization_id}
        theirs_lead = other.capture()
        assert theirs.wait_for(theirs_lead["id"])
        assert theirs_lead["id"] not in json.dumps(mine.changes(QUIET))
    finally:
        mine.close()
        theirs.close()


def test_a_ticket_is_bound_to_its_organization_on_a_real_server(base: str) -> None:
    acme, other = Member(base, "Acme"), Member(base, "Other")
    params = {"ticket": acme.ticket(), "org": other.organization_id}
    assert httpx.get(f"{base}/events/stream", params=params, timeout=5).status_code == 403
    params = {"ticket": "nonsense"}
    assert httpx.get(f"{base}/events/stream", params=params, timeout=5).status_code == 401


def test_the_websocket_delivers_the_same_messages_and_refuses_without_a_ticket(base: str) -> None:
    acme = Member(base, "Acme")
    ws_base = base.replace("http://", "ws://")
    with connect(f"{ws_base}/ws?ticket={acme.ticket()}", open_timeout=10) as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert ready == {"ready": True, "organization_id": acme.organization_id}
        lead = acme.capture()
        seen: list[dict[str, Any]] = []
        while not any(c["aggregate_id"] == lead["id"] for m in seen for c in m["changes"]):
            seen.append(json.loads(ws.recv(timeout=10)))
        assert {m["organization_id"] for m in seen} == {acme.organization_id}
    with connect(f"{ws_base}/ws?ticket=nonsense", open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4401


def test_an_inbound_whatsapp_message_reaches_its_organizations_inbox_live_only(base: str) -> None:
    from tests.support.webhooks import meta_message, meta_payload, meta_signature

    acme, other = Member(base, "Acme"), Member(base, "Other")
    setup = {
        "provider": "business_api",
        "phone_number_id": "106540352242922",
        "access_token": "token",
        "app_secret": "live-app-secret",
        "verify_token": "verify",
    }
    for member in (acme, other):
        response = member.http.post(
            "/integrations/whatsapp/setup", headers=member.headers, json=setup
        )
        assert response.status_code == 200, response.text
    mine = EventStream(base, params={"ticket": acme.ticket()})
    theirs = EventStream(base, params={"ticket": other.ticket()})
    try:
        body = meta_payload([meta_message("wamid.LIVE1", "5511987654321", "Chegou?")])
        response = acme.http.post(
            f"/webhooks/whatsapp/{acme.organization_id}",
            content=body,
            headers=meta_signature("live-app-secret", body),
        )
        assert response.status_code == 200, response.text
        seen: list[dict[str, Any]] = []
        while not any(
            c["event"] == "Conversation.MessageReceived" for m in seen for c in m["changes"]
        ):
            event = mine.next()
            if "data" in event and "event" not in event:
                seen.append(json.loads(event["data"]))
        assert {m["organization_id"] for m in seen} == {acme.organization_id}
        assert "conversations" in {m["projection"] for m in seen}
        inbox = acme.http.get(
            "/crm/conversations",
            headers=acme.headers | {"X-Min-Position": str(max(m["position"] for m in seen))},
        ).json()["items"]
        assert [c["last_message_preview"] for c in inbox] == ["Chegou?"]
        assert theirs.changes(QUIET) == []
    finally:
        mine.close()
        theirs.close()
