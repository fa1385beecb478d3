"""The response SLA over HTTP: a manager sets it (PUT /crm/settings/sla), a contact writes through a signed webhook, the
timers record the late first response once, and /analytics/team and the custom report show it
— to the organization only, and to a sales rep only for themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from domain.conversation import Conversation
from interfaces.services import Services
from interfaces.timers import TimerWorker, jobs_for
from projections.sla import rm_sla_clocks
from tests.interfaces.test_http_webhooks import E164, SENDER, cloud_setup, conversation, post_meta
from tests.support.api import (  # noqa: F401
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,
    register,
)
from tests.support.webhooks import meta_message, meta_payload

pytestmark = pytest.mark.usefixtures("cheap_hashing")

OTHER = "5521912345678"


def caught_up(services: Services, *tenants: Tenant) -> None:
    """Every read model has read every write so far (webhooks and timers write outside the
    tenants' own calls)."""
    head = services.app.recorder.max_notification_id() or 0
    assert services.wait_for(["sla", "analytics", "leads"], head, timeout=20)
    for tenant in tenants:
        tenant.position = max(tenant.position, head)


def run_timers(services: Services, at: datetime) -> int:
    """What the timers recorded by `at`, message analyses aside (they count their own rows)."""
    jobs = [job for job in jobs_for(services) if job.name != "message_analysis"]
    return TimerWorker(jobs, clock=lambda: at).run_once()


def manager_sets_sla(tenant: Tenant, minutes: int) -> None:
    body = {"enabled": True, "minutes": minutes, "business_hours": False}
    response = tenant.put("/crm/settings/sla", json=body)
    assert response.status_code == 200, response.text


def members(tenant: Tenant) -> dict[str, dict[str, Any]]:
    response = tenant.get("/analytics/team")
    assert response.status_code == 200, response.text
    return {m["member_id"]: m for m in response.json()["members"]}


def test_a_late_first_response_is_recorded_once_by_the_timers_and_shown_in_team_analytics(
    client: TestClient[Any], services: Services
) -> None:
    acme = register(client)
    cloud_setup(acme)
    ana = add_member(services, acme, "sales", name="Ana")
    manager_sets_sla(acme, 15)
    late = acme.capture(full_name="Late", phone=E164, assigned_to=ana.user_id)
    answered = acme.capture(full_name="Answered", phone="+" + OTHER)
    acme.get("/crm/leads")  # the leads model knows the phones before the webhook asks
    written = datetime.now(UTC)
    ts = int(written.timestamp())
    body = meta_payload(
        [meta_message("wamid.L1", SENDER, "oi", ts), meta_message("wamid.A1", OTHER, "oi", ts)]
    )
    assert post_meta(client, acme.organization_id, body).status_code == 200
    caught_up(services, acme)
    reply = acme.post(f"/crm/leads/{answered['id']}/messages", json={"text": "olá!"})
    assert reply.status_code == 201, reply.text
    caught_up(services, acme, ana)

    assert run_timers(services, written + timedelta(minutes=14)) == 0
    assert run_timers(services, written + timedelta(minutes=16)) == 1
    caught_up(services, acme, ana)
    assert run_timers(services, written + timedelta(minutes=30)) == 0  # once
    chat = conversation(services, acme)
    assert chat.lead_id == UUID(late["id"])
    breaches = [
        e
        for e in services.app.events.get(chat.id)  # type: ignore[attr-defined]
        if isinstance(e, Conversation.ResponseSlaBreached)
    ]
    assert [(b.assignee_id, b.sla_minutes, b.actor.kind, b.actor.id) for b in breaches] == [
        (UUID(ana.user_id), 15, "system", "timers")
    ]
    assert breaches[0].deadline == breaches[0].waiting_since + timedelta(minutes=15)

    everyone = members(acme)
    assert (
        everyone[ana.user_id]["sla_breaches"],
        everyone[ana.user_id]["sla_first_responses_in_time"],
        everyone[ana.user_id]["sla_compliance_rate"],
    ) == (1, 0, 0.0)
    # the answered lead has no assignee: its in-time reply counts for the organization only
    assert all(m["sla_first_responses_in_time"] == 0 for m in everyone.values())
    assert list(members(ana)) == [ana.user_id]  # a sales rep sees only their own row

    report = acme.post(
        "/analytics/custom-report",
        json={
            "measures": ["sla_first_responses_in_time", "sla_breaches", "sla_compliance_rate"],
        },
    )
    assert report.status_code == 200, report.text
    assert report.json()["rows"] == [
        {"sla_first_responses_in_time": 1, "sla_breaches": 1, "sla_compliance_rate": 0.5}
    ]
    by_member = acme.post(
        "/analytics/custom-report",
        json={"measures": ["sla_breaches", "messages_out"], "dimensions": ["assignee"]},
    ).json()["rows"]
    assert {"assignee": ana.user_id, "sla_breaches": 1, "messages_out": 0} in by_member
    own = ana.post(
        "/analytics/custom-report",
        json={"measures": ["sla_breaches", "sla_compliance_rate"], "dimensions": ["assignee"]},
    ).json()["rows"]
    assert own == [{"assignee": ana.user_id, "sla_breaches": 1, "sla_compliance_rate": 0.0}]
    csv = acme.get("/analytics/team", params={"format": "csv"})
    assert csv.status_code == 200
    assert "sla_breaches" in csv.text.splitlines()[0]

    # another organization sees none of it
    other = register(client, "Other")
    caught_up(services, other)
    assert members(other) == {}
    with services.reading(UUID(other.organization_id)) as conn:
        if conn.dialect.name == "postgresql":  # row-level security hides the others' clocks
            assert conn.execute(sa.select(sa.func.count()).select_from(rm_sla_clocks)).scalar() == 0
        mine = rm_sla_clocks.c.organization_id == UUID(other.organization_id)
        assert conn.execute(sa.select(sa.func.count()).where(mine)).scalar() == 0


def test_the_sla_measures_refuse_dimensions_they_are_not_kept_by(
    client: TestClient[Any],
) -> None:
    acme = register(client)
    for body in (
        {"measures": ["sla_breaches"], "dimensions": ["source"]},
        {"measures": ["sla_compliance_rate", "leads_won"], "filters": {"channel": ["whatsapp"]}},
        {"measures": ["sla_breach"]},
    ):
        assert_problem(acme.post("/analytics/custom-report", json=body), 422)
