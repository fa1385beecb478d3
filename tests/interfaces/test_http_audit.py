"""The audit trail over HTTP: who did what, when, from where, with before/after of each change."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.support.api import (
    Tenant,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def audit(tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = tenant.get("/audit/events", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def a_day_at_acme(client: TestClient[Any]) -> tuple[Tenant, str, list[dict[str, Any]]]:
    acme = register(client)
    stages = acme.stages()
    lead = acme.capture(company="Padaria", estimated_value="10")["id"]
    acme.put(f"/crm/leads/{lead}", json={"company": "Padaria Nova", "estimated_value": "20"})
    acme.patch(f"/crm/leads/{lead}/stage", json={"stage_id": stages[1]["id"]})
    acme.put(f"/crm/pipeline/stages/{stages[2]['id']}", json={"name": "Offer"})
    return acme, lead, stages


def test_every_event_of_the_organization_is_audited_with_actor_and_origin(
    client: TestClient[Any],
) -> None:
    acme, lead, _ = a_day_at_acme(client)

    items = audit(acme)["items"]

    assert [i["event_type"] for i in items] == [
        "Pipeline.StageRenamed",
        "Lead.MovedToStage",
        "Lead.DetailsChanged",
        "Lead.Captured",
        "Pipeline.Created",
        "Organization.Registered",
    ]
    positions = [i["position"] for i in items]
    assert positions == sorted(positions, reverse=True)
    for item in items:
        assert (item["actor_kind"], item["actor_id"]) == ("user", acme.user_id)
        assert (item["ip"], item["user_agent"]) == ("testclient", "testclient")
        assert datetime.fromisoformat(item["occurred_at"]).tzinfo is not None
    by_type = {i["event_type"]: i for i in items}
    assert by_type["Lead.Captured"]["resource_id"] == lead
    assert by_type["Lead.Captured"]["aggregate_type"] == "Lead"
    assert by_type["Organization.Registered"]["resource_id"] == acme.organization_id


def test_audit_rows_carry_the_before_and_after_of_each_change(client: TestClient[Any]) -> None:
    acme, _, stages = a_day_at_acme(client)

    by_type = {i["event_type"]: i for i in audit(acme)["items"]}

    assert by_type["Lead.DetailsChanged"]["changes"] == {
        "company": {"before": "Padaria", "after": "Padaria Nova"},
        "estimated_value": {"before": "10.00", "after": "20.00"},
    }
    assert by_type["Lead.MovedToStage"]["changes"]["stage_id"] == {
        "before": stages[0]["id"],
        "after": stages[1]["id"],
    }
    renamed = by_type["Pipeline.StageRenamed"]["changes"]
    assert renamed["name"] == {"before": "Proposal", "after": "Offer"}


def test_the_audit_trail_filters_by_resource_type_and_time(client: TestClient[Any]) -> None:
    acme, lead, _ = a_day_at_acme(client)
    everything = audit(acme)["items"]

    of_lead = audit(acme, resource_id=lead)["items"]
    moves = audit(acme, event_type="Lead.MovedToStage")["items"]
    times = sorted(datetime.fromisoformat(i["occurred_at"]) for i in everything)
    middle = times[3]
    since = audit(acme, since=middle.isoformat())["items"]
    until = audit(acme, until=middle.isoformat())["items"]
    window = audit(acme, since=times[1].isoformat(), until=times[2].isoformat())["items"]

    assert [i["event_type"] for i in of_lead] == [
        "Lead.MovedToStage",
        "Lead.DetailsChanged",
        "Lead.Captured",
    ]
    assert [i["resource_id"] for i in moves] == [lead]
    assert len(since) + len(until) == len(everything)
    assert all(datetime.fromisoformat(i["occurred_at"]) >= middle for i in since)
    assert all(datetime.fromisoformat(i["occurred_at"]) < middle for i in until)
    assert [datetime.fromisoformat(i["occurred_at"]) for i in window] == [times[1]]
    spaced = middle.isoformat().replace("+", " ")  # a "+" sent unencoded arrives as a space
    assert audit(acme, since=spaced)["items"] == since
    later = (times[-1] + timedelta(hours=1)).isoformat()
    assert audit(acme, since=later)["items"] == []
    assert audit(acme, event_type="Lead.Nothing")["items"] == []


def test_the_audit_trail_pages_with_cursors(client: TestClient[Any]) -> None:
    acme, _, _ = a_day_at_acme(client)
    everything = audit(acme)["items"]

    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        page = audit(acme, limit=4, **({"cursor": cursor} if cursor else {}))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [len(p) for p in pages] == [4, 2]
    assert [i for p in pages for i in p] == everything


def test_bad_audit_queries_are_problems(client: TestClient[Any]) -> None:
    acme = register(client)
    bad_400: list[dict[str, Any]] = [
        {"since": "yesterday"},
        {"until": "2026-02-30T00:00:00Z"},
        {"since": "0001-01-01T00:00:00+05:00"},
        {"until": "9999-12-31T23:59:59-05:00"},
        {"resource_id": "lead-1"},
        {"limit": 0},
        {"limit": 201},
        {"event_type": "x" * 101},
    ]
    for params in bad_400:
        assert_problem(acme.get("/audit/events", params=params), 400)
    backwards = {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}
    assert_problem(acme.get("/audit/events", params=backwards), 422)
    assert_problem(acme.get("/audit/events", params={"cursor": "not-a-cursor"}), 422)
