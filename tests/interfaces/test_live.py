"""Projected changes are announced per organization: on Redis, or in-process without it.

The live routes' refusals and the WebSocket are tested in-process here; the never-ending event
stream needs a real server (test_live_stream.py).
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
import redis
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.live import MAX_CHANGES, LocalPublisher, channel
from interfaces.services import Services, build_services
from projections.base import Envelope
from tests.conftest import SECRET, settings_for
from tests.support.api import Tenant, add_member, register
from tests.support.databases import REDIS_URL, redis_available


@pytest.fixture
def redis_client(database_url: str) -> Iterator[TestClient[Any]]:
    if not redis_available():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")
    services = build_services(settings_for(database_url, CRM_REDIS_URL=REDIS_URL))
    with TestClient(create_app(services, own_services=True)) as client:
        yield client


def test_a_captured_lead_is_announced_on_its_organizations_redis_channel_only(
    redis_client: TestClient[Any],
) -> None:
    acme = register(redis_client, "Acme")
    other = register(redis_client, "Other")
    subscriber = redis.Redis.from_url(REDIS_URL).pubsub()
    subscriber.subscribe(channel(UUID(acme.organization_id)), channel(UUID(other.organization_id)))
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"
    lead = acme.capture()
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        m["projection"] == "leads" and m["position"] >= lead["position"] for m in seen
    ):
        msg = subscriber.get_message(timeout=1)
        if msg and msg["type"] == "message":
            seen.append(json.loads(msg["data"]) | {"channel": msg["channel"].decode()})
    subscriber.close()
    assert all(m["channel"] == channel(UUID(m["organization_id"])) for m in seen)
    later = [m for m in seen if m["position"] >= lead["position"]]
    assert later
    assert {m["organization_id"] for m in later} == {acme.organization_id}
    leads = next(m for m in later if m["projection"] == "leads")
    assert {"event": "Lead.Captured", "aggregate_id": lead["id"], "position": lead["position"]} in (
        leads["changes"]
    )
    health = redis_client.get("/health").json()
    assert health["dependencies"]["redis"]["status"] == "healthy"


def test_without_redis_changes_fan_out_in_process(
    services: Services, client: TestClient[Any]
) -> None:
    acme = register(client, "Acme")
    assert isinstance(services.live, LocalPublisher)
    inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
    services.live.subscribe(UUID(acme.organization_id), inbox)
    lead = acme.capture()
    deadline = time.monotonic() + 10
    positions: list[int] = []
    while (time.monotonic() < deadline and not positions) or max(positions, default=0) < lead[
        "position"
    ]:
        message = json.loads(inbox.get(timeout=10))
        assert message["organization_id"] == acme.organization_id
        positions.append(message["position"])
    redis_health = client.get("/health").json()["dependencies"]["redis"]
    assert redis_health == {"status": "not_configured", "type": "redis", "response_time_ms": None}


@dataclass(frozen=True)
class Captured:
    originator_id: UUID
    organization_id: UUID


def _envelope(position: int, org: UUID) -> Envelope:
    return Envelope(position, "tests:Captured", Captured(uuid4(), org))


def test_a_message_summarises_at_most_a_hundred_events_of_its_own_organization() -> None:
    acme, other = uuid4(), uuid4()
    live = LocalPublisher()
    mine: queue.SimpleQueue[str] = queue.SimpleQueue()
    theirs: queue.SimpleQueue[str] = queue.SimpleQueue()
    live.subscribe(acme, mine)
    live.subscribe(other, theirs)
    big = [_envelope(p, acme) for p in range(1, MAX_CHANGES + 6)]
    live("audit", {acme: big[-1].position}, {acme: big})
    message = json.loads(mine.get_nowait())
    assert message["organization_id"] == str(acme)
    assert message["projection"] == "audit"
    assert message["position"] == big[-1].position
    assert len(message["changes"]) == MAX_CHANGES and message["truncated"] is True
    assert message["changes"][0] == {
        "event": "Captured",  # the event's qualified class name, as projections see it
        "aggregate_id": str(big[0].event.originator_id),
        "position": 1,
    }
    assert theirs.empty()
    live.unsubscribe(acme, mine)
    live("audit", {acme: 200}, {acme: [_envelope(200, acme)]})
    assert mine.empty()
    assert live.subscribers(acme) == 0 and live.subscribers(other) == 1


def ticket_of(tenant: Tenant) -> str:
    response = tenant.post("/events/ticket")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 60 and body["organization_id"] == tenant.organization_id
    ticket: str = body["ticket"]
    return ticket


def test_the_event_stream_refuses_missing_forged_expired_and_misused_credentials(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    other = register(client, "Other")
    ticket = ticket_of(acme)
    assert client.post("/events/ticket").status_code == 401
    assert client.get("/events/stream").status_code == 401
    assert client.get("/events/stream", params={"ticket": "nonsense"}).status_code == 401
    # an access token is not a ticket, and a ticket is not an access token
    assert client.get("/events/stream", params={"ticket": acme.token}).status_code == 401
    as_bearer = {"Authorization": f"Bearer {ticket}", "X-Org-Id": acme.organization_id}
    assert client.get("/crm/leads", headers=as_bearer).status_code == 401
    forged = jwt.decode(ticket, options={"verify_signature": False})
    expired = forged | {"exp": datetime.now(UTC) - timedelta(seconds=1)}
    for claims, secret in ((forged, "another-secret-of-at-least-32-characters"), (expired, SECRET)):
        token = jwt.encode(claims, secret, algorithm="HS256")
        assert client.get("/events/stream", params={"ticket": token}).status_code == 401
    # a ticket for one organization is not valid for another
    elsewhere = {"X-Org-Id": other.organization_id}
    assert client.get(
        "/events/stream", params={"ticket": ticket}, headers=elsewhere
    ).status_code == (403)
    params = {"ticket": ticket, "org": other.organization_id}
    assert client.get("/events/stream", params=params).status_code == 403
    headers = acme.headers | {"X-Org-Id": other.organization_id}
    assert client.get("/events/stream", headers=headers).status_code == 403


def test_a_removed_member_is_refused_when_reconnecting(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    member = add_member(services, owner, "sales")
    ticket = ticket_of(member)
    removed = owner.delete(f"/organizations/members/{member.user_id}")
    assert removed.status_code == 200, removed.text
    assert client.get("/events/stream", params={"ticket": ticket}).status_code == 403
    assert client.get("/events/stream", headers=member.headers).status_code == 403
    with (
        client.websocket_connect(f"/ws?ticket={ticket}") as ws,
        pytest.raises(WebSocketDisconnect) as refused,
    ):
        ws.receive(timeout=5)
    assert refused.value.code == 4403


def test_the_websocket_refuses_a_missing_or_invalid_ticket(client: TestClient[Any]) -> None:
    for url in ("/ws", "/ws?ticket=nonsense"):
        with client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as refused:
            ws.receive(timeout=5)
        assert refused.value.code == 4401


def receive_json(ws: Any, timeout: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.receive_text(timeout=timeout))
    return message


def test_the_websocket_delivers_an_organizations_changes_to_its_members_only(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    other = register(client, "Other")
    with (
        client.websocket_connect(f"/ws?ticket={ticket_of(acme)}") as mine,
        client.websocket_connect(f"/ws?ticket={ticket_of(other)}") as theirs,
    ):
        assert receive_json(mine) == {"ready": True, "organization_id": acme.organization_id}
        assert receive_json(theirs)["organization_id"] == other.organization_id
        lead = acme.capture()
        seen: list[dict[str, Any]] = []
        while not any(c["aggregate_id"] == lead["id"] for m in seen for c in m["changes"]):
            seen.append(receive_json(mine))
        assert {m["organization_id"] for m in seen} == {acme.organization_id}
        # the other organization may still hear of its own registration, never of Acme's lead
        heard = []
        with pytest.raises(queue.Empty):
            while True:
                heard.append(receive_json(theirs, timeout=0.5))
        assert {m["organization_id"] for m in heard} <= {other.organization_id}
        assert lead["id"] not in json.dumps(heard)


def test_analytics_changes_are_announced_at_most_once_a_second_per_organization() -> None:
    import json as _json
    import time as _time
    from uuid import uuid4 as _uuid4

    from interfaces.live import AnalyticsCoalescer, LocalPublisher

    class Inbox:
        def __init__(self) -> None:
            self.items: list[dict[str, object]] = []

        def put(self, item: str) -> None:
            self.items.append(_json.loads(item))

    publisher = LocalPublisher()
    coalesce = AnalyticsCoalescer(publisher, interval=0.3)
    acme, other = _uuid4(), _uuid4()
    mine, theirs = Inbox(), Inbox()
    publisher.subscribe(acme, mine)
    publisher.subscribe(other, theirs)
    for position in range(1, 6):  # five analytics batches in quick succession
        coalesce("analytics", {acme: position})
    coalesce("leads", {acme: 6})  # other projections pass through untouched
    deadline = _time.monotonic() + 5
    while len(mine.items) < 3 and _time.monotonic() < deadline:
        _time.sleep(0.02)
    analytics = [m for m in mine.items if m.get("type") == "analytics.changed"]
    assert [m["position"] for m in analytics] == [1, 5]  # the first at once, the rest folded
    assert all(m["organization_id"] == str(acme) for m in analytics)
    assert [m["projection"] for m in mine.items if "type" not in m] == ["leads"]
    assert theirs.items == []
