"""A notification reaches its member's live stream and no other member's, on a real `crm serve`:
SQLite with the in-process fan-out, and PostgreSQL with Redis pub/sub (the test's own
redis-server). Members join through the invitation mail, as people do."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.settings import load_settings
from tests.interfaces.test_live_stream import EventStream, Member
from tests.interfaces.test_process import SECRET, Proc, child_env, free_port, wait_healthy
from tests.support import mailbox
from tests.support.databases import scratch_postgres
from tests.support.redis_server import own_redis

pytestmark = pytest.mark.slow
QUIET = 1.5  # how long a stream that must hear no notification is listened to


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A server per backend for the module, and the directory its mails are written to."""
    tmp = tmp_path_factory.mktemp("notifications-live")
    mail_dir = tmp / "mail"
    crm = {
        "CRM_SECRET_KEY": SECRET,
        "CRM_THREADS": "4",
        "CRM_RATE_LIMIT_AUTH": "off",
        "CRM_MAIL_DIR": str(mail_dir),
    }
    with ExitStack() as stack:
        if request.param == "sqlite":
            crm["CRM_DATABASE_URL"] = f"sqlite:///{tmp}/crm.db"
        else:
            crm["CRM_DATABASE_URL"] = stack.enter_context(scratch_postgres("crm_test_notelive"))
            crm["CRM_REDIS_URL"] = stack.enter_context(own_redis()).url
        settings = load_settings(crm)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        port = free_port()
        proc = Proc(["serve", "--host", "127.0.0.1", "--port", str(port)], child_env(**crm), tmp)
        stack.callback(proc.kill)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        yield url, mail_dir
        assert proc.stop() == 0, proc.output()
        assert "Traceback" not in proc.output()


class Joiner:
    """A person who joins `owner`'s organization through the mailed invitation."""

    def __init__(self, base: str, mail_dir: Path, owner: Member, name: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=15)
        email = f"{name.lower()}-{time.monotonic_ns()}@live.example"
        invited = owner.http.post(
            "/organizations/invite-member",
            headers=owner.headers,
            json={"email": email, "role": "sales"},
        )
        assert invited.status_code in (200, 201), invited.text
        token = mailbox.link_token(mail_dir, email, "/accept-invitation")
        body = self.http.post(
            "/organizations/invitations/accept",
            json={"token": token, "full_name": name, "password": "correct horse battery"},
        ).json()
        self.user_id: str = body["user_id"]
        self.organization_id: str = body["organization_id"]
        self.headers = {
            "Authorization": f"Bearer {body['access_token']}",
            "X-Org-Id": self.organization_id,
        }

    def ticket(self) -> str:
        response = self.http.post("/events/ticket", headers=self.headers)
        assert response.status_code == 200, response.text
        ticket: str = response.json()["ticket"]
        return ticket


def notifications(stream: EventStream, until: float) -> list[dict[str, Any]]:
    """The notification messages a stream delivers within `until` seconds."""
    found = []
    deadline = time.monotonic() + until
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = stream.next(left)
        except queue.Empty:
            break
        if "data" in event and "event" not in event:
            message = json.loads(event["data"])
            if message.get("type") == "notification.created":
                found.append(message)
    return found


def first_notification(stream: EventStream, timeout: float = 15) -> dict[str, Any]:
    found = notifications(stream, timeout)
    assert found, "no notification arrived"
    return found[0]


def test_a_notification_reaches_its_members_stream_and_no_other_members(
    server: tuple[str, Path],
) -> None:
    base, mail_dir = server
    owner = Member(base, "Acme")
    rep = Joiner(base, mail_dir, owner, "Rep")
    peer = Joiner(base, mail_dir, owner, "Peer")
    rival = Member(base, "Rival")
    streams = {
        "rep": EventStream(base, params={"ticket": rep.ticket()}),  # as a browser's EventSource
        "peer": EventStream(base, headers=peer.headers),
        "owner": EventStream(base, headers=owner.headers),
        "rival": EventStream(base, headers=rival.headers),
    }
    try:
        lead = owner.capture()
        assigned = owner.http.put(
            f"/crm/leads/{lead['id']}/assign",
            headers=owner.headers,
            json={"user_id": rep.user_id},
        )
        assert assigned.status_code == 200, assigned.text
        message = first_notification(streams["rep"])
        assert (message["user_id"], message["organization_id"]) == (
            rep.user_id,
            owner.organization_id,
        )
        note = message["notification"]
        assert (note["kind"], note["link"]) == ("lead_assigned", f"/crm/leads/{lead['id']}")
        listed = rep.http.get(
            "/notifications",
            headers=rep.headers | {"X-Min-Position": str(message["position"])},
        ).json()["items"]
        assert [n["id"] for n in listed] == [note["id"]]
        # the others' streams go on hearing the organization's changes, never her notification
        seen = streams["peer"].wait_for(lead["id"])
        assert "notification" not in json.dumps(seen)
        for name in ("peer", "owner", "rival"):
            assert notifications(streams[name], QUIET) == [], name
    finally:
        for stream in streams.values():
            stream.close()


def test_the_websocket_carries_the_members_own_notifications_too(
    server: tuple[str, Path],
) -> None:
    base, mail_dir = server
    owner = Member(base, "Acme")
    rep = Joiner(base, mail_dir, owner, "Rep")
    ws_base = base.replace("http://", "ws://")
    with connect(f"{ws_base}/ws?ticket={rep.ticket()}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["ready"] is True
        lead = owner.capture()
        assigned = owner.http.put(
            f"/crm/leads/{lead['id']}/assign",
            headers=owner.headers,
            json={"user_id": rep.user_id},
        )
        assert assigned.status_code == 200, assigned.text
        deadline = time.monotonic() + 15
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            frame = json.loads(ws.recv(timeout=15))
            if frame.get("type") == "notification.created":
                found.append(frame)
        assert [f["user_id"] for f in found] == [rep.user_id]
        assert found[0]["notification"]["link"] == f"/crm/leads/{lead['id']}"
