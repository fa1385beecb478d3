"""Tenant isolation: another organization, with its own valid credentials, sees and changes
nothing of ours — every id of ours is a 404 to it, and its lists never hold our rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from tests.support.api import (
    ID_ROUTES,
    Route,
    Tenant,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@dataclass
class TwoTenants:
    acme: Tenant
    rival: Tenant
    lead: str
    archived: str
    stage: str
    rival_lead: str
    rival_stage: str

    def snapshot(self) -> Any:
        """Everything of acme another organization could try to change."""
        acme = self.acme
        return (
            acme.get(f"/crm/leads/{self.lead}").json(),
            acme.get(f"/crm/leads/{self.archived}").json(),
            acme.get(f"/crm/leads/{self.lead}/history").json(),
            acme.get("/crm/pipeline/board").json(),
            [  # refused attempts add SecurityIncident rows; nothing else may change
                row
                for row in acme.get("/audit/events", params={"limit": 200}).json()["items"]
                if row["aggregate_type"] != "SecurityIncident"
            ],
        )


def two_tenants(client: TestClient[Any]) -> TwoTenants:
    acme, rival = register(client, "Acme"), register(client, "Rival")
    stages = acme.stages()
    lead = acme.capture(full_name="Acme Secret", company="Acme Co", estimated_value="7")["id"]
    acme.post(f"/crm/leads/{lead}/notes", json={"text": "confidential"})
    archived = acme.capture(full_name="Acme Archived")["id"]
    acme.delete(f"/crm/leads/{archived}")
    rival_lead = rival.capture(full_name="Rival Lead")["id"]
    return TwoTenants(
        acme, rival, lead, archived, stages[1]["id"], rival_lead, rival.stages()[1]["id"]
    )


def foreign_call(t: TwoTenants, route: Route, lead: str, stage: str) -> Any:
    """The rival calls a route with ids of acme's; its body names only its own things."""
    body = route.body(t.rival_lead, t.rival_stage) if callable(route.body) else route.body
    return t.rival.call(route.method, route.url(lead, stage), json=body)


def test_every_route_with_an_id_is_404_to_another_organization(client: TestClient[Any]) -> None:
    t = two_tenants(client)
    before = t.snapshot()

    for route in ID_ROUTES:
        for lead in (t.lead, t.archived):
            lead_route = "{lead}" in route.path
            response = foreign_call(t, route, lead, t.stage)
            body = assert_problem(response, 404)
            assert "Acme" not in response.text, (str(route), body)
            if not lead_route:
                break
    moved = t.rival.delete(
        f"/crm/pipeline/stages/{t.rival_stage}", params={"move_leads_to": t.stage}
    )
    assert_problem(moved, 404)

    assert t.snapshot() == before
    assert t.rival.get(f"/crm/leads/{t.rival_lead}").status_code == 200
    assert len(t.rival.stages()) == 6


def test_another_organizations_stage_and_members_are_refused_in_bodies(
    client: TestClient[Any],
) -> None:
    t = two_tenants(client)
    before = t.snapshot()
    own = [s["id"] for s in t.rival.stages()]
    rival = t.rival

    refused = [
        rival.post("/crm/leads", json={"full_name": "X", "stage_id": t.stage}),
        rival.post("/crm/leads", json={"full_name": "X", "assigned_to": t.acme.user_id}),
        rival.patch(f"/crm/leads/{t.rival_lead}/stage", json={"stage_id": t.stage}),
        rival.put(f"/crm/leads/{t.rival_lead}/assign", json={"user_id": t.acme.user_id}),
        rival.post(f"/crm/leads/{t.rival_lead}/won"),
        rival.post(f"/crm/leads/{t.rival_lead}/reopen", json={"stage_id": t.stage}),
        rival.put("/crm/pipeline/stages/order", json={"stage_ids": [*own[:-1], t.stage]}),
    ]

    assert refused[4].status_code == 200, refused[4].text
    for response in [*refused[:4], refused[5]]:
        assert_problem(response, 404)  # another organization's stage or member: not found here
    assert_problem(refused[6], 422)  # not a permutation of this pipeline's stages
    assert t.snapshot() == before


def test_lists_board_and_audit_never_hold_another_organizations_rows(
    client: TestClient[Any],
) -> None:
    t = two_tenants(client)
    rival = t.rival
    acme_ids = {t.lead, t.archived, t.acme.organization_id, t.stage}

    reads = [
        rival.get("/crm/leads", params={"include_archived": "true"}),
        rival.get("/crm/leads", params={"stage_id": t.stage}),
        rival.get("/crm/leads", params={"assigned_to": t.acme.user_id}),
        rival.get("/crm/leads", params={"q": "acme"}),
        rival.get("/crm/pipeline/stages"),
        rival.get("/crm/pipeline/board"),
        rival.get("/audit/events", params={"limit": 200}),
        rival.get("/audit/events", params={"resource_id": t.lead}),
        rival.get("/audit/events", params={"event_type": "Lead.NoteAdded"}),
    ]

    for response in reads:
        assert response.status_code == 200, response.text
        assert not any(i in response.text for i in acme_ids), response.text
        assert "Acme" not in response.text and "confidential" not in response.text
    assert [i["id"] for i in reads[0].json()["items"]] == [t.rival_lead]
    assert all(r.json()["items"] == [] for r in (reads[1], reads[2], reads[3], reads[7], reads[8]))
    audited = {i["resource_id"] for i in reads[6].json()["items"]}
    assert audited == {rival.organization_id, t.rival_lead, own_pipeline(rival)}


def own_pipeline(tenant: Tenant) -> str:
    items = tenant.get("/audit/events", params={"event_type": "Pipeline.Created"}).json()["items"]
    pipeline: str = items[0]["resource_id"]
    return pipeline


def test_any_route_with_any_foreign_id_is_404_and_changes_nothing(
    client: TestClient[Any],
) -> None:
    t = two_tenants(client)
    before = t.snapshot()
    foreign_ids = [t.lead, t.archived, t.stage, t.acme.organization_id, t.acme.user_id]

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(route=st.sampled_from(ID_ROUTES), foreign=st.sampled_from(foreign_ids))
    def the_rival_learns_nothing(route: Route, foreign: str) -> None:
        response = foreign_call(t, route, foreign, foreign)
        assert_problem(response, 404)
        assert "Acme" not in response.text

    the_rival_learns_nothing()
    assert t.snapshot() == before
