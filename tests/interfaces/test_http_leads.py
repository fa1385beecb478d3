"""Every lead route of the contract, through HTTP, on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

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

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def lead_of(tenant: Tenant, lead_id: str) -> dict[str, Any]:
    response = tenant.get(f"/crm/leads/{lead_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = tenant.get("/crm/leads", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def column(tenant: Tenant, name: str) -> dict[str, Any]:
    board = tenant.get("/crm/pipeline/board").json()
    found: dict[str, Any] = next(s for s in board["stages"] if s["name"] == name)
    return found


def test_a_captured_lead_answers_201_and_reads_back_with_its_details(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    response = acme.post(
        "/crm/leads",
        json={
            "full_name": "  Maria Silva ",
            "email": "Maria@Example.com",
            "phone": "+55 11 99999-0000",
            "company": "Padaria",
            "source": "website",
            "estimated_value": "1234.5",
            "custom_fields": {"segment": "bakery", "employees": 12},
        },
    )

    assert response.status_code == 201, response.text
    written = response.json()
    assert written.keys() == {"id", "version", "position"}
    assert written["version"] == 1 and written["position"] > 0
    lead = lead_of(acme, written["id"])
    assert lead["full_name"] == "Maria Silva"
    assert lead["email"] == "maria@example.com"
    assert lead["estimated_value"] == "1234.50"
    assert lead["custom_fields"] == {"segment": "bakery", "employees": 12}
    assert lead["stage_id"] == acme.stages()[0]["id"]
    assert (lead["status"], lead["archived"], lead["version"]) == ("open", False, 1)


def test_capture_refuses_bad_details_and_writes_nothing(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    won_stage = acme.stages()[4]["id"]
    head = services.app.recorder.max_notification_id()
    bad: list[dict[str, Any]] = [
        {},
        {"full_name": ""},
        {"full_name": "x" * 201},
        {"full_name": "A", "email": "not-an-email"},
        {"full_name": "A", "phone": "abc"},
        {"full_name": "A", "estimated_value": "-1"},
        {"full_name": "A", "estimated_value": "lots"},
        {"full_name": "A", "custom_fields": {"nested": {"a": 1}}},
        {"full_name": "A", "custom_fields": {"x" * 65: 1}},
        {"full_name": "A", "stage_id": won_stage},
        {"full_name": "A", "stage_id": "not-a-uuid"},
        {"full_name": "A", "score": 99},
    ]
    for body in bad:
        response = acme.post("/crm/leads", json=body)
        assert response.status_code in (400, 422), (body, response.text)
        assert_problem(response, response.status_code)
    assert services.app.recorder.max_notification_id() == head
    for unknown in ({"stage_id": str(uuid4())}, {"assigned_to": str(uuid4())}):
        assert_problem(acme.post("/crm/leads", json={"full_name": "A"} | unknown), 404)
    # ids the organization does not hold leave a security record only (test_http_security_events)
    written = services.app.recorder.select_notifications(head + 1, 100)
    assert written and {n.topic for n in written} == {"domain.security:SecurityIncident.Recorded"}


def test_leads_page_newest_first_with_keyset_cursors(client: TestClient[Any]) -> None:
    acme = register(client)
    ids = [acme.capture(full_name=f"Lead {i}")["id"] for i in range(7)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = acme.get("/crm/leads", params=params).json()
        seen += [lead["id"] for lead in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == 3

    assert pages == 3
    assert seen == list(reversed(ids))
    assert_problem(acme.get("/crm/leads", params={"cursor": "not-a-cursor"}), 422)
    for limit in (0, 201, "ten"):
        assert_problem(acme.get("/crm/leads", params={"limit": limit}), 400)


def test_leads_are_filtered_by_stage_assignee_status_and_text(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    contact = acme.stages()[1]["id"]
    maria = acme.capture(full_name="Maria Silva", company="Padaria Central")["id"]
    joao = acme.capture(full_name="João Souza", email="joao@oficina.example")["id"]
    ana = acme.capture(full_name="Ana Lima", assigned_to=seller.user_id)["id"]
    acme.patch(f"/crm/leads/{joao}/stage", json={"stage_id": contact})
    acme.post(f"/crm/leads/{ana}/won")

    def ids(**params: Any) -> set[str]:
        return {lead["id"] for lead in listed(acme, **params)}

    assert ids(stage_id=contact) == {joao}
    assert ids(assigned_to=seller.user_id) == {ana}
    assert ids(status="won") == {ana}
    assert ids(status="open") == {maria, joao}
    assert ids(q="padaria") == {maria}
    assert ids(q="OFICINA") == {joao}
    assert ids(q="silva") == {maria}
    assert ids(q="%") == set()
    assert ids(q="_") == set()
    assert ids(stage_id=contact, q="maria") == set()
    assert_problem(acme.get("/crm/leads", params={"status": "maybe"}), 422)
    assert_problem(acme.get("/crm/leads", params={"stage_id": "contact"}), 400)
    assert_problem(acme.get("/crm/leads", params={"q": "x" * 201}), 400)


def test_a_partial_update_changes_only_the_given_fields(client: TestClient[Any]) -> None:
    acme = register(client)
    lead = acme.capture(full_name="Maria", company="Padaria", email="m@example.com")

    response = acme.put(
        f"/crm/leads/{lead['id']}",
        json={"company": "Padaria Nova", "phone": "+55 11 5555-1234", "expected_version": 1},
    )

    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    after = lead_of(acme, lead["id"])
    assert (after["full_name"], after["email"]) == ("Maria", "m@example.com")
    assert (after["company"], after["phone"]) == ("Padaria Nova", "+55 11 5555-1234")
    cleared = acme.put(f"/crm/leads/{lead['id']}", json={"email": None})
    assert cleared.status_code == 200, cleared.text
    assert lead_of(acme, lead["id"])["email"] is None
    assert_problem(acme.put(f"/crm/leads/{lead['id']}", json={"full_name": None}), 400)
    assert_problem(acme.put(f"/crm/leads/{lead['id']}", json={"stage_id": str(uuid4())}), 400)


def test_an_update_with_a_stale_version_is_409_with_the_current_version(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    lead = acme.capture()
    acme.put(f"/crm/leads/{lead['id']}", json={"company": "First", "expected_version": 1})

    stale = acme.put(f"/crm/leads/{lead['id']}", json={"company": "Second", "expected_version": 1})

    body = assert_problem(stale, 409)
    assert body["current_version"] == 2
    assert lead_of(acme, lead["id"])["company"] == "First"


def test_moving_a_lead_answers_its_version_and_a_stale_move_is_409(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()
    lead = acme.capture(estimated_value="10")

    moved = acme.patch(
        f"/crm/leads/{lead['id']}/stage",
        json={"stage_id": stages[2]["id"], "expected_version": 1},
    )
    stale = acme.patch(
        f"/crm/leads/{lead['id']}/stage",
        json={"stage_id": stages[3]["id"], "expected_version": 1},
    )

    assert moved.status_code == 200, moved.text
    assert moved.json() == {"id": lead["id"], "version": 2, "position": moved.json()["position"]}
    assert assert_problem(stale, 409)["current_version"] == 2
    assert lead_of(acme, lead["id"])["stage_id"] == stages[2]["id"]
    assert column(acme, "Proposal")["count"] == 1
    assert column(acme, "Negotiation")["count"] == 0
    assert_problem(
        acme.patch(f"/crm/leads/{lead['id']}/stage", json={"stage_id": str(uuid4())}), 404
    )
    assert_problem(acme.patch(f"/crm/leads/{lead['id']}/stage", json={}), 400)


def test_a_lead_is_assigned_to_members_only(client: TestClient[Any], services: Services) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    acme.position = max(acme.position, seller.position)
    lead = acme.capture()

    assigned = acme.put(f"/crm/leads/{lead['id']}/assign", json={"user_id": seller.user_id})
    stranger = acme.put(f"/crm/leads/{lead['id']}/assign", json={"user_id": str(uuid4())})

    assert assigned.status_code == 200, assigned.text
    assert lead_of(acme, lead["id"])["assigned_to"] == seller.user_id
    assert_problem(stranger, 404)
    assert lead_of(acme, lead["id"])["assigned_to"] == seller.user_id
    unassigned = acme.put(f"/crm/leads/{lead['id']}/assign", json={"user_id": None})
    assert unassigned.status_code == 200, unassigned.text
    assert lead_of(acme, lead["id"])["assigned_to"] is None
    assert_problem(acme.put(f"/crm/leads/{lead['id']}/assign", json={}), 400)


def test_notes_are_added_to_the_lead_and_its_timeline(client: TestClient[Any]) -> None:
    acme = register(client)
    lead = acme.capture()

    added = acme.post(f"/crm/leads/{lead['id']}/notes", json={"text": "Called, wants a demo"})

    assert added.status_code == 201, added.text
    assert added.json()["version"] == 2
    assert lead_of(acme, lead["id"])["notes_count"] == 1
    timeline = acme.get(f"/crm/leads/{lead['id']}/activities").json()["items"]
    assert timeline[0]["activity_type"] == "note"
    assert timeline[0]["data"]["text"] == "Called, wants a demo"
    for body in ({"text": ""}, {"text": "x" * 10_001}):
        assert_problem(acme.post(f"/crm/leads/{lead['id']}/notes", json=body), 422)
    assert_problem(acme.post(f"/crm/leads/{lead['id']}/notes", json={"text": 5}), 400)


def test_winning_losing_and_reopening_move_status_and_board(client: TestClient[Any]) -> None:
    acme = register(client)
    stages = acme.stages()
    lead = acme.capture(estimated_value="500")
    path = f"/crm/leads/{lead['id']}"

    won = acme.post(f"{path}/won")
    assert won.status_code == 200, won.text
    assert (lead_of(acme, lead["id"])["status"], column(acme, "Won")["count"]) == ("won", 1)
    assert column(acme, "Won")["total_value"] == "500.00"
    assert_problem(acme.post(f"{path}/won"), 409)
    assert_problem(acme.post(f"{path}/lost"), 409)

    assert acme.post(f"{path}/reopen").status_code == 200
    reopened = lead_of(acme, lead["id"])
    assert (reopened["status"], reopened["stage_id"]) == ("open", stages[0]["id"])
    assert column(acme, "Won")["count"] == 0
    assert_problem(acme.post(f"{path}/reopen"), 409)

    lost = acme.post(f"{path}/lost", json={"reason": "price"})
    assert lost.status_code == 200, lost.text
    assert lead_of(acme, lead["id"])["status"] == "lost"
    assert column(acme, "Lost")["count"] == 1
    assert_problem(acme.post(f"{path}/reopen", json={"stage_id": stages[4]["id"]}), 422)
    into_contact = acme.post(f"{path}/reopen", json={"stage_id": stages[1]["id"]})
    assert into_contact.status_code == 200, into_contact.text
    assert lead_of(acme, lead["id"])["stage_id"] == stages[1]["id"]
    assert_problem(acme.post(f"{path}/lost", json={"reason": 5}), 400)
    assert_problem(acme.post(f"{path}/lost", json={"why": "x"}), 400)


def test_archiving_hides_a_lead_but_keeps_it_readable_with_its_history(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()
    lead = acme.capture(estimated_value="100")
    kept = acme.capture()
    path = f"/crm/leads/{lead['id']}"

    archived = acme.delete(path)

    assert archived.status_code == 200, archived.text
    assert archived.json()["version"] == 2
    assert [item["id"] for item in listed(acme)] == [kept["id"]]
    assert lead["id"] in {item["id"] for item in listed(acme, include_archived="true")}
    first = column(acme, "Lead")
    assert (first["count"], first["total_value"]) == (1, "0.00")
    assert [c["id"] for c in first["leads"]] == [kept["id"]]
    assert lead_of(acme, lead["id"])["archived"] is True
    history = acme.get(f"{path}/history").json()
    assert [e["type"] for e in history] == ["Lead.Captured", "Lead.Archived"]
    changes = [
        acme.put(path, json={"company": "X"}),
        acme.patch(f"{path}/stage", json={"stage_id": stages[1]["id"]}),
        acme.put(f"{path}/assign", json={"user_id": acme.user_id}),
        acme.post(f"{path}/notes", json={"text": "x"}),
        acme.post(f"{path}/won"),
        acme.post(f"{path}/lost"),
        acme.post(f"{path}/reopen"),
        acme.delete(path),
    ]
    for response in changes:
        assert_problem(response, 409)
    assert lead_of(acme, lead["id"])["version"] == 2


def test_the_timeline_has_one_row_per_event_newest_first(client: TestClient[Any]) -> None:
    acme = register(client)
    stages = acme.stages()
    lead = acme.capture()
    path = f"/crm/leads/{lead['id']}"
    acme.put(path, json={"company": "Padaria"})
    acme.patch(f"{path}/stage", json={"stage_id": stages[1]["id"]})
    acme.put(f"{path}/assign", json={"user_id": acme.user_id})
    acme.post(f"{path}/notes", json={"text": "hello"})
    acme.post(f"{path}/won")
    acme.delete(path)

    items = acme.get(f"{path}/activities").json()["items"]
    version = lead_of(acme, lead["id"])["version"]

    assert [i["version"] for i in items] == list(range(version, 0, -1))
    assert [i["activity_type"] for i in reversed(items)] == [
        "captured",
        "details_changed",
        "stage_changed",
        "assigned",
        "note",
        "stage_changed",
        "won",
        "archived",
    ]
    assert {i["actor_id"] for i in items} == {acme.user_id}
    paged = acme.get(f"{path}/activities", params={"limit": 5}).json()
    rest = acme.get(f"{path}/activities", params={"cursor": paged["next_cursor"]}).json()
    assert paged["items"] + rest["items"] == items
    assert rest["next_cursor"] is None


def test_history_lists_every_event_with_type_version_time_actor_and_data(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()
    lead = acme.capture(company="Padaria")
    acme.patch(f"/crm/leads/{lead['id']}/stage", json={"stage_id": stages[1]["id"]})

    history = acme.get(f"/crm/leads/{lead['id']}/history").json()

    assert [(e["type"], e["version"]) for e in history] == [
        ("Lead.Captured", 1),
        ("Lead.MovedToStage", 2),
    ]
    for event in history:
        assert datetime.fromisoformat(event["time"]).tzinfo is not None
        assert event["actor"]["kind"] == "user"
        assert event["actor"]["id"] == acme.user_id
    assert history[0]["data"]["company"] == "Padaria"
    assert history[1]["data"]["from_stage_id"] == stages[0]["id"]
    assert history[1]["data"]["to_stage_id"] == stages[1]["id"]


def test_history_at_a_time_gives_the_lead_as_it_was_then(client: TestClient[Any]) -> None:
    acme = register(client)
    lead = acme.capture(company="Before")
    path = f"/crm/leads/{lead['id']}/history"
    acme.put(f"/crm/leads/{lead['id']}", json={"company": "After"})
    times = [datetime.fromisoformat(e["time"]) for e in acme.get(path).json()]

    then = acme.get(path, params={"at": times[0].isoformat()})
    now = acme.get(path, params={"at": (times[1] + timedelta(seconds=1)).isoformat()})
    before = acme.get(path, params={"at": (times[0] - timedelta(seconds=1)).isoformat()})

    assert then.status_code == 200, then.text
    assert (then.json()["version"], then.json()["state"]["company"]) == (1, "Before")
    assert (now.json()["version"], now.json()["state"]["company"]) == (2, "After")
    assert_problem(before, 422)
    naive = times[0].replace(tzinfo=None).isoformat()
    assert acme.get(path, params={"at": naive}).json()["version"] == 1
    zulu = times[1].isoformat().replace("+00:00", "Z")
    assert acme.get(path, params={"at": zulu}).json()["version"] == 2
    for bad in ("yesterday", "2026-13-01", "0001-01-01T00:00:00+05:00"):
        assert_problem(acme.get(path, params={"at": bad}), 400)


def test_unknown_and_malformed_lead_ids_are_404(client: TestClient[Any]) -> None:
    acme = register(client)
    stage = acme.stages()[1]["id"]
    unknown = str(uuid4())
    for lead_id in (unknown, "not-a-uuid", "1234"):
        path = f"/crm/leads/{lead_id}"
        responses = [
            acme.get(path),
            acme.put(path, json={"company": "X"}),
            acme.delete(path),
            acme.patch(f"{path}/stage", json={"stage_id": stage}),
            acme.put(f"{path}/assign", json={"user_id": None}),
            acme.post(f"{path}/notes", json={"text": "x"}),
            acme.post(f"{path}/won"),
            acme.post(f"{path}/lost"),
            acme.post(f"{path}/reopen"),
            acme.get(f"{path}/activities"),
            acme.get(f"{path}/history"),
            acme.get(f"{path}/history", params={"at": "2030-01-01T00:00:00Z"}),
        ]
        for response in responses:
            assert_problem(response, 404)
    assert UUID(unknown)
