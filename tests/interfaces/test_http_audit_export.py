"""The hash-chained export over HTTP: read from the event log, one organization's, verifiable."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from application.audit.chain import ChainBrokenError, verify
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
NDJSON = "application/x-ndjson"


def export(tenant: Tenant, **params: Any) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The export's raw lines and the same lines parsed (the trailer last)."""
    response = tenant.get("/audit/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NDJSON)
    raw = list(io.BytesIO(response.content))
    return raw, [json.loads(line) for line in raw]


def a_week_at(client: TestClient[Any], name: str) -> tuple[Tenant, str]:
    tenant = register(client, name)
    stages = tenant.stages()
    lead = tenant.capture(company=f"{name} Co", estimated_value="10.50")["id"]
    tenant.put(f"/crm/leads/{lead}", json={"company": f"{name} Ltd"})
    tenant.patch(f"/crm/leads/{lead}/stage", json={"stage_id": stages[1]["id"]})
    tenant.post(f"/crm/leads/{lead}/notes", json={"text": "called"})
    tenant.post(f"/crm/leads/{lead}/won")
    return tenant, lead


def test_an_export_verifies_and_holds_every_event_of_the_organization_in_log_order(
    client: TestClient[Any], services: Any
) -> None:
    acme, _ = a_week_at(client, "Acme")
    rival, rival_lead = a_week_at(client, "Rival")
    acme.capture(full_name="After the rival")

    raw, lines = export(acme)

    *events, trailer = lines
    verified = verify(raw)
    assert (verified.count, verified.final_hash) == (trailer["count"], trailer["final_hash"])
    assert trailer["count"] == len(events) and trailer["trailer"] is True
    org = UUID(acme.organization_id)
    stored = services.app.recorder.select_organization_notifications(
        org, limit=10_000, stop=trailer["up_to"]
    )
    assert [e["position"] for e in events] == [n.id for n in stored]
    assert {e["organization_id"] for e in events} == {acme.organization_id}
    assert rival.organization_id not in b"".join(raw).decode() and rival_lead not in str(events)
    assert [e["event_type"] for e in events][:3] == [
        "Organization.Registered",
        "Pipeline.Created",
        "Lead.Captured",
    ]


def test_each_line_names_the_actor_origin_and_json_safe_data(client: TestClient[Any]) -> None:
    acme, lead = a_week_at(client, "Acme")

    _, lines = export(acme)

    captured = next(e for e in lines if e.get("event_type") == "Lead.Captured")
    assert (captured["aggregate_type"], captured["aggregate_id"]) == ("Lead", lead)
    assert captured["version"] == 1
    assert captured["actor"] == {"kind": "user", "id": acme.user_id}
    assert (captured["ip"], captured["user_agent"]) == ("testclient", "testclient")
    assert captured["data"]["estimated_value"] == "10.50"
    assert datetime.fromisoformat(captured["time"]).utcoffset().total_seconds() == 0
    moved = next(e for e in lines if e.get("event_type") == "Lead.MovedToStage")
    assert isinstance(moved["data"]["to_stage_id"], str)


def test_flipping_any_byte_of_any_line_of_a_real_export_makes_verify_name_that_line(
    client: TestClient[Any],
) -> None:
    acme, _ = a_week_at(client, "Acme")
    raw, _ = export(acme)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def flipped(data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(raw) - 1))
        offset = data.draw(st.integers(0, len(raw[index]) - 1))
        line = bytearray(raw[index])
        line[offset] ^= data.draw(st.integers(1, 255))
        altered = b"".join([*raw[:index], bytes(line), *raw[index + 1 :]])
        with pytest.raises(ChainBrokenError) as broken:
            verify(io.BytesIO(altered))
        assert broken.value.line == index + 1

    flipped()


def test_filters_by_type_and_time_give_an_export_that_verifies_on_its_own(
    client: TestClient[Any],
) -> None:
    acme, _ = a_week_at(client, "Acme")
    _, everything = export(acme)
    times = [e["time"] for e in everything[:-1]]
    since, until = times[2], times[-2]

    raw, lines = export(acme, types="Lead.MovedToStage,Lead.Won")
    wanted = {"Lead.MovedToStage", "Lead.Won"}
    kept = [e["position"] for e in everything[:-1] if e["event_type"] in wanted]
    assert [e["position"] for e in lines[:-1]] == kept and len(kept) >= 2
    assert lines[-1]["types"] == ["Lead.MovedToStage", "Lead.Won"]
    assert verify(raw).count == len(kept)

    raw, lines = export(acme, since=since, until=until)
    at = datetime.fromisoformat
    kept = [t for t in times if at(since) <= at(t) < at(until)]
    assert [e["time"] for e in lines[:-1]] == kept and len(kept) >= 3
    assert verify(raw).count == len(kept)
    assert (lines[-1]["since"], lines[-1]["until"]) == (since, until)
    assert lines[0]["prev_hash"] == everything[0]["prev_hash"]  # every chain starts at the org


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "2026-13-01T00:00:00Z"},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"types": "Lead.Nonexistent"},
        {"types": "lead.captured"},
        {"types": " , "},
    ],
)
def test_bad_filters_are_422_problems_and_nothing_is_exported(
    client: TestClient[Any], params: dict[str, str]
) -> None:
    acme = register(client, "Acme")
    body = assert_problem(acme.get("/audit/export", params=params), 422)
    assert body["errors"][0]["field"] in params


def test_only_admins_and_keys_with_audit_read_may_export(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client, "Acme")
    for role in ("manager", "sales", "viewer"):
        assert_problem(add_member(services, acme, role).get("/audit/export"), 403)
    keys = {}
    for scopes in (["audit:read"], ["leads:read", "analytics:read"]):
        made = acme.post("/api-keys", json={"name": "k", "scopes": scopes})
        keys[scopes[0]] = made.json()["key"]
    by_auditor = client.get("/audit/export", headers={"X-API-Key": keys["audit:read"]})
    assert by_auditor.status_code == 200 and verify(io.BytesIO(by_auditor.content)).count > 0
    assert_problem(client.get("/audit/export", headers={"X-API-Key": keys["leads:read"]}), 403)
    refused = acme.post("/api-keys", json={"name": "k", "scopes": ["audit:export"]})
    assert_problem(refused, 422)  # held through audit:read, never granted on its own


def test_another_organizations_header_is_refused(client: TestClient[Any]) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    response = acme.get("/audit/export", headers={"X-Org-Id": rival.organization_id})
    assert_problem(response, 403)


def test_every_export_is_recorded_in_the_audit_trail_and_in_later_exports(
    client: TestClient[Any],
) -> None:
    acme, _ = a_week_at(client, "Acme")
    response = acme.get("/audit/export", params={"types": "Lead.Won", "since": "2020-01-01"})
    assert response.status_code == 200
    up_to = json.loads(response.content.splitlines()[-1])["up_to"]
    acme.position = int(response.headers["X-Export-Position"])
    assert acme.position > up_to

    [row] = acme.get("/audit/events", params={"event_type": "HistoryExport.Made"}).json()["items"]
    assert (row["actor_kind"], row["actor_id"]) == ("user", acme.user_id)
    changes = {k: v["after"] for k, v in row["changes"].items()}
    assert changes["types"] == ["Lead.Won"] and changes["up_to"] == up_to
    assert changes["since"].startswith("2020-01-01T00:00:00") and changes["until"] is None
    assert changes["channel"] == "http"
    _, lines = export(acme, types="HistoryExport.Made")
    assert [e["position"] for e in lines[:-1]] == [acme.position]
