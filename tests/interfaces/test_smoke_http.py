"""The manager's first day, end to end through HTTP, on both backends."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.support.api import register


def test_a_manager_registers_captures_a_lead_and_moves_it_across_the_board(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    stages = acme.stages()
    assert [s["name"] for s in stages] == [
        "Lead",
        "Contact",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    lead = acme.capture(estimated_value="1500.00", company="Padaria")
    moved = acme.patch(
        f"/crm/leads/{lead['id']}/stage",
        json={"stage_id": stages[1]["id"], "expected_version": lead["version"]},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    board = acme.get("/crm/pipeline/board").json()
    contact = board["stages"][1]
    assert contact["count"] == 1
    assert contact["total_value"] == "1500.00"
    assert [c["id"] for c in contact["leads"]] == [lead["id"]]
    assert board["stages"][0]["count"] == 0
