"""Inbox and calls log routes through HTTP, on both backends. Conversations and calls are
committed through the application directly: the sending and webhook routes are tested apart."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import TestClient

from domain.call import Call
from domain.conversation import Conversation
from domain.values import Actor
from interfaces.services import Services
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
PROVIDER = Actor(kind="provider", id="whatsapp_cloud")
EARLIER = datetime.now(UTC) - timedelta(hours=1)  # inbound messages start here
FORGED = base64.urlsafe_b64encode(f"0001-01-01T00:00:00+05:00|{uuid4()}".encode()).decode()


def chat(services: Services, tenant: Tenant, lead_id: str, *texts: str) -> Conversation:
    """A conversation of the lead with inbound messages one minute apart, committed."""
    conversation = Conversation.start(
        organization_id=UUID(tenant.organization_id),
        lead_id=UUID(lead_id),
        channel="whatsapp",
        contact="+5511999990000",
        actor=PROVIDER,
    )
    for i, text in enumerate(texts):
        conversation.receive(
            provider_message_id=uuid4().hex,
            provider_type="whatsapp_cloud",
            text=text,
            sent_at=EARLIER + timedelta(minutes=i),
            actor=PROVIDER,
        )
    commit(services, tenant, conversation)
    return conversation


def call(services: Services, tenant: Tenant, lead_id: str, direction: str) -> Call:
    placed = Call.start(
        organization_id=UUID(tenant.organization_id),
        lead_id=UUID(lead_id),
        direction=direction,
        provider_type="twilio",
        from_number="+5511888880000",
        to_number="+5511999990000",
        actor=Actor("user", tenant.user_id),
    )
    placed.end(duration_seconds=12, outcome="completed", actor=PROVIDER)
    commit(services, tenant, placed)
    return placed


def commit(services: Services, tenant: Tenant, *aggregates: Any) -> None:
    tenant.position = max(tenant.position, services.app.commit(*aggregates))


def items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def test_the_inbox_lists_conversations_by_latest_message_page_by_page(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    lead = acme.capture(assigned_to=acme.user_id)["id"]
    quiet = chat(services, acme, lead, "hello")
    busy = chat(services, acme, lead, "hi", "are you there?", "hello??")
    empty = chat(services, acme, lead)

    first = acme.get("/crm/conversations", params={"limit": 2})
    page = first.json()
    rest = acme.get("/crm/conversations", params={"cursor": page["next_cursor"]}).json()

    listed = items(first) + rest["items"]
    assert [c["id"] for c in listed] == [str(empty.id), str(busy.id), str(quiet.id)]
    assert rest["next_cursor"] is None
    top = listed[1]
    assert (top["unread_count"], top["message_count"], top["last_message_preview"]) == (
        3,
        3,
        "hello??",
    )
    assert top["assigned_to"] == acme.user_id
    assert datetime.fromisoformat(top["waiting_since"]) == EARLIER
    assert listed[0]["last_message_at"] is None


def test_the_inbox_filters_by_status_and_assignee(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    mine = chat(services, acme, acme.capture(assigned_to=acme.user_id)["id"], "a")
    closed = chat(services, acme, acme.capture()["id"], "b")
    closed.close(actor=PROVIDER)
    commit(services, acme, closed)

    by_status = items(acme.get("/crm/conversations", params={"status": "closed"}))
    by_assignee = items(acme.get("/crm/conversations", params={"assigned_to": acme.user_id}))

    assert [c["id"] for c in by_status] == [str(closed.id)]
    assert [c["id"] for c in by_assignee] == [str(mine.id)]


def test_messages_read_back_by_conversation_and_by_lead_newest_first(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    lead = acme.capture()["id"]
    one = chat(services, acme, lead, "first", "second")
    two = chat(services, acme, lead, "third")
    answer = two.send(
        provider_type="whatsapp_cloud", now=datetime.now(UTC), actor=PROVIDER, text="hi!"
    )
    commit(services, acme, two)

    in_one = items(acme.get(f"/crm/conversations/{one.id}/messages"))
    paged = acme.get(f"/crm/leads/{lead}/messages", params={"limit": 3}).json()
    rest = acme.get(f"/crm/leads/{lead}/messages", params={"cursor": paged["next_cursor"]})

    assert [m["text"] for m in in_one] == ["second", "first"]
    assert {m["conversation_id"] for m in in_one} == {str(one.id)}
    assert len(paged["items"]) == 3 and len(items(rest)) == 1
    outbound = next(m for m in paged["items"] + items(rest) if m["direction"] == "outbound")
    # the outbox may have tried to deliver it by now: its status is the outbox's business
    assert (outbound["id"], outbound["text"]) == (str(answer), "hi!")


def test_the_calls_log_lists_filters_and_shows_one_call(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    lead, other = acme.capture()["id"], acme.capture()["id"]
    placed = call(services, acme, lead, "outbound")
    received = call(services, acme, other, "inbound")

    everything = items(acme.get("/crm/calls"))
    of_lead = items(acme.get("/crm/calls", params={"lead_id": lead}))
    inbound = items(acme.get("/crm/calls", params={"direction": "inbound"}))
    one = acme.get(f"/crm/calls/{placed.id}")

    assert [c["id"] for c in everything] == [str(received.id), str(placed.id)]
    assert [c["id"] for c in of_lead] == [str(placed.id)]
    assert [c["id"] for c in inbound] == [str(received.id)]
    assert one.status_code == 200, one.text
    body = one.json()
    assert (body["status"], body["outcome"], body["duration_seconds"]) == ("ended", "completed", 12)
    assert body["placed_by"] == acme.user_id


def test_another_organizations_ids_are_not_found_and_its_lists_stay_empty(
    client: TestClient[Any], services: Services
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    lead = acme.capture()["id"]
    conversation = chat(services, acme, lead, "secret")
    placed = call(services, acme, lead, "outbound")
    viewer = add_member(services, rival, "viewer")
    rival.position = viewer.position = max(acme.position, viewer.position)

    for who in (rival, viewer):
        assert_problem(who.get(f"/crm/conversations/{conversation.id}/messages"), 404)
        assert_problem(who.get(f"/crm/leads/{lead}/messages"), 404)
        assert_problem(who.get(f"/crm/calls/{placed.id}"), 404)
        assert items(who.get("/crm/conversations")) == []
        assert items(who.get("/crm/calls")) == []
        assert items(who.get("/crm/calls", params={"lead_id": lead})) == []
    for path in (f"/crm/conversations/{uuid4()}/messages", f"/crm/calls/{uuid4()}"):
        assert_problem(acme.get(path), 404)
    assert_problem(acme.get(f"/crm/leads/{uuid4()}/messages"), 404)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/crm/conversations", {"limit": "0"}, 400),
        ("/crm/conversations", {"limit": "201"}, 400),
        ("/crm/conversations", {"assigned_to": "me"}, 400),
        ("/crm/conversations", {"status": "pending"}, 422),
        ("/crm/conversations", {"cursor": "nope"}, 422),
        ("/crm/conversations", {"cursor": FORGED}, 422),
        ("/crm/calls", {"cursor": FORGED}, 422),
        ("/crm/calls", {"direction": "sideways"}, 422),
        ("/crm/calls", {"lead_id": "1"}, 400),
        ("/crm/calls", {"limit": "x"}, 400),
        ("/crm/calls", {"cursor": "x" * 501}, 400),
        ("/crm/leads/{lead}/messages", {"cursor": "bm9wZQ"}, 422),
        ("/crm/conversations/{conversation}/messages", {"limit": "-1"}, 400),
    ],
)
def test_bad_query_parameters_are_problems(
    client: TestClient[Any], services: Services, path: str, params: dict[str, str], status: int
) -> None:
    acme = register(client)
    lead = acme.capture()["id"]
    conversation = chat(services, acme, lead, "hi")
    url = path.format(lead=lead, conversation=conversation.id)

    assert_problem(acme.get(url, params=params), status)


def test_bad_ids_in_the_path_are_not_found(client: TestClient[Any]) -> None:
    acme = register(client)
    for path in ("/crm/conversations/nope/messages", "/crm/leads/1/messages", "/crm/calls/x"):
        assert_problem(acme.get(path), 404)
