"""Sending and calling over HTTP: refusals are clear problems and record nothing."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from tests.support.api import (  # noqa: F401
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

CLOUD = {
    "provider": "business_api",
    "phone_number_id": "1065",
    "access_token": "a",
    "app_secret": "b",
    "verify_token": "c",
}
TWILIO = {
    "provider": "twilio",
    "account_sid": "AC1",
    "auth_token": "t",
    "numbers": ["+14155552671"],
}


def head(services: Services) -> int:
    return services.app.recorder.max_notification_id() or 0


def configured(client: TestClient[Any]) -> Tenant:
    acme = register(client)
    assert acme.post("/integrations/whatsapp/setup", json=CLOUD).status_code == 200
    assert acme.post("/integrations/voip/setup", json=TWILIO).status_code == 200
    return acme


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),  # neither text nor template
        ({"text": "hi", "template_name": "welcome"}, 422),
        ({"text": "x" * 4097}, 422),
        ({"text": 5}, 400),
        ({"text": "hi", "extra": 1}, 400),
        ({"text": "hi"}, 422),  # no inbound message yet: the 24-hour window is closed
    ],
)
def test_a_bad_message_is_refused_and_nothing_is_recorded(
    client: TestClient[Any], services: Services, body: dict[str, Any], status: int
) -> None:
    acme = configured(client)
    lead = acme.capture(phone="+55 11 98765-4321")["id"]
    before = head(services)
    problem = assert_problem(acme.post(f"/crm/leads/{lead}/messages", json=body), status)
    if body == {"text": "hi"}:
        assert "24-hour" in problem["detail"] and "template" in problem["detail"]
    assert head(services) == before


def test_a_template_opens_the_conversation_when_the_window_is_closed(
    client: TestClient[Any],
) -> None:
    acme = configured(client)
    lead = acme.capture(phone="+55 11 98765-4321")["id"]
    body = {
        "template_name": "welcome",
        "template_language": "pt_BR",
        "template_variables": {"1": "Ana"},
    }
    sent = acme.post(f"/crm/leads/{lead}/messages", json=body)
    assert sent.status_code == 201, sent.text
    (message,) = acme.get(f"/crm/leads/{lead}/messages").json()["items"]
    assert (message["template_name"], message["template_variables"]) == ("welcome", {"1": "Ana"})


def test_a_lead_without_a_reachable_phone_or_an_organization_without_providers_is_refused(
    client: TestClient[Any], services: Services
) -> None:
    acme = configured(client)
    no_phone = acme.capture()["id"]
    local = acme.capture(phone="(11) 98765-4321")["id"]  # no country code: unreachable
    template = {"template_name": "welcome"}
    for lead in (no_phone, local):
        assert_problem(acme.post(f"/crm/leads/{lead}/messages", json=template), 422)
        assert_problem(acme.post(f"/crm/leads/{lead}/calls", json={}), 422)
    bare = register(client, "Bare")
    lead = bare.capture(phone="+55 11 98765-4321")["id"]
    assert (
        "not set up"
        in assert_problem(bare.post(f"/crm/leads/{lead}/messages", json=template), 409)["detail"]
    )
    assert_problem(bare.post(f"/crm/leads/{lead}/calls", json={}), 409)
    other = acme.capture(phone="+55 11 98765-4321")["id"]
    bad_from = {"from_number": "+442079460000"}
    assert_problem(acme.post(f"/crm/leads/{other}/calls", json=bad_from), 422)
    bad_rep = {"connect_to": "(11) 91111-2222"}  # no country code
    assert (
        assert_problem(acme.post(f"/crm/leads/{other}/calls", json=bad_rep), 422)["errors"][0][
            "field"
        ]
        == "connect_to"
    )


def test_sales_talk_only_to_their_own_leads_and_viewers_not_at_all(
    client: TestClient[Any], services: Services
) -> None:
    acme = configured(client)
    seller = add_member(services, acme, "sales")
    viewer = add_member(services, acme, "viewer")
    theirs = acme.capture(phone="+55 11 98765-4321", assigned_to=seller.user_id)["id"]
    not_theirs = acme.capture(phone="+55 11 98765-4322")["id"]
    seller.position = viewer.position = acme.position
    template = {"template_name": "welcome"}
    assert seller.post(f"/crm/leads/{theirs}/messages", json=template).status_code == 201
    assert seller.post(f"/crm/leads/{theirs}/calls", json={}).status_code == 201
    assert_problem(seller.post(f"/crm/leads/{not_theirs}/messages", json=template), 403)
    assert_problem(seller.post(f"/crm/leads/{not_theirs}/calls", json={}), 403)
    assert_problem(viewer.post(f"/crm/leads/{theirs}/messages", json=template), 403)
    # conversations follow their lead: sales close or hand off only their own
    chats = {
        lead: acme.post(f"/crm/leads/{lead}/messages", json=template).json()["conversation_id"]
        for lead in (theirs, not_theirs)
    }
    seller.position = acme.position
    assert_problem(seller.post(f"/crm/conversations/{chats[not_theirs]}/close"), 403)
    nobody = {"user_id": None}
    assert_problem(seller.post(f"/crm/conversations/{chats[not_theirs]}/handoff", json=nobody), 403)
    assert seller.post(f"/crm/conversations/{chats[theirs]}/close").status_code == 200


def test_another_organizations_lead_conversation_or_call_is_not_found(
    client: TestClient[Any], services: Services
) -> None:
    acme = configured(client)
    rival = configured(client)
    lead = acme.capture(phone="+55 11 98765-4321")["id"]
    queued = acme.post(f"/crm/leads/{lead}/messages", json={"template_name": "w"}).json()
    call = acme.post(f"/crm/leads/{lead}/calls", json={}).json()
    conversation = queued["conversation_id"]
    before = head(services)
    assert_problem(rival.post(f"/crm/leads/{lead}/messages", json={"template_name": "w"}), 404)
    assert_problem(rival.post(f"/crm/leads/{lead}/calls", json={}), 404)
    assert_problem(rival.get(f"/crm/leads/{lead}/messages"), 404)
    assert_problem(rival.post(f"/crm/conversations/{conversation}/close"), 404)
    assert_problem(
        rival.post(f"/crm/conversations/{conversation}/handoff", json={"user_id": None}), 404
    )
    assert_problem(rival.get(f"/crm/conversations/{conversation}/messages"), 404)
    assert_problem(rival.get(f"/crm/calls/{call['call_id']}"), 404)
    # nothing recorded but the attempts, each in both organizations' audit trails
    org_of = services.app.recorder.organization_of
    new = services.app.recorder.select_notifications(before + 1, 100)
    assert {n.topic.rsplit(":", 1)[-1] for n in new} == {"SecurityIncident.Recorded"}
    assert {org_of(n.originator_id) for n in new} == {
        UUID(acme.organization_id),
        UUID(rival.organization_id),
    }


def test_a_conversation_is_handed_off_to_a_member_and_closed(
    client: TestClient[Any], services: Services
) -> None:
    acme = configured(client)
    seller = add_member(services, acme, "sales")
    lead = acme.capture(phone="+55 11 98765-4321")["id"]
    conversation = acme.post(f"/crm/leads/{lead}/messages", json={"template_name": "w"}).json()[
        "conversation_id"
    ]
    acme.position = max(acme.position, seller.position)
    handed = acme.post(
        f"/crm/conversations/{conversation}/handoff", json={"user_id": seller.user_id}
    )
    assert handed.status_code == 200, handed.text
    inbox = acme.get("/crm/conversations", params={"assigned_to": seller.user_id}).json()["items"]
    assert [c["id"] for c in inbox] == [conversation]
    stranger = "00000000-0000-4000-8000-000000000001"
    assert_problem(
        acme.post(f"/crm/conversations/{conversation}/handoff", json={"user_id": stranger}), 404
    )
    assert acme.post(f"/crm/conversations/{conversation}/close").status_code == 200
    assert (
        acme.get("/crm/conversations", params={"status": "closed"}).json()["items"][0]["id"]
        == conversation
    )
    assert_problem(acme.post(f"/crm/leads/{lead}/messages", json={"template_name": "w"}), 409)
