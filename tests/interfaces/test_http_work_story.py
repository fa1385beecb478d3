"""Issue 14's "done when", over the HTTP API on both backends: a manager sets business hours, an
SLA, round-robin assignment and a template; new contacts arrive assigned to the reps in turn
with a notification; a rep works "my day" and sends the template; a reply left late notifies
the rep and the manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from interfaces.timers import TimerWorker, jobs_for
from tests.interfaces.test_http_webhooks import cloud_setup, post_meta
from tests.support.api import Tenant, add_member, cheap_hashing, register  # noqa: F401
from tests.support.webhooks import meta_message, meta_payload

pytestmark = pytest.mark.usefixtures("cheap_hashing")

ALWAYS = {
    day: [["00:00", "24:00"]]
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
}


def caught_up(services: Services, *tenants: Tenant) -> None:
    """Every read model has read every write so far (webhooks and timers write outside the
    tenants' own calls)."""
    head = services.app.recorder.max_notification_id() or 0
    names = [p.name for p in services.runner.projectors] if services.runner else []
    assert services.wait_for(names, head, timeout=30)
    for tenant in tenants:
        tenant.position = max(tenant.position, head)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def notifications(tenant: Tenant) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(tenant.get("/notifications"))["items"]
    return items


def contact_writes(client: TestClient[Any], org: str, wamid: str, phone: str, text: str) -> None:
    body = meta_payload([meta_message(wamid, phone, text)])
    ok(post_meta(client, org, body))


def test_a_managers_setup_routes_new_contacts_reminds_reps_and_flags_late_replies(
    client: TestClient[Any], services: Services
) -> None:
    manager = register(client, "Acme")
    org = manager.organization_id
    ana = add_member(services, manager, "sales", name="Ana Rep")
    bruno = add_member(services, manager, "sales", name="Bruno Rep")
    cloud_setup(manager)

    # the manager's setup: hours, an SLA, round-robin over the two reps, a template
    ok(manager.put("/crm/settings/business-hours", json={"weekly": ALWAYS}))
    sla = {"enabled": True, "minutes": 30, "business_hours": True}
    ok(manager.put("/crm/settings/sla", json=sla))
    rule = {"name": "New contacts", "strategy": "round_robin"}
    rule |= {"members": [ana.user_id, bruno.user_id]}
    ok(manager.post("/crm/assignment-rules", json=rule), 201)
    template = {"name": "Welcome", "body": "Olá {{lead.full_name}}, aqui é {{user.full_name}}!"}
    template_id = ok(manager.post("/crm/templates", json=template), 201)["id"]

    # two new contacts write: each lead goes to the next rep, who is notified
    contact_writes(client, org, "wamid.S1", "5511987650001", "Oi, quero um orçamento")
    contact_writes(client, org, "wamid.S2", "5511987650002", "Bom dia, vocês atendem sábado?")
    caught_up(services, manager, ana, bruno)
    leads = {lead["id"]: lead for lead in ok(manager.get("/crm/leads"))["items"]}
    assert len(leads) == 2
    owners = sorted(lead["assigned_to"] for lead in leads.values())
    assert owners == sorted([ana.user_id, bruno.user_id])
    ana_lead = next(lead for lead in leads.values() if lead["assigned_to"] == ana.user_id)
    bruno_lead = next(lead for lead in leads.values() if lead["assigned_to"] == bruno.user_id)
    [assigned] = [n for n in notifications(ana) if n["kind"] == "lead_assigned"]
    assert ana_lead["id"] in assigned["link"]
    assert ok(ana.get("/notifications/count"))["unread"] >= 1

    # Ana plans a call for today and finds it in "my day"
    due = datetime.now(UTC) + timedelta(minutes=5)
    task = {"title": "Call back", "due_at": due.isoformat(), "lead_id": ana_lead["id"]}
    task |= {"kind": "call"}
    task_id = ok(ana.post("/crm/tasks", json=task), 201)["id"]
    caught_up(services, ana)
    my_day = ok(ana.get("/crm/tasks", params={"assignee": "me", "due": "today"}))["items"]
    assert [t["id"] for t in my_day] == [task_id] or due.date() != datetime.now(UTC).date()

    # Ana answers with the template inside the 24-hour window: her lead's wait is over
    used = ok(
        ana.post(
            f"/crm/templates/{template_id}/use", json={"lead_id": ana_lead["id"], "send": True}
        )
    )
    assert used["text"].startswith("Olá ") and used["text"].endswith("aqui é Ana Rep!")

    # nobody answers Bruno's contact: 31 minutes later the timers flag it, once
    later = datetime.now(UTC) + timedelta(minutes=31)
    TimerWorker(jobs_for(services), clock=lambda: later).run_once()
    TimerWorker(jobs_for(services), clock=lambda: later).run_once()
    caught_up(services, manager, ana, bruno)
    breached = [n for n in notifications(bruno) if n["kind"] == "sla_breached"]
    assert len(breached) == 1 and bruno_lead["id"] in str(breached[0])
    assert [n for n in notifications(manager) if n["kind"] == "sla_breached"]
    assert not [n for n in notifications(ana) if n["kind"] == "sla_breached"]
    # the reminder of Ana's task came due in the same timer round
    assert [n for n in notifications(ana) if n["kind"] == "task_due"]
    team = {m["member_id"]: m for m in ok(manager.get("/analytics/team"))["members"]}
    assert team[bruno.user_id]["sla_breaches"] == 1
