"""The organization's AI settings over HTTP: defaults, partial changes, the write-only key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from application.ai.settings import organization_key
from domain.ai_settings import ai_settings_id
from interfaces.services import Services
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")

KEY = "sk-org-own-key-0123456789abcdef"


def settings(tenant: Tenant) -> dict[str, Any]:
    response = tenant.get("/ai/settings")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_an_organization_starts_with_analysis_on_and_the_assistant_off(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    assert settings(acme) == {
        "analysis_enabled": True,
        "assistant_enabled": False,
        "assistant_sources": [],
        "handoff_threshold": 80,
        "nurture_threshold": 50,
        "urgency_alert": 80,
        "sentiment_alert": -0.5,
        "model": None,
        "instructions": None,
        "api_key_set": False,
        "version": 0,
    }


def test_an_admin_changes_some_settings_and_the_others_keep_theirs(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    body = {"assistant_enabled": True, "assistant_sources": ["WhatsApp", "site"]}
    body |= {"handoff_threshold": 70, "instructions": "Fale sempre em português."}
    changed = acme.put("/ai/settings", json=body)
    assert changed.status_code == 200, changed.text
    now = settings(acme)
    assert now["assistant_enabled"] is True and now["assistant_sources"] == ["site", "whatsapp"]
    assert now["handoff_threshold"] == 70 and now["nurture_threshold"] == 50
    assert now["instructions"] == "Fale sempre em português." and now["analysis_enabled"] is True
    rows = acme.get("/audit/events", params={"event_type": "AiSettings.DetailsChanged"}).json()[
        "items"
    ]
    [row] = rows
    assert row["changes"]["handoff_threshold"] == {"before": 80, "after": 70}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nurture_threshold": 85}, "nurture_threshold"),
        ({"handoff_threshold": 101}, "handoff_threshold"),
        ({"sentiment_alert": -1.5}, "sentiment_alert"),
        ({"instructions": "x" * 2001}, "instructions"),
    ],
)
def test_bad_settings_are_refused_naming_the_field_and_nothing_changes(
    client: TestClient[Any], body: dict[str, Any], field: str
) -> None:
    acme = register(client, "Acme")
    problem = assert_problem(acme.put("/ai/settings", json=body), 422)
    assert field in str(problem)
    assert settings(acme)["version"] == 0


def test_an_unknown_setting_is_a_bad_request(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    assert_problem(acme.put("/ai/settings", json={"temperature": 2}), 400)


def test_the_organizations_own_key_is_sealed_write_only_and_removable(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client, "Acme")
    assert acme.put("/ai/settings", json={"api_key": KEY}).status_code == 200
    assert settings(acme)["api_key_set"] is True
    org = UUID(acme.organization_id)
    assert organization_key(services.app, services.secret_box, org) == KEY
    # nowhere in clear: not in an answer, the audit trail or the stored events
    trail = acme.get("/audit/events", params={"limit": 200}).text
    stored = services.app.recorder.select_events(ai_settings_id(org))
    assert KEY not in settings(acme).__repr__() and KEY not in trail
    assert all(KEY.encode() not in s.state for s in stored)
    assert acme.put("/ai/settings", json={"api_key": None}).status_code == 200
    assert settings(acme)["api_key_set"] is False
    assert organization_key(services.app, services.secret_box, org) is None


@pytest.mark.parametrize("role", ["manager", "sales", "viewer"])
def test_only_admins_change_ai_settings_and_every_member_reads_them(
    client: TestClient[Any], services: Services, role: str
) -> None:
    acme = register(client, "Acme")
    member = add_member(services, acme, role)
    assert member.get("/ai/settings").status_code == 200
    assert_problem(member.put("/ai/settings", json={"assistant_enabled": True}), 403)


def test_each_organization_has_its_own_ai_settings(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    globex = register(client, "Globex")
    acme.put("/ai/settings", json={"analysis_enabled": False, "api_key": KEY})
    assert settings(globex)["analysis_enabled"] is True
    assert settings(globex)["api_key_set"] is False
    crossed = acme.get("/ai/settings", headers={"X-Org-Id": globex.organization_id})
    assert crossed.status_code == 403
