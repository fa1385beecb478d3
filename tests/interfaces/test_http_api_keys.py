"""API keys over HTTP: shown once, stored hashed, scoped, bound to one organization, revocable."""

from __future__ import annotations

import hashlib
import time
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def create(tenant: Tenant, scopes: list[str], name: str = "CI") -> dict[str, Any]:
    response = tenant.post("/api-keys", json={"name": name, "scopes": scopes})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_key_is_shown_once_and_stored_only_as_a_hash(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client, "Acme")
    made = create(acme, ["leads:read"])
    assert made["key"].startswith("lcrm_") and made["key"].split("_", 3)[3].startswith(
        made["prefix"].split("…")[1]
    )
    listed = acme.get("/api-keys").json()
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    stored = [
        vars(e)
        for e in services.app.events.get(UUID(acme.organization_id))
        if type(e).__name__ == "ApiKeyCreated"
    ]
    assert stored[0]["secret_hash"] == hashlib.sha256(made["key"].encode()).hexdigest()
    assert made["key"] not in str(stored)
    rows = acme.get("/audit/events", params={"event_type": "Organization.ApiKeyCreated"})
    assert made["key"] not in rows.text and rows.json()["items"]


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_a_key_works_in_either_header_with_or_without_the_org_header(
    client: TestClient[Any], header: str
) -> None:
    acme = register(client, "Acme")
    key = create(acme, ["leads:read", "leads:write"])["key"]
    sent = {"Authorization": f"Bearer {key}"} if header == "authorization" else {"X-API-Key": key}
    captured = client.post("/crm/leads", json={"full_name": "By Key"}, headers=sent)
    assert captured.status_code == 201, captured.text
    with_org = sent | {"X-Org-Id": acme.organization_id}
    assert client.get("/crm/leads", headers=with_org).status_code == 200
    acme.position = captured.json()["position"]
    [row] = acme.get("/audit/events", params={"event_type": "Lead.Captured"}).json()["items"]
    made = acme.get("/api-keys").json()[0]
    assert (row["actor_kind"], row["actor_id"], row["ip"]) == ("api_key", made["id"], "testclient")


def test_scopes_are_enforced_and_changes_take_effect(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    made = create(acme, ["leads:read"])
    key = {"X-API-Key": made["key"]}
    assert client.get("/crm/leads", headers=key).status_code == 200
    assert_problem(client.post("/crm/leads", json={"full_name": "X"}, headers=key), 403)
    assert_problem(client.get("/audit/events", headers=key), 403)
    assert_problem(client.get("/api-keys", headers=key), 403)
    changed = acme.put(f"/api-keys/{made['id']}/scopes", json={"scopes": ["audit:read"]})
    assert changed.status_code == 200, changed.text
    assert client.get("/audit/events", headers=key).status_code == 200
    assert_problem(client.get("/crm/leads", headers=key), 403)
    head = str(client.app.state.services.app.recorder.max_notification_id())
    rows = client.get(
        "/audit/events",
        params={"event_type": "SecurityIncident.Recorded"},
        headers=key | {"X-Min-Position": head},
    ).json()["items"]
    assert [r["changes"]["kind"]["after"] for r in rows] == ["permission_denied"] * 4
    assert {r["actor_id"] for r in rows} == {made["id"]}


def test_a_wrong_secret_or_a_revoked_key_is_401(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    made = create(acme, ["leads:read"])
    wrong = made["key"][:-4] + ("AAAA" if not made["key"].endswith("AAAA") else "BBBB")
    for key in (wrong, "lcrm_garbage", "lcrm_" + "0" * 32 + "_" + "0" * 32 + "_x"):
        assert_problem(client.get("/crm/leads", headers={"X-API-Key": key}), 401)
    revoked = acme.delete(f"/api-keys/{made['id']}")
    assert revoked.status_code == 200, revoked.text
    assert_problem(client.get("/crm/leads", headers={"X-API-Key": made["key"]}), 401)
    assert acme.get("/api-keys").json()[0]["revoked"] is True
    again = acme.put(f"/api-keys/{made['id']}/scopes", json={"scopes": ["leads:read"]})
    assert_problem(again, 409)


def test_a_key_is_refused_for_another_organization_and_the_attempt_recorded_in_both(
    client: TestClient[Any],
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    key = create(acme, ["leads:read"])["key"]
    response = client.get(
        "/crm/leads", headers={"X-API-Key": key, "X-Org-Id": rival.organization_id}
    )
    assert_problem(response, 403)
    head = client.app.state.services.app.recorder.max_notification_id()
    for tenant in (acme, rival):
        tenant.position = head
        rows = tenant.get(
            "/audit/events", params={"event_type": "SecurityIncident.Recorded"}
        ).json()["items"]
        assert [r["changes"]["kind"]["after"] for r in rows] == ["cross_organization_attempt"]


def test_bad_key_requests_write_nothing(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    made = create(acme, ["leads:read"])
    for body, status in (
        ({"name": "k", "scopes": ["nope"]}, 422),
        ({"name": "k", "scopes": []}, 422),
        ({"name": "", "scopes": ["leads:read"]}, 422),
        ({"name": "k", "scopes": ["api_keys:manage"]}, 422),
        ({"name": "k"}, 400),
        ({"name": "k", "scopes": "leads:read"}, 400),
    ):
        assert_problem(acme.post("/api-keys", json=body), status)
    assert_problem(acme.put(f"/api-keys/{made['id']}/scopes", json={"scopes": ["x"]}), 422)
    assert len(acme.get("/api-keys").json()) == 1
    assert acme.get("/api-keys").json()[0]["scopes"] == ["leads:read"]


def test_keys_of_another_organization_are_not_found(client: TestClient[Any]) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    made = create(acme, ["leads:read"])
    assert_problem(
        rival.put(f"/api-keys/{made['id']}/scopes", json={"scopes": ["leads:read"]}), 404
    )
    assert_problem(rival.delete(f"/api-keys/{made['id']}"), 404)
    assert rival.get("/api-keys").json() == []
    assert client.get("/crm/leads", headers={"X-API-Key": made["key"]}).status_code == 200


@pytest.mark.parametrize("role", ["manager", "sales", "viewer"])
def test_only_admins_manage_keys(client: TestClient[Any], services: Any, role: str) -> None:
    acme = register(client, "Acme")
    made = create(acme, ["leads:read"])
    member = add_member(services, acme, role)
    assert_problem(member.get("/api-keys"), 403)
    assert_problem(member.post("/api-keys", json={"name": "k", "scopes": ["leads:read"]}), 403)
    assert_problem(member.put(f"/api-keys/{made['id']}/scopes", json={"scopes": ["x"]}), 403)
    assert_problem(member.delete(f"/api-keys/{made['id']}"), 403)
    assert_problem(client.get("/api-keys", headers={"X-Org-Id": acme.organization_id}), 401)


def test_last_use_is_recorded_at_most_once_a_minute(client: TestClient[Any]) -> None:
    acme = register(client, "Acme")
    made = create(acme, ["leads:read"])
    assert acme.get("/api-keys").json()[0]["last_used_at"] is None
    client.get("/crm/leads", headers={"X-API-Key": made["key"]})
    first = None
    deadline = time.monotonic() + 5
    while first is None and time.monotonic() < deadline:
        first = acme.get("/api-keys").json()[0]["last_used_at"]
        time.sleep(0.02)
    assert first is not None
    client.get("/crm/leads", headers={"X-API-Key": made["key"]})
    time.sleep(0.2)
    assert acme.get("/api-keys").json()[0]["last_used_at"] == first
