"""Message templates over HTTP: written by managers, used by the lead's owner, sent through the
conversation's ordinary path (the 24-hour window unchanged), measured per A/B variant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import TestClient

from application.conversations.messages import provider_actor, receive_message
from application.conversations.outbox import Dispatcher, RetryPolicy
from application.conversations.providers import InboundMessage
from domain.conversation import Conversation
from interfaces.services import Services
from tests.support.api import (  # noqa: F401
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,
    register,
)
from tests.support.provider_servers import GraphServer

pytestmark = pytest.mark.usefixtures("cheap_hashing")

PHONE = "+5511987654321"
GREETING = (
    "Hi {{lead.full_name}} from {{lead.company}}, {{user.full_name}} of {{organization.name}}"
)


@pytest.fixture
def graph() -> Iterator[GraphServer]:
    with GraphServer(access_token="graph-token") as server:
        yield server


def head(services: Services) -> int:
    return services.app.recorder.max_notification_id() or 0


def whatsapp(tenant: Tenant, graph: GraphServer) -> None:
    setup = {
        "provider": "business_api",
        "phone_number_id": "1065",
        "access_token": graph.access_token,
        "app_secret": "b",
        "verify_token": "c",
        "base_url": graph.url,
    }
    assert tenant.post("/integrations/whatsapp/setup", json=setup).status_code == 200


def create(tenant: Tenant, **fields: Any) -> str:
    response = tenant.post("/crm/templates", json={"name": "Greeting", "body": GREETING} | fields)
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


def use(tenant: Tenant, template: str, lead: str, send: bool = False) -> dict[str, Any]:
    response = tenant.post(f"/crm/templates/{template}/use", json={"lead_id": lead, "send": send})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def inbound(services: Services, tenant: Tenant, text: str = "hello") -> None:
    """The contact writes (as the webhook would record it): the 24-hour window opens."""
    message = InboundMessage(
        provider_message_id="wamid." + uuid4().hex,
        from_phone=PHONE,
        sent_at=datetime.now(UTC),
        text=text,
    )
    # the lead with that number must be known to the leads model, or the number makes its own
    assert services.wait_for(["leads"], tenant.position, timeout=30)
    org = UUID(tenant.organization_id)
    actor = provider_actor("business_api")
    received = receive_message(services.app, services, org, "business_api", message, actor=actor)
    tenant.position = max(tenant.position, received.position)


def deliver(services: Services) -> int:
    """Run the outbox once against the local Graph server (only this test's sends in it)."""
    assert services.wait_for(["outbox"], head(services), timeout=30)
    dispatcher = Dispatcher(
        services.app,
        services.engine,
        services.secret_box,
        services.providers,
        "https://crm.example",
        policy=RetryPolicy(),
        jitter=lambda: 0.0,
    )
    return dispatcher.run_once()


def stored_states(services: Services, topic: str) -> list[bytes]:
    """The stored state of every event of this topic, as it is on disk."""
    found = services.app.recorder.select_notifications(1, 100_000, topics=[topic])
    return [bytes(n.state) for n in found]


@pytest.fixture
def clean_outbox(services: Services) -> None:
    # the PostgreSQL database is shared by the session: other suites' sends are not ours
    assert services.wait_for(["outbox"], head(services), timeout=30)
    with services.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM outbox")


def test_a_manager_creates_lists_changes_and_deletes_templates(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    stage = acme.stages()[0]["id"]
    template = create(acme, category="intro", stage_ids=[stage], tags=["nurture"], variants=["B"])
    other = create(acme, name="Another", body="Plain text")
    listed = acme.get("/crm/templates").json()
    assert [t["name"] for t in listed] == ["Another", "Greeting"]
    assert listed[1] | {"created_at": 0, "updated_at": 0} == {
        "id": template,
        "name": "Greeting",
        "category": "intro",
        "stage_ids": [stage],
        "body": GREETING,
        "variants": ["B"],
        "whatsapp_template_name": None,
        "whatsapp_template_language": None,
        "tags": ["nurture"],
        "version": 1,
        "created_at": 0,
        "updated_at": 0,
    }
    assert [t["id"] for t in acme.get("/crm/templates", params={"tag": "nurture"}).json()] == [
        template
    ]
    assert [t["id"] for t in acme.get("/crm/templates", params={"category": "intro"}).json()] == [
        template
    ]
    changed = acme.put(
        f"/crm/templates/{template}",
        json={"name": "Hello", "expected_version": 1, "whatsapp_template_name": "hello"}
        | {"whatsapp_template_language": "pt_BR"},
    )
    assert changed.status_code == 200, changed.text
    stale = acme.put(f"/crm/templates/{template}", json={"name": "Late", "expected_version": 1})
    assert assert_problem(stale, 409)["current_version"] == 2
    assert acme.delete(f"/crm/templates/{other}").status_code == 200
    assert_problem(acme.delete(f"/crm/templates/{other}"), 409)
    assert_problem(acme.put(f"/crm/templates/{other}", json={"name": "x"}), 409)
    (audited,) = acme.get("/audit/events", params={"event_type": "Template.DetailsChanged"}).json()[
        "items"
    ]
    assert audited["changes"]["name"] == {"before": "Greeting", "after": "Hello"}
    (only,) = acme.get("/crm/templates").json()
    assert (only["name"], only["whatsapp_template_language"], only["version"]) == (
        "Hello",
        "pt_BR",
        2,
    )


@pytest.mark.parametrize(
    ("body", "status", "field", "named"),
    [
        ({"name": "T", "body": "Hi {{lead.email}}"}, 422, "body", "{{lead.email}}"),
        ({"name": "T", "body": "Hi {{ __import__('os') }}"}, 422, "body", "__import__"),
        ({"name": "T", "body": "ok", "variants": ["{{x.y}}"]}, 422, "variants[0]", "{{x.y}}"),
        ({"name": "T", "body": "{{lead.custom.a b}}"}, 422, "body", "{{lead.custom.a b}}"),
        ({"name": "T", "body": "ok", "whatsapp_template_name": "w"}, 422, None, None),
        ({"name": "T", "body": "ok", "variants": ["v"] * 5}, 422, "variants", None),
        ({"name": " ", "body": "ok"}, 422, "name", None),
        ({"name": "T", "body": "x" * 4097}, 422, "body", None),
        ({"name": "T"}, 400, None, None),
        ({"name": "T", "body": "ok", "extra": 1}, 400, None, None),
        ({"name": "T", "body": 5}, 400, None, None),
    ],
)
def test_a_bad_template_is_refused_naming_the_problem_and_nothing_is_written(
    client: TestClient[Any],
    services: Services,
    body: dict[str, Any],
    status: int,
    field: str | None,
    named: str | None,
) -> None:
    acme = register(client)
    template = create(acme)
    before = head(services)
    problem = assert_problem(acme.post("/crm/templates", json=body), status)
    if field is not None:
        assert problem["errors"][0]["field"] == field
    if named is not None:
        assert named in problem["detail"]
    changed = {k: v for k, v in body.items() if k != "extra"}
    if status == 422:
        assert_problem(acme.put(f"/crm/templates/{template}", json=changed), 422)
    assert head(services) == before


def test_another_organizations_stage_or_template_is_not_found_and_audited(
    client: TestClient[Any], services: Services
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    template = create(acme)
    lead = acme.capture(full_name="Ana")["id"]
    rival_lead = rival.capture(full_name="Rui")["id"]
    rival_stage = rival.stages()[0]["id"]
    assert_problem(
        acme.post("/crm/templates", json={"name": "T", "body": "x"} | {"stage_ids": [rival_stage]}),
        404,
    )
    before = head(services)
    assert_problem(rival.put(f"/crm/templates/{template}", json={"name": "Mine"}), 404)
    assert_problem(rival.delete(f"/crm/templates/{template}"), 404)
    assert_problem(rival.get(f"/crm/templates/{template}/stats"), 404)
    assert_problem(rival.post(f"/crm/templates/{template}/use", json={"lead_id": rival_lead}), 404)
    assert_problem(rival.get("/crm/templates/suggestions", params={"lead_id": lead}), 404)
    own = create(rival)
    assert_problem(rival.post(f"/crm/templates/{own}/use", json={"lead_id": lead}), 404)
    assert rival.get("/crm/templates").json()[0]["id"] == own
    new = services.app.recorder.select_notifications(before + 1, 100)
    topics = [n.topic.rsplit(":", 1)[-1] for n in new]
    assert set(topics) == {"SecurityIncident.Recorded", "Template.Created"}
    org_of = services.app.recorder.organization_of
    incidents = {org_of(n.originator_id) for n in new if n.topic.endswith("Recorded")}
    assert incidents == {UUID(acme.organization_id), UUID(rival.organization_id)}
    (mine,) = acme.get("/crm/templates").json()
    assert (mine["name"], mine["version"]) == ("Greeting", 1)


def test_a_use_renders_the_leads_data_the_callers_name_and_the_organizations(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client, "Acme")
    template = create(acme, body=GREETING + " {{lead.custom.plan}} {{lead.custom.none}}")
    lead = acme.capture(
        full_name="Ana {{organization.name}}",
        company="{{lead.full_name}} Ltd",
        custom_fields={"plan": "{{user.full_name}}", "vip": True},
    )["id"]
    used = use(acme, template, lead)
    assert used["text"] == (
        "Hi Ana {{organization.name}} from {{lead.full_name}} Ltd, Owner Acme of Acme "
        "{{user.full_name}} "
    )
    assert (used["variant"], used["sent_as"], used["message"]) == ("A", None, None)
    # the rendered text (personal data) is nowhere in the log in clear
    stored = stored_states(services, "domain.template:Template.Used")
    assert stored and all(b"Ana" not in state for state in stored)


def test_uses_alternate_between_variants_and_stats_count_uses_replies_and_wins(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    template = create(acme, body="A {{lead.full_name}}", variants=["B {{lead.full_name}}"])
    lead = acme.capture(full_name="Ana", phone=PHONE)["id"]
    other = acme.capture(full_name="Bia")["id"]
    texts = [use(acme, template, x)["text"] for x in (lead, other, other)]
    assert texts == ["A Ana", "B Bia", "A Bia"]
    inbound(services, acme)  # Ana answers: her use of A is replied to
    assert acme.post(f"/crm/leads/{lead}/won").status_code == 200
    stats = acme.get(f"/crm/templates/{template}/stats").json()
    assert stats == {
        "template_id": template,
        "uses": 3,
        "replies": 1,
        "reply_rate": 0.3333,
        "won": 1,
        "variants": [
            {"variant": "A", "uses": 2, "replies": 1, "reply_rate": 0.5, "won": 1},
            {"variant": "B", "uses": 1, "replies": 0, "reply_rate": 0.0, "won": 0},
        ],
    }


@pytest.mark.usefixtures("clean_outbox")
def test_inside_the_window_the_rendered_text_is_sent_as_free_text(
    client: TestClient[Any], services: Services, graph: GraphServer
) -> None:
    acme = register(client, "Acme")
    whatsapp(acme, graph)
    template = create(acme, whatsapp_template_name="greeting", whatsapp_template_language="pt_BR")
    lead = acme.capture(full_name="Ana", company="Co", phone=PHONE)["id"]
    inbound(services, acme)
    used = use(acme, template, lead, send=True)
    assert used["sent_as"] == "text"
    assert used["message"]["status"] == "queued"
    assert deliver(services) == 1
    [request] = graph.requests
    assert (request.json["to"], request.json["type"]) == (PHONE, "text")
    assert request.json["text"]["body"] == "Hi Ana from Co, Owner Acme of Acme"
    messages = acme.get(f"/crm/leads/{lead}/messages").json()["items"]
    assert messages[0]["text"] == "Hi Ana from Co, Owner Acme of Acme"
    # the sent text is sealed with the lead's key, like any message
    org = UUID(acme.organization_id)
    conversation = services.app.load(Conversation, UUID(used["message"]["conversation_id"]), org)
    assert conversation.statuses[UUID(used["message"]["message_id"])] == "sent"
    stored = stored_states(services, "domain.conversation:Conversation.MessageSent")
    assert stored and all(b"Owner Acme of" not in state for state in stored)


@pytest.mark.usefixtures("clean_outbox")
def test_outside_the_window_the_linked_whatsapp_template_goes_with_its_variables_in_order(
    client: TestClient[Any], services: Services, graph: GraphServer
) -> None:
    acme = register(client, "Acme")
    whatsapp(acme, graph)
    template = create(acme, whatsapp_template_name="greeting", whatsapp_template_language="pt_BR")
    lead = acme.capture(full_name="Ana", company="Co", phone=PHONE)["id"]
    used = use(acme, template, lead, send=True)
    assert used["sent_as"] == "whatsapp_template"
    assert deliver(services) == 1
    [request] = graph.requests
    assert request.json["template"]["name"] == "greeting"
    assert request.json["template"]["language"] == {"code": "pt_BR"}
    parameters = request.json["template"]["components"][0]["parameters"]
    assert [p["text"] for p in parameters] == ["Ana", "Co", "Owner Acme", "Acme"]


def test_outside_the_window_a_template_without_a_whatsapp_link_is_refused_as_free_text_is(
    client: TestClient[Any], services: Services, graph: GraphServer
) -> None:
    acme = register(client, "Acme")
    whatsapp(acme, graph)
    template = create(acme)
    lead = acme.capture(full_name="Ana", phone=PHONE)["id"]
    no_phone = acme.capture(full_name="Bia")["id"]
    before = head(services)
    body = {"lead_id": lead, "send": True}
    problem = assert_problem(acme.post(f"/crm/templates/{template}/use", json=body), 422)
    assert "24-hour" in problem["detail"]
    assert head(services) == before  # neither the message nor the use
    assert_problem(
        acme.post(f"/crm/templates/{template}/use", json=body | {"lead_id": no_phone}), 422
    )
    assert head(services) == before


def test_suggestions_are_the_templates_for_the_leads_stage_best_reply_rate_first(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    first, second = (s["id"] for s in acme.stages()[:2])
    lead = acme.capture(full_name="Ana", phone=PHONE)["id"]
    other = acme.capture(full_name="Bia")["id"]
    quiet = create(acme, name="Quiet", stage_ids=[first])
    answered = create(acme, name="Answered", stage_ids=[first])
    everywhere = create(acme, name="Everywhere", tags=["nurture"])
    create(acme, name="Later", stage_ids=[second])
    use(acme, quiet, other)
    use(acme, answered, lead)
    inbound(services, acme)
    found = acme.get("/crm/templates/suggestions", params={"lead_id": lead}).json()
    assert [(s["template"]["id"], s["reply_rate"]) for s in found] == [
        (answered, 1.0),
        (quiet, 0.0),
        (everywhere, 0.0),
    ]
    nurture = acme.get("/crm/templates/suggestions", params={"lead_id": lead, "tag": "nurture"})
    assert [s["template"]["id"] for s in nurture.json()] == [everywhere]
    assert_problem(acme.get("/crm/templates/suggestions"), 400)


def test_sales_read_and_use_templates_on_their_own_leads_and_viewers_only_read(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    manager = add_member(services, acme, "manager")
    seller = add_member(services, acme, "sales")
    viewer = add_member(services, acme, "viewer")
    template = create(manager)
    theirs = acme.capture(assigned_to=seller.user_id)["id"]
    not_theirs = acme.capture()["id"]
    for member in (seller, viewer):
        member.position = acme.position
        assert [t["id"] for t in member.get("/crm/templates").json()] == [template]
        assert member.get(f"/crm/templates/{template}/stats").status_code == 200
        assert (
            member.get("/crm/templates/suggestions", params={"lead_id": theirs}).status_code == 200
        )
        assert_problem(member.post("/crm/templates", json={"name": "T", "body": "x"}), 403)
        assert_problem(member.put(f"/crm/templates/{template}", json={"name": "T"}), 403)
        assert_problem(member.delete(f"/crm/templates/{template}"), 403)
    assert use(seller, template, theirs)["text"].endswith("Member of Acme")
    assert_problem(seller.post(f"/crm/templates/{template}/use", json={"lead_id": not_theirs}), 403)
    assert_problem(viewer.post(f"/crm/templates/{template}/use", json={"lead_id": theirs}), 403)


def test_an_erased_person_gets_no_template(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    template = create(acme)
    lead = acme.capture(full_name="Ana")["id"]
    erased = acme.post("/privacy/erase", json={"lead_id": lead, "legal_basis": "request"})
    assert erased.status_code == 200, erased.text
    before = head(services)
    assert_problem(acme.post(f"/crm/templates/{template}/use", json={"lead_id": lead}), 409)
    assert head(services) == before
