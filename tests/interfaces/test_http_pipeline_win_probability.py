"""A stage's win probability through HTTP: set, listed, on the board, audited, refused if bad."""

from __future__ import annotations

from typing import Any

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


def chances(tenant: Tenant) -> dict[str, Any]:
    return {s["name"]: s["win_probability"] for s in tenant.stages()}


def board_chances(tenant: Tenant) -> dict[str, Any]:
    response = tenant.get("/crm/pipeline/board")
    assert response.status_code == 200, response.text
    return {s["name"]: s["win_probability"] for s in response.json()["stages"]}


def test_a_win_probability_is_set_listed_kept_and_reset_to_derived(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    assert set(chances(acme).values()) == {None}
    assert set(board_chances(acme).values()) == {None}
    proposal = acme.stages()[2]
    path = f"/crm/pipeline/stages/{proposal['id']}"

    set_ = acme.put(path, json={"win_probability": 40})
    renamed = acme.put(path, json={"name": "Offer"})

    assert set_.status_code == renamed.status_code == 200, set_.text
    assert chances(acme)["Offer"] == board_chances(acme)["Offer"] == 40
    won = acme.stages()[4]["id"]
    assert acme.put(f"/crm/pipeline/stages/{won}", json={"win_probability": 100}).status_code == 200
    added = acme.post(
        "/crm/pipeline/stages", json={"name": "Demo", "color": "#000000", "win_probability": 25}
    )
    assert added.status_code == 201, added.text
    assert acme.put(path, json={"win_probability": None}).status_code == 200
    assert chances(acme) == {
        "Lead": None,
        "Contact": None,
        "Offer": None,
        "Negotiation": None,
        "Won": 100,
        "Lost": None,
        "Demo": 25,
    }
    audited = acme.get(
        "/audit/events", params={"event_type": "Pipeline.StageWinProbabilitySet"}
    ).json()["items"]
    assert [i["changes"]["win_probability"] for i in audited] == [
        {"before": 40, "after": None},
        {"before": None, "after": 100},
        {"before": None, "after": 40},
    ]


def test_bad_win_probabilities_are_refused_and_write_nothing(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    stages = acme.stages()
    contact, won, lost = stages[1]["id"], stages[4]["id"], stages[5]["id"]
    head = services.app.recorder.max_notification_id()

    unprocessable: list[tuple[str, dict[str, Any]]] = [
        (contact, {"win_probability": -1}),
        (contact, {"win_probability": 101}),
        (contact, {"name": "Talking", "win_probability": 2**40}),
        (won, {"win_probability": 99}),
        (lost, {"win_probability": 1}),
    ]
    malformed: list[tuple[str, dict[str, Any]]] = [
        (contact, {"win_probability": "fifty"}),
        (contact, {"win_probability": 12.5}),
        (contact, {"win_probability": True}),
    ]
    for stage_id, body in unprocessable:
        refused = assert_problem(acme.put(f"/crm/pipeline/stages/{stage_id}", json=body), 422)
        assert refused["errors"][0]["field"] == "win_probability"
    for stage_id, body in malformed:
        assert_problem(acme.put(f"/crm/pipeline/stages/{stage_id}", json=body), 400)
    new_won = {"name": "Closed", "color": "#000000", "stage_type": "won", "win_probability": 50}
    assert_problem(acme.post("/crm/pipeline/stages", json=new_won), 422)

    assert services.app.recorder.max_notification_id() == head
    assert [(s["name"], s["win_probability"]) for s in acme.stages()] == [
        (s["name"], None) for s in stages
    ]
