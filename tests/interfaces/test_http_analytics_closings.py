"""A closed lead counts once: its current closing, in the period of its latest win or loss.

Histories written through the HTTP API on a fake event clock spread over three weeks; every
closing figure (pipeline, leads by source, team, custom report) is read over periods that hold
the earlier closing, the later one, or both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.support.api import (
    Tenant,
    add_member,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)
from tests.support.clock import FakeClock, event_clock

pytestmark = pytest.mark.usefixtures("cheap_hashing")
DAY = timedelta(days=1)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with event_clock(datetime.now(UTC) - 21 * DAY) as clock:
        yield clock


def period(first: datetime, last: datetime) -> dict[str, str]:
    return {"from": str(first.date()), "to": str(last.date())}


def act(acme: Tenant, lead: str, action: str, **body: Any) -> None:
    response = acme.post(f"/crm/leads/{lead}/{action}", **({"json": body} if body else {}))
    assert response.status_code == 200, response.text


def row_of(acme: Tenant, member: Tenant, params: dict[str, str]) -> dict[str, Any]:
    members = acme.get("/analytics/team", params=params).json()["members"]
    return next((m for m in members if m["member_id"] == member.user_id), {})


def closing_figures(acme: Tenant, seller: Tenant, params: dict[str, str]) -> dict[str, Any]:
    """The closings and won value of each answer that reports them, over one period."""
    pipeline = acme.get("/analytics/pipeline", params=params).json()
    by_source = acme.get("/analytics/leads", params=params | {"group_by": "source"}).json()
    team = row_of(acme, seller, params)
    asked = params | {"measures": ["leads_won", "leads_lost", "won_value"], "dimensions": []}
    [custom] = acme.post("/analytics/custom-report", json=asked).json()["rows"]
    return {
        "pipeline": (pipeline["won"], pipeline["lost"], pipeline["won_value"]),
        "series": [(p["period"], p["won"], p["won_value"]) for p in pipeline["series"]],
        "cycle": pipeline["average_sales_cycle_seconds"],
        "source": [(g["group"], g["won"], g["won_value"]) for g in by_source["groups"]],
        "team": (team.get("won"), team.get("lost"), team.get("won_value")),
        "custom": (custom["leads_won"], custom["leads_lost"], custom["won_value"]),
    }


def test_a_lead_won_reopened_and_won_again_counts_one_win_in_the_period_of_the_latest(
    client: TestClient[Any], services: Any, clock: FakeClock
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    captured = clock.now
    lead = acme.capture(source="web", estimated_value="1000", assigned_to=seller.user_id)["id"]
    first_win = clock.advance(DAY)
    act(acme, lead, "won")
    clock.advance(9 * DAY)
    act(acme, lead, "reopen")
    latest_win = clock.advance(9 * DAY)
    act(acme, lead, "won")

    everything = closing_figures(acme, seller, period(captured, latest_win))
    assert everything == {
        "pipeline": (1, 0, "1000.00"),
        "series": [(str(captured.date()), 0, "0.00"), (str(latest_win.date()), 1, "1000.00")],
        "cycle": float((latest_win - captured) // timedelta(seconds=1)),
        "source": [("web", 1, "1000.00")],
        "team": (1, 0, "1000.00"),
        "custom": (1, 0, "1000.00"),
    }
    before_the_reopen = closing_figures(acme, seller, period(first_win, first_win + DAY))
    assert before_the_reopen["pipeline"] == (0, 0, "0.00")
    assert before_the_reopen["custom"] == (0, 0, "0.00")


def test_a_win_reopened_and_never_won_again_counts_no_win(
    client: TestClient[Any], services: Any, clock: FakeClock
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    captured = clock.now
    lead = acme.capture(source="web", estimated_value="250.50", assigned_to=seller.user_id)["id"]
    clock.advance(DAY)
    act(acme, lead, "won")
    reopened = clock.advance(5 * DAY)
    act(acme, lead, "reopen")

    figures = closing_figures(acme, seller, period(captured, reopened))
    assert figures == {
        "pipeline": (0, 0, "0.00"),
        "series": [(str(captured.date()), 0, "0.00")],  # the capture's bucket only
        "cycle": None,
        "source": [("web", 0, "0.00")],
        "team": (0, 0, "0.00"),
        "custom": (0, 0, "0.00"),
    }
    pipeline = acme.get("/analytics/pipeline", params=period(captured, reopened)).json()
    assert pipeline["win_rate"] is None
    # flow figures stay event counts: into Won, then back to Lead
    assert sum(t["count"] for t in pipeline["transitions"]) == 2


def test_a_won_lead_moved_straight_to_a_lost_stage_counts_only_the_loss(
    client: TestClient[Any], services: Any, clock: FakeClock
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    stages = {s["name"]: s["id"] for s in acme.stages()}
    captured = clock.now
    lead = acme.capture(source="ads", estimated_value="80", assigned_to=seller.user_id)["id"]
    clock.advance(DAY)
    act(acme, lead, "won")
    lost = clock.advance(3 * DAY)
    moved = acme.patch(f"/crm/leads/{lead}/stage", json={"stage_id": stages["Lost"]})
    assert moved.status_code == 200, moved.text

    figures = closing_figures(acme, seller, period(captured, lost))
    assert figures["pipeline"] == (0, 1, "0.00")
    assert figures["team"] == (0, 1, "0.00")
    assert figures["custom"] == (0, 1, "0.00")
    assert figures["source"] == [("ads", 0, "0.00")]
