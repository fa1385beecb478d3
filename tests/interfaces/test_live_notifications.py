"""In-process: a notification is published on its member's own channel once its projector
committed, never on the organization's channel nor on another member's; so are their read
marks (the real stream is
tested against a server in test_notifications_live.py)."""

from __future__ import annotations

import json
import queue
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from interfaces.live import LocalPublisher, channel, user_channel
from interfaces.services import Services
from tests.support.api import add_member, cheap_hashing, register  # noqa: F401

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def drain(inbox: queue.SimpleQueue[str], timeout: float) -> list[dict[str, Any]]:
    found = []
    try:
        while True:
            found.append(json.loads(inbox.get(timeout=timeout)))
    except queue.Empty:
        return found


def test_a_notification_is_published_on_its_members_channel_only(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    peer = add_member(services, owner, "sales", name="Peer")
    org = UUID(owner.organization_id)
    assert isinstance(services.live, LocalPublisher)
    inboxes: dict[str, queue.SimpleQueue[str]] = {n: queue.SimpleQueue() for n in ("rep", "peer")}
    organization: queue.SimpleQueue[str] = queue.SimpleQueue()
    services.live.subscribe(user_channel(org, UUID(rep.user_id)), inboxes["rep"])
    services.live.subscribe(user_channel(org, UUID(peer.user_id)), inboxes["peer"])
    services.live.subscribe(org, organization)
    lead = owner.capture()
    response = owner.put(f"/crm/leads/{lead['id']}/assign", json={"user_id": rep.user_id})
    assert response.status_code == 200, response.text
    message = json.loads(inboxes["rep"].get(timeout=10))
    assert message["type"] == "notification.created" and message["user_id"] == rep.user_id
    assert message["notification"]["link"] == f"/crm/leads/{lead['id']}"
    assert "lead_name" not in message["notification"]  # personal data stays out of channels
    assert drain(inboxes["peer"], 0.5) == []
    heard = drain(organization, 0.5)
    assert heard and all(m["organization_id"] == owner.organization_id for m in heard)
    assert all(m["projection"] != "notifications" for m in heard)
    assert services.live.subscribers(channel(org)) == 1
    rep.position = owner.position
    note = message["notification"]["id"]
    assert rep.post(f"/notifications/{note}/read").status_code == 200
    read = json.loads(inboxes["rep"].get(timeout=10))
    assert (read["type"], read["notification_id"]) == ("notification.read", note)
    assert drain(inboxes["peer"], 0.5) == []
