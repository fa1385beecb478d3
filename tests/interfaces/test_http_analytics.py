"""Analytics routes over HTTP: figures after a small story, bad input, who sees which rows.

The CSV tables are checked in `test_http_analytics_csv.py`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from domain.call import Call
from domain.conversation import Conversation
from domain.values import Actor
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def today() -> date:
    """Today in UTC, the zone of a new organization; read when used, as a run may cross midnight."""
    return datetime.now(UTC).date()


def window() -> dict[str, str]:
    """Yesterday to tomorrow: holds the story's events even if midnight passes in between."""
    day = today()
    return {"from": str(day - timedelta(days=1)), "to": str(day + timedelta(days=1))}


def story(acme: Tenant, sales: Tenant) -> dict[str, str]:
    """Three leads: one won from the web, one lost by referral, one moved to the second stage."""
    stages = {s["name"]: s["id"] for s in acme.stages()}
    won = acme.capture(source="web", estimated_value="1200.50", assigned_to=sales.user_id)["id"]
    lost = acme.capture(source="referral", estimated_value="300")["id"]
    moved = acme.capture(source="web", estimated_value="100")["id"]
    assert acme.patch(f"/crm/leads/{moved}/stage", json={"stage_id": stages["Contact"]}).is_success
    assert acme.post(f"/crm/leads/{won}/won").is_success
    assert acme.post(f"/crm/leads/{lost}/lost").is_success
    return stages


def test_the_pipeline_shows_stages_now_and_the_period_funnel(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    sales = add_member(services, acme, "sales")
    stages = story(acme, sales)
    body = acme.get("/analytics/pipeline", params=window()).json()
    by_name = {s["name"]: s for s in body["stages"]}
    assert (body["won"], body["lost"], body["win_rate"]) == (1, 1, 0.5)
    assert body["won_value"] == "1200.50"
    assert by_name["Won"]["count"] == 1 and by_name["Won"]["win_probability"] == 100
    assert by_name["Lost"]["weighted_value"] == "0.00"
    assert by_name["Lead"]["entered"] == 3 and by_name["Contact"]["count"] == 1
    assert by_name["Contact"]["weighted_value"] == "40.00"  # 100.00 at 40 %
    assert by_name["Lead"]["conversion_to_next"] == round(1 / 3, 4)
    moves = {(t["from_stage_id"], t["to_stage_id"]): t["count"] for t in body["transitions"]}
    assert moves[(stages["Lead"], stages["Contact"])] == 1
    assert moves[(stages["Lead"], stages["Won"])] == 1
    assert [p["created"] for p in body["series"]] == [3]


def test_leads_by_source_give_won_revenue_and_conversion(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    story(acme, add_member(services, acme, "sales"))
    body = acme.get("/analytics/leads", params=window() | {"group_by": "source"}).json()
    groups = {g["group"]: g for g in body["groups"]}
    assert groups["web"]["new"] == 2 and groups["web"]["won_value"] == "1200.50"
    assert groups["web"]["conversion_rate"] == 0.5
    assert groups["referral"]["lost"] == 1 and groups["referral"]["win_rate"] == 0.0
    assert body["totals"]["new"] == 3


def test_sales_see_the_totals_but_only_their_own_assignee_rows(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    sales = add_member(services, acme, "sales")
    story(acme, sales)
    sales.position = acme.position
    params = window() | {"group_by": "assignee"}
    everyone = acme.get("/analytics/leads", params=params).json()
    mine = sales.get("/analytics/leads", params=params).json()
    assert {g["group"] for g in everyone["groups"]} == {None, sales.user_id}
    assert [g["group"] for g in mine["groups"]] == [sales.user_id]
    assert mine["totals"] == everyone["totals"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/analytics/pipeline", {"from": "yesterday"}, "from"),
        ("/analytics/pipeline", {"to": "2026-02-30"}, "to"),
        ("/analytics/pipeline", {"to": "0001-01-05"}, "between 1970 and 2200"),
        ("/analytics/pipeline", {"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ("/analytics/pipeline", {"granularity": "hour"}, "day, week, month"),
        ("/analytics/leads", {"group_by": "colour"}, "source, assignee, stage"),
        ("/analytics/leads", {"format": "xml"}, "json, csv"),
    ],
)
def test_bad_periods_and_choices_are_422_problems_naming_what_is_allowed(
    client: TestClient[Any], path: str, params: dict[str, str], named: str
) -> None:
    acme = register(client)
    body = assert_problem(acme.get(path, params=params), 422)
    assert named in body["detail"]


def test_an_empty_organization_has_zeroes_over_the_default_thirty_days(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    before = today()
    body = acme.get("/analytics/pipeline").json()
    last = date.fromisoformat(body["to"])
    assert last in (before, today())  # the request may straddle midnight
    assert body["from"] == str(last - timedelta(days=29))
    assert body["won"] == 0 and body["win_rate"] is None and body["series"] == []
    assert all(s["count"] == 0 and s["average_age_seconds"] is None for s in body["stages"])


def talk(services: Any, acme: Tenant, seller: Tenant, lead: str) -> None:
    """An inbound message answered by the seller, one left waiting, and an answered call."""
    org, user = UUID(acme.organization_id), Actor("user", seller.user_id)
    provider = Actor("provider", "business_api")
    chats = []
    for phone in ("+5511987654321", "+5511987654322"):
        chat = Conversation.start(
            organization_id=org, lead_id=UUID(lead), channel="whatsapp", contact=phone, actor=user
        )
        chat.receive(
            provider_message_id=phone,
            provider_type="business_api",
            text="hi",
            sent_at=datetime.now(UTC),
            actor=provider,
        )
        chats.append(chat)
    chats[0].send(provider_type="business_api", now=datetime.now(UTC), text="hello", actor=user)
    call = Call.start(
        organization_id=org,
        lead_id=UUID(lead),
        direction="outbound",
        provider_type="twilio",
        from_number="+14155552671",
        to_number="+5511987654321",
        actor=user,
    )
    call.progress("answered", actor=provider)
    call.end(duration_seconds=95, outcome="completed", actor=provider)
    acme.position = services.app.commit(*chats, call)


def test_team_and_communication_count_each_members_work(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    seller, other = add_member(services, acme, "sales"), add_member(services, acme, "sales")
    story(acme, seller)
    lead = acme.capture(assigned_to=other.user_id)["id"]
    talk(services, acme, seller, lead)
    team = acme.get("/analytics/team", params=window()).json()
    rows = {m["member_id"]: m for m in team["members"]}
    mine = rows[seller.user_id]
    assert (mine["leads_assigned"], mine["won"], mine["won_value"]) == (1, 1, "1200.50")
    assert (mine["messages_sent"], mine["calls_placed"], mine["calls_answered"]) == (1, 1, 1)
    assert mine["talk_seconds"] == 95 and mine["median_first_response_seconds"] is not None
    assert rows[other.user_id]["leads_assigned"] == 1
    assert acme.user_id in rows  # the owner moved a lead
    seller.position = acme.position
    assert [m["member_id"] for m in seller.get("/analytics/team").json()["members"]] == [
        seller.user_id
    ]
    talked = acme.get("/analytics/communication", params=window() | {"waiting_hours": 1}).json()
    assert [(m["messages_in"], m["messages_out"]) for m in talked["messages"]] == [(2, 1)]
    assert talked["calls"] == [
        {
            "outcome": "completed",
            "calls": 1,
            "duration_seconds": 95,
            "average_duration_seconds": 95.0,
        }
    ]
    assert (talked["calls_placed"], talked["calls_answered"], talked["first_responses"]) == (
        1,
        1,
        1,
    )
    assert talked["waiting_for_reply"] == 0  # one waits, but for less than an hour


def test_a_custom_report_sums_whitelisted_measures_by_dimension(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    story(acme, add_member(services, acme, "sales"))
    body = window() | {"measures": ["leads_created", "won_value"], "dimensions": ["source"]}
    rows = acme.post("/analytics/custom-report", json=body).json()["rows"]
    assert rows == [
        {"source": "referral", "leads_created": 1, "won_value": "0.00"},
        {"source": "web", "leads_created": 2, "won_value": "1200.50"},
    ]
    filtered = body | {"filters": {"source": ["web"]}, "dimensions": []}
    assert acme.post("/analytics/custom-report", json=filtered).json()["rows"] == [
        {"leads_created": 2, "won_value": "1200.50"}
    ]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"measures": ["revenue; DROP TABLE users"]}, "leads_created"),
        ({"measures": []}, "talk_seconds"),
        ({"measures": ["leads_won"], "dimensions": ["colour"]}, "assignee"),
        ({"measures": ["leads_won"], "filters": {"period": ["x"]}}, "source"),
        ({"measures": ["leads_won"], "filters": {"assignee": ["nobody"]}}, "not an id"),
        ({"measures": ["leads_won"], "from": "2026-05-02", "to": "2026-05-01"}, "after"),
    ],
)
def test_a_custom_report_outside_the_whitelist_is_a_422_naming_the_allowed_ones(
    client: TestClient[Any], body: dict[str, Any], named: str
) -> None:
    acme = register(client)
    problem = assert_problem(acme.post("/analytics/custom-report", json=body), 422)
    assert named in problem["detail"]


def test_analytics_of_another_organization_are_refused(client: TestClient[Any]) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    foreign = {"X-Org-Id": acme.organization_id}
    for path in ("pipeline", "leads", "team", "communication"):
        assert_problem(rival.get(f"/analytics/{path}", headers=foreign), 403)
    body = {"measures": ["leads_created"]}
    assert_problem(rival.post("/analytics/custom-report", json=body, headers=foreign), 403)


def test_sales_asking_a_custom_report_per_assignee_get_only_their_own_figures(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    story(acme, seller)
    seller.position = acme.position
    by_member = window() | {"measures": ["leads_created"], "dimensions": ["assignee"]}
    assert seller.post("/analytics/custom-report", json=by_member).json()["rows"] == [
        {"assignee": seller.user_id, "leads_created": 1}
    ]
    spying = window() | {"measures": ["leads_created"], "filters": {"assignee": [None]}}
    assert seller.post("/analytics/custom-report", json=spying).json()["rows"] == [
        {"leads_created": 0}
    ]
    totals = window() | {"measures": ["leads_created"]}
    assert seller.post("/analytics/custom-report", json=totals).json()["rows"] == [
        {"leads_created": 3}
    ]


def test_the_openapi_document_lists_csv_beside_json_for_every_analytics_operation(
    client: TestClient[Any],
) -> None:
    document = client.get("/schema/openapi.json").json()
    operations = [
        operation
        for path, item in document["paths"].items()
        if path.startswith("/analytics/")
        for method, operation in item.items()
        if method in ("get", "post")
    ]
    assert len(operations) == 5
    for operation in operations:
        content = operation["responses"]["200"]["content"]
        assert set(content) == {"application/json", "text/csv"}, operation["operationId"]
        assert content["text/csv"]["schema"]["type"] == "string"
        [asked] = [p for p in operation["parameters"] if p["name"] == "format"]
        assert asked["in"] == "query" and "csv" in asked["description"]
