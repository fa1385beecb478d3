"""Projected changes are announced per organization: on Redis, or in-process without it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
import redis
from litestar.testing import TestClient

from interfaces.http.app import create_app
from interfaces.live import LocalPublisher, channel
from interfaces.services import Services, build_services
from tests.conftest import settings_for
from tests.support.api import register
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
    health = redis_client.get("/health").json()
    assert health["redis"] == "ok"


def test_without_redis_changes_fan_out_in_process(
    services: Services, client: TestClient[Any]
) -> None:
    acme = register(client, "Acme")
    assert isinstance(services.live, LocalPublisher)
    inbox = services.live.subscribe(UUID(acme.organization_id))
    lead = acme.capture()
    deadline = time.monotonic() + 10
    positions = []
    while (time.monotonic() < deadline and not positions) or max(positions, default=0) < lead[
        "position"
    ]:
        message = json.loads(inbox.get(timeout=10))
        assert message["organization_id"] == acme.organization_id
        positions.append(message["position"])
    assert client.get("/health").json()["redis"] == "not configured"
