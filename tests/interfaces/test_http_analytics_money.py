"""Money has one shape across the API: every analytics amount is an exact decimal string, in the
lead's unit, like a lead's `estimated_value` — no `_cents` field left in any answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.support.api import (
    add_member,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
DAY = timedelta(days=1)


def test_every_amount_of_the_analytics_answers_is_a_decimal_string_like_a_leads_value(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    seller = add_member(services, acme, "sales")
    lead = acme.capture(estimated_value="1200.5", assigned_to=seller.user_id)["id"]
    assert acme.get(f"/crm/leads/{lead}").json()["estimated_value"] == "1200.50"
    assert acme.post(f"/crm/leads/{lead}/won").status_code == 200
    today = datetime.now(UTC).date()
    params = {"from": str(today - DAY), "to": str(today + DAY)}
    pipeline = acme.get("/analytics/pipeline", params=params).json()
    won = next(s for s in pipeline["stages"] if s["name"] == "Won")
    assert (won["total_value"], won["weighted_value"]) == ("1200.50", "1200.50")
    assert pipeline["won_value"] == pipeline["series"][0]["won_value"] == "1200.50"
    leads = acme.get("/analytics/leads", params=params).json()
    assert leads["totals"]["won_value"] == leads["groups"][0]["won_value"] == "1200.50"
    assert leads["series"][0]["won_value"] == "1200.50"
    team = acme.get("/analytics/team", params=params).json()
    mine = [m["won_value"] for m in team["members"] if m["member_id"] == seller.user_id]
    assert mine == ["1200.50"]
    asked = params | {"measures": ["won_value", "leads_won"], "dimensions": []}
    custom = acme.post("/analytics/custom-report", json=asked).json()
    assert custom["rows"] == [{"won_value": "1200.50", "leads_won": 1}]
    talk = acme.get("/analytics/communication", params=params).json()
    answers = [pipeline, leads, team, custom, talk]
    assert not [key for answer in answers for key in keys_of(answer) if key.endswith("_cents")]


def keys_of(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_of(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_of(item)
