"""Assignment rules over HTTP, both backends: editing, ordering, permissions, other tenants,
bad input, and leads arriving from the API and a signed webhook assigned by a rule."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)
from tests.support.webhooks import meta_message, meta_payload, meta_signature

pytestmark = pytest.mark.usefixtures("cheap_hashing")

RULES = "/crm/assignment-rules"
APP_SECRET = "meta-app-secret-0001"


def rule(members: list[str], strategy: str = "round_robin", **extra: Any) -> dict[str, Any]:
    return {"name": f"{strategy} rule", "strategy": strategy, "members": members} | extra


def add(tenant: Tenant, body: dict[str, Any]) -> str:
    response = tenant.post(RULES, json=body)
    assert response.status_code == 201, response.text
    rule_id: str = response.json()["id"]
    return rule_id


def listed(tenant: Tenant) -> list[dict[str, Any]]:
    response = tenant.get(RULES)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def caught_up(tenant: Tenant) -> Tenant:
    """Read after every write so far, webhooks' included."""
    head = tenant.client.app.state.services.app.recorder.max_notification_id() or 0
    tenant.position = max(tenant.position, head)
    return tenant


def lead_of(tenant: Tenant, lead_id: str) -> dict[str, Any]:
    response = caught_up(tenant).get(f"/crm/leads/{lead_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def events_of(tenant: Tenant) -> list[dict[str, Any]]:
    response = caught_up(tenant).get("/audit/events", params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_an_admin_adds_lists_changes_and_removes_rules(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    rep = add_member(services, acme, "sales", name="Rep")
    assert listed(acme) == []
    conditions = {
        "sources": ["WhatsApp"],
        "custom_fields": {"plan": "pro"},
        "countries": ["br"],
        "business_hours": "inside",
    }
    first = add(acme, rule([rep.user_id], "member", conditions=conditions))
    second = add(acme, rule([rep.user_id, acme.user_id]))
    (one, two) = listed(acme)
    assert (one["id"], one["position"], two["id"], two["position"]) == (first, 1, second, 2)
    assert one["conditions"] == {
        "sources": ["whatsapp"],
        "custom_fields": {"plan": "pro"},
        "countries": ["BR"],
        "business_hours": "inside",
    }
    assert (one["strategy"], one["members"], one["enabled"]) == ("member", [rep.user_id], True)
    assert (two["last_assigned_id"], two["routed"]) == (None, 0)

    changed = rule([acme.user_id], "least_open", name="Renamed", enabled=False)
    assert acme.put(f"{RULES}/{first}", json=changed).status_code == 200
    read = acme.get(f"{RULES}/{first}").json()
    assert (read["name"], read["strategy"], read["enabled"]) == ("Renamed", "least_open", False)
    assert read["conditions"]["sources"] == []

    assert acme.delete(f"{RULES}/{first}").status_code == 200
    assert [r["id"] for r in listed(acme)] == [second]
    assert_problem(acme.get(f"{RULES}/{first}"), 404)


def test_the_order_is_a_permutation_of_the_rules_and_the_first_match_wins(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    rep = add_member(services, acme, "sales", name="Rep")
    web = add(acme, rule([rep.user_id], "member", conditions={"sources": ["web"]}))
    anyone = add(acme, rule([acme.user_id], "member"))
    assert caught_up(acme).capture(source="web")["id"]
    head = services.app.recorder.max_notification_id()
    for wrong in ([web], [web, web], [web, anyone, str(uuid4())], [anyone, str(uuid4())]):
        body = assert_problem(acme.put(f"{RULES}/order", json={"rule_ids": wrong}), 422)
        assert body["errors"][0]["field"] == "rule_ids"
    assert services.app.recorder.max_notification_id() == head

    from_web = acme.capture(source="web")["id"]
    assert lead_of(acme, from_web)["assigned_to"] == rep.user_id
    response = acme.put(f"{RULES}/order", json={"rule_ids": [anyone, web]})
    assert response.status_code == 200, response.text
    assert [r["id"] for r in listed(acme)] == [anyone, web]
    again = acme.capture(source="web")["id"]
    assert lead_of(acme, again)["assigned_to"] == acme.user_id


def test_an_admins_capture_without_assignee_is_assigned_by_the_rule_a_sales_capture_stays_theirs(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    a = add_member(services, acme, "sales", name="A")
    b = add_member(services, acme, "sales", name="B")
    rule_id = add(acme, rule([a.user_id, b.user_id]))
    routed = [acme.capture()["id"] for _ in range(4)]
    assert [lead_of(acme, i)["assigned_to"] for i in routed] == [a.user_id, b.user_id] * 2
    b.position = acme.position
    own = b.capture()["id"]
    assert lead_of(acme, own)["assigned_to"] == b.user_id
    assert listed(acme)[0]["routed"] == 4 and listed(acme)[0]["last_assigned_id"] == b.user_id

    assigned = [
        e
        for e in events_of(acme)
        if e["event_type"] == "Lead.Assigned" and e["resource_id"] == routed[0]
    ]
    (row,) = assigned
    assert (row["actor_kind"], row["actor_id"]) == ("rule", rule_id)
    assert row["changes"]["assignee_id"] == {"before": None, "after": a.user_id}
    timeline = acme.get(f"/crm/leads/{routed[0]}/activities").json()["items"]
    kinds = [(t["activity_type"], t["actor_kind"], t["actor_id"], t["title"]) for t in timeline]
    assert kinds[0] == ("assigned", "rule", rule_id, "Assigned by an assignment rule")
    assert kinds[1][:2] == ("captured", "user")


def test_a_new_contact_from_a_signed_webhook_is_assigned_by_a_rule(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    rep = add_member(services, acme, "sales", name="Rep")
    setup = {
        "provider": "business_api",
        "phone_number_id": "106540352242922",
        "access_token": "token",
        "app_secret": APP_SECRET,
        "verify_token": "verify-token-0001",
    }
    assert acme.post("/integrations/whatsapp/setup", json=setup).status_code == 200
    rule_id = add(
        acme,
        rule([rep.user_id], "member", conditions={"sources": ["whatsapp"], "countries": ["BR"]}),
    )
    body = meta_payload([meta_message("wamid.R1", "5511987654321", "Oi")])
    response = client.post(
        f"/webhooks/whatsapp/{acme.organization_id}",
        content=body,
        headers=meta_signature(APP_SECRET, body),
    )
    assert response.status_code == 200, response.text
    (lead,) = caught_up(acme).get("/crm/leads").json()["items"]
    assert (lead["source"], lead["assigned_to"]) == ("whatsapp", rep.user_id)
    (row,) = [e for e in events_of(acme) if e["event_type"] == "Lead.Assigned"]
    assert (row["actor_kind"], row["actor_id"]) == ("rule", rule_id)


def test_a_removed_member_leaves_the_rules_and_their_rule_is_disabled(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    gone = add_member(services, acme, "sales", name="Gone")
    stays = add_member(services, acme, "sales", name="Stays")
    solo = add(acme, rule([gone.user_id], "member"))
    pair = add(acme, rule([gone.user_id, stays.user_id]))
    assert acme.delete(f"/organizations/members/{gone.user_id}").status_code in (200, 204)
    rules = {r["id"]: r for r in listed(acme)}
    assert (rules[solo]["members"], rules[solo]["enabled"]) == ([], False)
    assert (rules[pair]["members"], rules[pair]["enabled"]) == ([stays.user_id], True)
    lead = acme.capture()["id"]
    assert lead_of(acme, lead)["assigned_to"] == stays.user_id
    left = [e for e in events_of(acme) if e["event_type"] == "AssignmentRules.MemberLeft"]
    assert left and left[0]["changes"]["user_id"]["after"] == gone.user_id


@pytest.mark.parametrize(
    ("role", "reads", "writes"),
    [
        ("admin", True, True),
        ("manager", True, True),
        ("sales", True, False),
        ("viewer", True, False),
    ],
)
def test_every_member_reads_the_rules_admins_and_managers_edit_them(
    client: TestClient[Any], services: Services, role: str, reads: bool, writes: bool
) -> None:
    acme = register(client)
    caller = acme if role == "admin" else add_member(services, acme, role, name=role)
    existing = add(acme, rule([acme.user_id], "member"))
    caller.position = acme.position
    assert (caller.get(RULES).status_code == 200) is reads
    attempts = [
        caller.post(RULES, json=rule([acme.user_id])),
        caller.put(f"{RULES}/{existing}", json=rule([acme.user_id], name="x")),
    ]
    order = [r["id"] for r in reversed(listed(acme))]
    attempts.append(caller.put(f"{RULES}/order", json={"rule_ids": order}))
    for response in attempts:
        if writes:
            assert response.status_code in (200, 201), response.text
        else:
            assert_problem(response, 403)
    deleted = caller.delete(f"{RULES}/{existing}")
    assert deleted.status_code == 200 if writes else assert_problem(deleted, 403)


def test_another_organizations_rule_and_member_are_not_found_and_audited(
    client: TestClient[Any], services: Services
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    theirs = add(rival, rule([rival.user_id], "member"))
    add(acme, rule([acme.user_id], "member"))
    assert services.wait_for(["assignment_rules"], rival.position, timeout=30)
    before = listed(rival)
    for response in (
        acme.get(f"{RULES}/{theirs}"),
        acme.put(f"{RULES}/{theirs}", json=rule([acme.user_id])),
        acme.delete(f"{RULES}/{theirs}"),
    ):
        assert_problem(response, 404)
    assert_problem(acme.post(RULES, json=rule([rival.user_id])), 404)
    assert_problem(acme.put(f"{RULES}/order", json={"rule_ids": [theirs]}), 422)
    assert listed(rival) == before
    asked = [
        e["changes"]["details"]["after"]
        for e in events_of(acme)
        if e["event_type"] == "SecurityIncident.Recorded"
    ]
    kinds = {(a["resource_kind"], a["resource_id"]) for a in asked}
    assert ("assignment_rule", theirs) in kinds and ("member", rival.user_id) in kinds
    incidents = [
        e["changes"]["details"]["after"]
        for e in events_of(rival)
        if e["event_type"] == "SecurityIncident.Recorded"
    ]
    seen = {(i["resource_kind"], i["resource_id"]) for i in incidents}
    assert ("assignment_rule", theirs) in seen and ("member", rival.user_id) in seen
    assert all(i["from_organization_id"] == acme.organization_id for i in incidents)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "strategy": "random", "members": []}, "strategy"),
        ({"name": "x", "strategy": "round_robin", "members": []}, "members"),
        ({"name": " ", "strategy": "round_robin", "members": ["{me}"]}, "name"),
        ({"name": "x", "strategy": "member", "members": ["{me}", "{me2}"]}, "members"),
        (
            {
                "name": "x",
                "strategy": "member",
                "members": ["{me}"],
                "conditions": {"countries": ["BRA"]},
            },
            "conditions.countries",
        ),
        (
            {
                "name": "x",
                "strategy": "member",
                "members": ["{me}"],
                "conditions": {"business_hours": "late"},
            },
            "business_hours",
        ),
        (
            {
                "name": "x",
                "strategy": "member",
                "members": ["{me}"],
                "conditions": {"sources": [""]},
            },
            "conditions.sources",
        ),
        ({"name": "x", "strategy": "member", "members": ["{me}"], "colour": "red"}, "colour"),
        ({"name": "x", "strategy": "member", "members": ["not-a-uuid"]}, "members"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field_and_nothing_is_written(
    client: TestClient[Any], services: Services, body: dict[str, Any], field: str
) -> None:
    acme = register(client)
    other = add_member(services, acme, "sales", name="Other")
    filled = {
        k: [m.replace("{me}", acme.user_id).replace("{me2}", other.user_id) for m in v]
        if k == "members"
        else v
        for k, v in body.items()
    }
    head = services.app.recorder.max_notification_id()
    response = acme.post(RULES, json=filled)
    assert response.status_code in (400, 422), response.text
    problem = assert_problem(response, response.status_code)
    assert field in response.text, problem
    assert services.app.recorder.max_notification_id() == head


def test_imported_rows_without_an_assignee_are_assigned_by_the_rules_in_turn(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    a = add_member(services, acme, "sales", name="A")
    b = add_member(services, acme, "sales", name="B")
    rule_id = add(acme, rule([a.user_id, b.user_id], conditions={"sources": ["fair"]}))
    rows = "".join(f"Person {i},p{i}@example.com,fair\r\n" for i in range(6))
    response = acme.post(
        "/crm/leads/import",
        content=("full_name,email,source\r\n" + rows + "Walk In,w@example.com,web\r\n").encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 7
    items = caught_up(acme).get("/crm/leads", params={"limit": 50}).json()["items"]
    by_source: dict[str, list[Any]] = {}
    for item in items:
        by_source.setdefault(item["source"], []).append(item["assigned_to"])
    assert sorted(by_source["fair"]) == sorted([a.user_id, b.user_id] * 3)
    assert by_source["web"] == [None]
    actors = {
        (e["actor_kind"], e["actor_id"])
        for e in events_of(acme)
        if e["event_type"] == "Lead.Assigned"
    }
    assert actors == {("rule", rule_id)}


def test_a_rep_is_notified_of_a_lead_a_rule_assigned_them(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    rep = add_member(services, acme, "sales", name="Rep")
    add(acme, rule([rep.user_id], "member"))
    lead = acme.capture(full_name="Joana Prado")["id"]
    rep.position = acme.position
    response = rep.get("/notifications")
    assert response.status_code == 200, response.text
    [note] = response.json()["items"]
    assert (note["kind"], note["link"]) == ("lead_assigned", f"/crm/leads/{lead}")
    assert "assignment rule" in note["summary"]
