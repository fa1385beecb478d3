"""Cross-organization attempts are answered 404 and recorded in both audit trails."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.support.api import register


def incidents(tenant: Any) -> list[dict[str, Any]]:
    rows = tenant.get("/audit/events", params={"event_type": "SecurityIncident.Recorded"})
    assert rows.status_code == 200, rows.text
    return [
        r["changes"]["details"]["after"] | {"kind": r["changes"]["kind"]["after"], "ip": r["ip"]}
        for r in rows.json()["items"]
    ]


def test_reading_or_changing_another_organizations_lead_is_404_and_audited_in_both(
    client: TestClient[Any],
) -> None:
    acme = register(client, "Acme")
    rival = register(client, "Rival")
    lead = acme.capture()
    read = rival.get(f"/crm/leads/{lead['id']}")
    write = rival.post(f"/crm/leads/{lead['id']}/notes", json={"text": "hi"})
    assert (read.status_code, write.status_code) == (404, 404)
    unknown = rival.get("/crm/leads/00000000-0000-4000-8000-000000000001")
    assert unknown.status_code == 404
    assert read.json()["detail"].replace(lead["id"], "X") == unknown.json()["detail"].replace(
        "00000000-0000-4000-8000-000000000001", "X"
    )
    head = client.app.state.services.app.recorder.max_notification_id()
    rival.position = acme.position = head
    for tenant in (acme, rival):
        seen = incidents(tenant)
        assert {(i["kind"], i["method"], i["resource_id"]) for i in seen} == {
            ("cross_organization_attempt", "GET", lead["id"]),
            ("cross_organization_attempt", "POST", lead["id"]),
        }
        assert all(i["from_organization_id"] == rival.organization_id for i in seen)
        assert all(i["ip"] == "testclient" for i in seen)
