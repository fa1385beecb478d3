"""Business hours and the first-response SLA over HTTP: defaults, changes, refusals, audit."""

from __future__ import annotations

from typing import Any

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

WEEK = {
    "monday": [["08:00", "12:00"], ["13:00", "17:00"]],
    "saturday": [["09:00", "13:00"]],
}


def audit_types(tenant: Tenant) -> list[str]:
    rows = tenant.get("/audit/events", params={"event_type": "WorkSettings.BusinessHoursSet"})
    assert rows.status_code == 200, rows.text
    return [item["event_type"] for item in rows.json()["items"]]


def test_an_organization_works_the_default_week_until_it_sets_its_hours(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    got = acme.get("/crm/settings/business-hours")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["configured"] is False and body["timezone"] == "UTC"
    assert body["weekly"]["monday"] == [["09:00", "18:00"]] and body["weekly"]["sunday"] == []


def test_an_admin_sets_business_hours_and_the_change_is_audited(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    put = acme.put(
        "/crm/settings/business-hours",
        json={"weekly": WEEK, "holidays": ["2026-12-25"], "timezone": "America/Sao_Paulo"},
    )
    assert put.status_code == 200, put.text
    body = acme.get("/crm/settings/business-hours").json()
    assert body["configured"] is True and body["timezone"] == "America/Sao_Paulo"
    assert body["weekly"]["monday"] == WEEK["monday"] and body["weekly"]["tuesday"] == []
    assert body["holidays"] == ["2026-12-25"] and body["version"] == put.json()["version"]
    assert audit_types(acme) == ["WorkSettings.BusinessHoursSet"]
    again = acme.put(
        "/crm/settings/business-hours",
        json={"weekly": WEEK, "holidays": ["2026-12-25"], "timezone": "America/Sao_Paulo"},
    )
    assert again.json()["version"] == put.json()["version"]  # the same hours record nothing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weekly": {"monday": [["18:00", "09:00"]]}}, "weekly.monday[0]"),
        ({"weekly": {"monday": [["09:00", "12:00"], ["11:00", "14:00"]]}}, "weekly.monday"),
        ({"weekly": {}}, "weekly"),
        ({"weekly": {"someday": [["09:00", "12:00"]]}}, "weekly"),
        ({"weekly": WEEK, "timezone": "Mars/Base"}, "timezone"),
    ],
)
def test_bad_hours_are_refused_naming_the_field_and_nothing_is_written(
    client: TestClient[Any], body: dict[str, Any], field: str
) -> None:
    acme = register(client, "Acme")
    refused = acme.put("/crm/settings/business-hours", json=body)
    problem = assert_problem(refused, 422)
    assert field in str(problem), problem
    assert acme.get("/crm/settings/business-hours").json()["configured"] is False


def test_a_malformed_body_is_a_bad_request(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    assert_problem(acme.put("/crm/settings/business-hours", json={"weekly": "9 to 5"}), 400)
    assert_problem(acme.put("/crm/settings/sla", json={"enabled": True}), 400)


def test_the_sla_is_off_until_set_and_then_read_back(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    assert acme.get("/crm/settings/sla").json() == {
        "enabled": False,
        "minutes": 60,
        "business_hours": True,
        "version": 0,
    }
    put = acme.put(
        "/crm/settings/sla", json={"enabled": True, "minutes": 30, "business_hours": False}
    )
    assert put.status_code == 200, put.text
    got = acme.get("/crm/settings/sla").json()
    assert got | {"version": 0} == {
        "enabled": True,
        "minutes": 30,
        "business_hours": False,
        "version": 0,
    }


@pytest.mark.parametrize("minutes", [0, -5, 43_201])
def test_an_sla_out_of_range_is_refused(client: TestClient[Any], minutes: int) -> None:
    acme = register(client, "Acme")
    problem = assert_problem(
        acme.put("/crm/settings/sla", json={"enabled": True, "minutes": minutes}), 422
    )
    assert "minutes" in str(problem)
    assert acme.get("/crm/settings/sla").json()["enabled"] is False


@pytest.mark.parametrize(
    ("role", "allowed"), [("manager", True), ("sales", False), ("viewer", False)]
)
def test_managers_configure_work_settings_and_everyone_reads_them(
    client: TestClient[Any], services: Services, role: str, allowed: bool
) -> None:
    acme = register(client, "Acme")
    member = add_member(services, acme, role)
    assert member.get("/crm/settings/business-hours").status_code == 200
    assert member.get("/crm/settings/sla").status_code == 200
    hours = member.put("/crm/settings/business-hours", json={"weekly": WEEK})
    sla = member.put("/crm/settings/sla", json={"enabled": True, "minutes": 15})
    if allowed:
        assert (hours.status_code, sla.status_code) == (200, 200), hours.text
    else:
        assert_problem(hours, 403)
        assert_problem(sla, 403)


def test_each_organization_has_its_own_settings(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    globex = register(client, "Globex")
    acme.put("/crm/settings/sla", json={"enabled": True, "minutes": 10})
    acme.put("/crm/settings/business-hours", json={"weekly": WEEK})
    assert globex.get("/crm/settings/sla").json()["enabled"] is False
    assert globex.get("/crm/settings/business-hours").json()["configured"] is False
    # Acme's token does not reach Globex's settings
    crossed = acme.get("/crm/settings/sla", headers={"X-Org-Id": globex.organization_id})
    assert crossed.status_code == 403
