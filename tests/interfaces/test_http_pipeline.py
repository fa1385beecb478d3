"""Pipeline routes (stages: add, change, reorder, remove) and the Kanban board, through HTTP."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from tests.support.api import (
    Tenant,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def board(tenant: Tenant) -> dict[str, dict[str, Any]]:
    response = tenant.get("/crm/pipeline/board")
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()["stages"]}


def names(tenant: Tenant) -> list[str]:
    return [s["name"] for s in tenant.stages()]


def test_a_new_organization_has_the_default_pipeline(client: TestClient[Any]) -> None:
    acme = register(client)

    stages = acme.stages()

    assert [(s["name"], s["stage_type"]) for s in stages] == [
        ("Lead", "open"),
        ("Contact", "open"),
        ("Proposal", "open"),
        ("Negotiation", "open"),
        ("Won", "won"),
        ("Lost", "lost"),
    ]
    assert all(s["color"].startswith("#") and len(s["color"]) == 7 for s in stages)
    assert all((s["count"], s["total_value"]) == (0, "0.00") for s in stages)


def test_adding_a_stage_answers_201_and_places_it(client: TestClient[Any]) -> None:
    acme = register(client)

    added = acme.post("/crm/pipeline/stages", json={"name": "Demo", "color": "#AABBCC"})
    first = acme.post(
        "/crm/pipeline/stages", json={"name": "Inbox", "color": "#000000", "position": 0}
    )

    assert added.status_code == 201, added.text
    assert {"id", "version", "position"} <= added.json().keys()
    assert first.status_code == 201, first.text
    stages = acme.stages()
    assert names(acme) == [
        "Inbox",
        "Lead",
        "Contact",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
        "Demo",
    ]
    demo = next(s for s in stages if s["name"] == "Demo")
    assert (demo["id"], demo["color"], demo["stage_type"]) == (
        added.json()["id"],
        "#aabbcc",
        "open",
    )
    lead = acme.capture(stage_id=demo["id"])
    assert acme.get(f"/crm/leads/{lead['id']}").json()["stage_id"] == demo["id"]


def test_bad_stages_are_refused_and_write_nothing(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    head = services.app.recorder.max_notification_id()

    unprocessable: list[dict[str, Any]] = [
        {"name": "Lead", "color": "#000000"},
        {"name": "  contact ", "color": "#000000"},
        {"name": "", "color": "#000000"},
        {"name": "x" * 101, "color": "#000000"},
        {"name": "New", "color": "red"},
        {"name": "New", "color": "#12345"},
        {"name": "New", "color": "#gggggg"},
        {"name": "New", "color": "#000000", "position": 99},
        {"name": "New", "color": "#000000", "position": -1},
    ]
    malformed: list[Any] = [
        {"color": "#000000"},
        {"name": "New"},
        {"name": "New", "color": "#000000", "stage_type": "maybe"},
        {"name": "New", "color": "#000000", "owner": "me"},
        {"name": 5, "color": "#000000"},
        ["New", "#000000"],
    ]
    for body in unprocessable:
        assert_problem(acme.post("/crm/pipeline/stages", json=body), 422)
    for body in malformed:
        assert_problem(acme.post("/crm/pipeline/stages", json=body), 400)
    assert services.app.recorder.max_notification_id() == head
    assert len(acme.stages()) == 6


def test_a_stage_is_renamed_and_recoloured(client: TestClient[Any]) -> None:
    acme = register(client)
    contact = acme.stages()[1]
    path = f"/crm/pipeline/stages/{contact['id']}"

    renamed = acme.put(path, json={"name": "Qualified"})
    recoloured = acme.put(path, json={"color": "#ABCDEF"})
    both = acme.put(path, json={"name": "Talking", "color": "#010203"})

    for response in (renamed, recoloured, both):
        assert response.status_code == 200, response.text
    assert both.json()["id"] == contact["id"]
    after = acme.stages()[1]
    assert (after["id"], after["name"], after["color"]) == (contact["id"], "Talking", "#010203")
    assert_problem(acme.put(path, json={"name": "lead"}), 422)
    assert_problem(acme.put(path, json={"color": "blue"}), 422)
    assert_problem(acme.put(path, json={"name": 1}), 400)
    assert_problem(acme.put(path, json={"stage_type": "won"}), 400)
    assert_problem(acme.put(f"/crm/pipeline/stages/{uuid4()}", json={"name": "X"}), 404)
    assert_problem(acme.put("/crm/pipeline/stages/nope", json={"name": "X"}), 404)
    assert acme.stages()[1]["name"] == "Talking"


def test_stages_are_reordered_by_a_permutation_only(client: TestClient[Any]) -> None:
    acme = register(client)
    ids = [s["id"] for s in acme.stages()]
    new_order = [ids[1], ids[0], *ids[2:4], ids[5], ids[4]]

    reordered = acme.put("/crm/pipeline/stages/order", json={"stage_ids": new_order})

    assert reordered.status_code == 200, reordered.text
    assert [s["id"] for s in acme.stages()] == new_order
    assert [s["id"] for s in acme.get("/crm/pipeline/board").json()["stages"]] == new_order
    not_permutations = [
        new_order[:-1],
        [*new_order, new_order[0]],
        [*new_order[:-1], new_order[0]],
        [*new_order[:-1], str(uuid4())],
        [],
    ]
    for stage_ids in not_permutations:
        response = acme.put("/crm/pipeline/stages/order", json={"stage_ids": stage_ids})
        assert_problem(response, 422)
    assert_problem(acme.put("/crm/pipeline/stages/order", json={"stage_ids": ["x"]}), 400)
    assert_problem(acme.put("/crm/pipeline/stages/order", json={}), 400)
    assert [s["id"] for s in acme.stages()] == new_order


def test_an_empty_stage_is_removed(client: TestClient[Any]) -> None:
    acme = register(client)
    proposal = acme.stages()[2]

    removed = acme.delete(f"/crm/pipeline/stages/{proposal['id']}")

    assert removed.status_code == 200, removed.text
    assert "Proposal" not in names(acme)
    assert "Proposal" not in board(acme)
    assert_problem(acme.delete(f"/crm/pipeline/stages/{proposal['id']}"), 404)
    assert_problem(acme.delete(f"/crm/pipeline/stages/{uuid4()}"), 404)


def test_a_stage_holding_leads_is_removed_only_with_a_target(client: TestClient[Any]) -> None:
    acme = register(client)
    stages = acme.stages()
    contact, proposal = stages[1]["id"], stages[2]["id"]
    leads = [acme.capture(estimated_value=v, stage_id=contact)["id"] for v in ("10", "20.5")]
    archived = acme.capture(stage_id=contact, estimated_value="1000")["id"]
    acme.delete(f"/crm/leads/{archived}")
    acme.capture(stage_id=proposal, estimated_value="1")

    refused = acme.delete(f"/crm/pipeline/stages/{contact}")
    assert_problem(refused, 409)
    assert "Contact" in names(acme)
    assert_problem(
        acme.delete(f"/crm/pipeline/stages/{contact}", params={"move_leads_to": contact}), 422
    )
    assert_problem(
        acme.delete(f"/crm/pipeline/stages/{contact}", params={"move_leads_to": str(uuid4())}),
        404,
    )
    assert_problem(
        acme.delete(f"/crm/pipeline/stages/{contact}", params={"move_leads_to": "x"}), 400
    )
    assert board(acme)["Contact"]["count"] == 2

    moved = acme.delete(f"/crm/pipeline/stages/{contact}", params={"move_leads_to": proposal})

    assert moved.status_code == 200, moved.text
    columns = board(acme)
    assert "Contact" not in columns
    assert (columns["Proposal"]["count"], columns["Proposal"]["total_value"]) == (3, "31.50")
    assert {c["id"] for c in columns["Proposal"]["leads"]} >= set(leads)
    for lead_id in leads:
        lead = acme.get(f"/crm/leads/{lead_id}").json()
        assert (lead["stage_id"], lead["version"]) == (proposal, 2)
    assert acme.get(f"/crm/leads/{archived}").json()["archived"] is True


def test_the_board_counts_and_sums_open_leads_and_leaves_out_archived_ones(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()
    a = acme.capture(estimated_value="100.10", company="A")
    b = acme.capture(estimated_value="0.90")
    c = acme.capture()
    gone = acme.capture(estimated_value="999")
    acme.delete(f"/crm/leads/{gone['id']}")
    acme.patch(f"/crm/leads/{c['id']}/stage", json={"stage_id": stages[3]["id"]})
    acme.put(f"/crm/leads/{b['id']}", json={"estimated_value": "1.90"})

    columns = board(acme)

    lead = columns["Lead"]
    assert (lead["count"], lead["total_value"]) == (2, "102.00")
    assert [card["id"] for card in lead["leads"]] == [b["id"], a["id"]]
    card = next(card for card in lead["leads"] if card["id"] == a["id"])
    assert (card["company"], card["estimated_value"], card["status"]) == ("A", "100.10", "open")
    assert card["version"] == 1
    assert (columns["Negotiation"]["count"], columns["Negotiation"]["total_value"]) == (1, "0.00")
    assert [card["id"] for card in columns["Negotiation"]["leads"]] == [c["id"]]
    assert sum(col["count"] for col in columns.values()) == 3
    assert gone["id"] not in {card["id"] for col in columns.values() for card in col["leads"]}
    limited = acme.get("/crm/pipeline/board", params={"cards_per_stage": 1}).json()
    assert [len(s["leads"]) for s in limited["stages"]][:1] == [1]
    assert limited["stages"][0]["count"] == 2
    assert_problem(acme.get("/crm/pipeline/board", params={"cards_per_stage": 0}), 400)
