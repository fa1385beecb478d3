"""`GET /audit/aggregates/{id}`: any aggregate of the organization at a version or a time, rebuilt
from the event store, with the event that produced that version; on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from litestar.testing import TestClient

from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
    talk_to,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
INCIDENT = "SecurityIncident.Recorded"


def as_of(tenant: Tenant, aggregate_id: str, **params: Any) -> dict[str, Any]:
    response = tenant.get(f"/audit/aggregates/{aggregate_id}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def a_lead_with_a_past(tenant: Tenant) -> str:
    """Captured at Before, renamed to After, then moved: versions 1, 2 and 3."""
    lead: str = tenant.capture(full_name="Ana", company="Before", estimated_value="10.50")["id"]
    tenant.put(f"/crm/leads/{lead}", json={"company": "After"})
    tenant.patch(f"/crm/leads/{lead}/stage", json={"stage_id": tenant.stages()[1]["id"]})
    return lead


def test_a_lead_at_each_version_shows_its_state_then_and_the_event_that_made_it(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    lead = a_lead_with_a_past(acme)

    first, second, now = (
        as_of(acme, lead, version=1),
        as_of(acme, lead, version=2),
        as_of(acme, lead),
    )

    assert (first["id"], first["type"], first["organization_id"]) == (
        lead,
        "Lead",
        acme.organization_id,
    )
    assert [(b["version"], b["state"]["company"]) for b in (first, second, now)] == [
        (1, "Before"),
        (2, "After"),
        (3, "After"),
    ]
    assert {b["current_version"] for b in (first, second, now)} == {3}
    assert first["state"]["estimated_value"] == "10.50"
    assert first["state"]["stage_id"] == acme.stages()[0]["id"]
    assert now["state"]["stage_id"] == acme.stages()[1]["id"]
    assert [b["event"]["type"] for b in (first, second, now)] == [
        "Lead.Captured",
        "Lead.DetailsChanged",
        "Lead.MovedToStage",
    ]
    assert [b["event"]["version"] for b in (first, second, now)] == [1, 2, 3]
    assert first["event"]["actor"]["kind"] == "user"
    assert first["event"]["actor"]["id"] == acme.user_id
    assert first["event"]["data"]["company"] == "Before"
    assert now["event"]["data"]["to_stage_id"] == acme.stages()[1]["id"]
    assert datetime.fromisoformat(first["event"]["time"]).utcoffset() == timedelta(0)
    assert "as_of" not in first and "as_of" not in now
    assert not [k for k in first["state"] if k.startswith("_")]

    acme.post(f"/crm/leads/{lead}/won")
    assert as_of(acme, lead, version=1)["state"] == first["state"]  # the past does not move


def test_at_a_time_gives_the_state_then_and_before_it_existed_is_422(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    lead = a_lead_with_a_past(acme)
    times = [datetime.fromisoformat(as_of(acme, lead, version=n)["event"]["time"]) for n in (1, 2)]

    then = as_of(acme, lead, at=times[0].isoformat())
    later = as_of(acme, lead, at=(times[1] + timedelta(microseconds=1)).isoformat())
    naive = as_of(acme, lead, at=times[0].replace(tzinfo=None).isoformat())
    elsewhere = as_of(acme, lead, at=times[0].astimezone(UTC).isoformat().replace("+00:00", "Z"))
    future = as_of(acme, lead, at="2999-01-01T00:00:00Z")
    unencoded = acme.get(f"/audit/aggregates/{lead}?at=2999-01-01T02:00:00+02:00")  # "+" is " "

    assert (then["version"], then["state"]["company"]) == (1, "Before")
    assert then["as_of"] == times[0].isoformat() and then["event"]["type"] == "Lead.Captured"
    assert later["version"] >= 2 and later["state"]["company"] == "After"
    assert naive["version"] == elsewhere["version"] == 1
    assert future["version"] == future["current_version"] == 3
    assert unencoded.json()["as_of"] == future["as_of"] == "2999-01-01T00:00:00+00:00"
    before = acme.get(
        f"/audit/aggregates/{lead}", params={"at": (times[0] - timedelta(seconds=1)).isoformat()}
    )
    assert assert_problem(before, 422)["errors"][0]["field"] == "at"
    assert_problem(acme.get(f"/audit/aggregates/{lead}", params={"at": "2000-01-01"}), 422)


def test_every_kind_of_aggregate_of_the_organization_can_be_read(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    lead = acme.capture(full_name="Ana")["id"]
    chat, call = talk_to(services, acme, lead)
    pipeline = as_of(acme, lead)["state"]["pipeline_id"]

    kinds = {
        aggregate: as_of(acme, aggregate)
        for aggregate in (acme.organization_id, pipeline, lead, chat, call)
    }

    assert [b["type"] for b in kinds.values()] == [
        "Organization",
        "Pipeline",
        "Lead",
        "Conversation",
        "Call",
    ]
    assert {b["organization_id"] for b in kinds.values()} == {acme.organization_id}
    organization = kinds[acme.organization_id]
    assert organization["state"]["name"] == "Acme"
    assert organization["state"]["members"] == {acme.user_id: "admin"}
    assert organization["event"]["type"] == "Organization.Registered"
    assert [s["stage_type"] for s in kinds[pipeline]["state"]["stages"]][-2:] == ["won", "lost"]
    assert kinds[chat]["state"]["lead_id"] == lead and kinds[chat]["version"] == 2
    assert kinds[call]["state"]["seen_callbacks"] == ["cb-1"]
    for body in kinds.values():
        assert not [k for k in body["state"] if k.startswith("_")], body["type"]


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"version": "1", "at": "2030-01-01T00:00:00Z"}, 422, "at"),
        ({"version": "4"}, 422, "version"),
        ({"version": "0"}, 400, None),
        ({"version": "-1"}, 400, None),
        ({"version": "one"}, 400, None),
        ({"at": "yesterday"}, 400, None),
        ({"at": "2026-13-01T00:00:00Z"}, 400, None),
    ],
)
def test_bad_selectors_are_problems(
    client: TestClient[Any], params: dict[str, str], status: int, field: str | None
) -> None:
    acme = register(client)
    lead = a_lead_with_a_past(acme)

    body = assert_problem(acme.get(f"/audit/aggregates/{lead}", params=params), status)

    if field is not None:
        assert body["errors"][0]["field"] == field


def test_another_organizations_aggregate_is_404_like_an_unknown_id_and_audited_like_one(
    client: TestClient[Any], services: Any
) -> None:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    secret = acme.capture(full_name="Acme secret")["id"]
    acme_ids = [secret, acme.organization_id]
    rival.position = acme.position
    unknown = str(uuid4())

    for params in ({}, {"version": "99"}, {"at": "2000-01-01T00:00:00Z"}, {"version": "1"}):
        for foreign in acme_ids:
            response = rival.get(f"/audit/aggregates/{foreign}", params=params)
            assert_problem(response, 404)
            assert "Acme" not in response.text
    assert_problem(rival.get(f"/audit/aggregates/{unknown}"), 404)
    assert_problem(rival.get("/audit/aggregates/not-a-uuid"), 404)

    head = services.app.recorder.max_notification_id()
    trails = {}
    for tenant in (acme, rival):
        rows = tenant.get(
            "/audit/events",
            params={"event_type": INCIDENT, "limit": 200},
            headers={"X-Min-Position": str(head)},
        ).json()["items"]
        trails[tenant.organization_id] = [
            r["changes"]["details"]["after"] | {"kind": r["changes"]["kind"]["after"]} for r in rows
        ]
    # the owner's trail: every attempt in full
    attempts = trails[acme.organization_id]
    assert len(attempts) == 8 and {a["resource_id"] for a in attempts} == set(acme_ids)
    assert {a["kind"] for a in attempts} == {"cross_organization_attempt"}
    assert {a["resource_kind"] for a in attempts} == {"aggregate"}
    assert {a["from_organization_id"] for a in attempts} == {rival.organization_id}
    # the asker's: the same record for acme's ids as for the unknown one, naming no one
    asked = trails[rival.organization_id]
    assert {a["resource_id"] for a in asked} == {*acme_ids, unknown} and len(asked) == 9
    assert {(a["kind"], a["resource_kind"]) for a in asked} == {
        ("unknown_id_requested", "aggregate")
    }
    assert all(
        a.keys() == {"kind", "method", "path", "resource_kind", "resource_id"} for a in asked
    )
    assert as_of(acme, secret)["state"]["full_name"] == "Acme secret"


def test_only_admins_and_keys_with_audit_read_may_read_the_past(
    client: TestClient[Any], services: Any
) -> None:
    acme = register(client)
    lead = acme.capture(full_name="Ana")["id"]
    path = f"/audit/aggregates/{lead}"
    for role in ("manager", "sales", "viewer"):
        member = add_member(services, acme, role)
        assert_problem(member.get(path, params={"version": "1"}), 403)
    keys = {}
    for scopes in (["audit:read"], ["leads:read", "analytics:read"]):
        keys[scopes[0]] = acme.post("/api-keys", json={"name": "k", "scopes": scopes}).json()["key"]

    by_auditor = client.get(
        path, params={"version": "1"}, headers={"X-API-Key": keys["audit:read"]}
    )

    assert by_auditor.status_code == 200, by_auditor.text
    assert by_auditor.json()["state"]["full_name"] == "Ana"
    assert_problem(client.get(path, headers={"X-API-Key": keys["leads:read"]}), 403)
