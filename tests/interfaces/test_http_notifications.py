"""Notifications over HTTP on both backends: a member's own list, count, read marks and
preferences; another member's or organization's notification is not found (the latter audited);
an API key has none; mentions name members of the same organization only; email goes out once,
by the dispatcher, only when the member asked for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import TestClient

from interfaces.services import Services
from interfaces.timers import notification_emails_job
from tests.support import mailbox
from tests.support.api import (
    Tenant,
    add_member,
    assert_problem,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")
INCIDENT = "SecurityIncident.Recorded"


def sync(*tenants: Tenant) -> None:
    """Each reads after the others' writes (X-Min-Position)."""
    head = max(t.position for t in tenants)
    for t in tenants:
        t.position = head


def assign(owner: Tenant, lead: dict[str, Any], member: Tenant) -> None:
    response = owner.put(f"/crm/leads/{lead['id']}/assign", json={"user_id": member.user_id})
    assert response.status_code == 200, response.text


def listed(member: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = member.get("/notifications", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def unread(member: Tenant) -> int:
    response = member.get("/notifications/count")
    assert response.status_code == 200, response.text
    count: int = response.json()["unread"]
    return count


def test_a_lead_assigned_to_a_member_notifies_them_and_reading_it_clears_the_count(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    lead = owner.capture(full_name="Joana Prado")
    assign(owner, lead, rep)
    sync(owner, rep)
    [note] = listed(rep)
    assert (note["kind"], note["title"], note["link"]) == (
        "lead_assigned",
        "Lead assigned to you",
        f"/crm/leads/{lead['id']}",
    )
    assert note["lead_name"] == "Joana Prado" and note["read_at"] is None
    assert listed(owner) == [] and unread(rep) == 1
    read = rep.post(f"/notifications/{note['id']}/read")
    assert read.status_code == 200, read.text
    assert unread(rep) == 0 and listed(rep, unread="true") == []
    assert listed(rep)[0]["read_at"] is not None
    again = rep.post(f"/notifications/{note['id']}/read")  # nothing more recorded
    assert again.status_code == 200 and again.json()["position"] == 0


def test_read_all_marks_what_the_member_has_and_pages_are_keyset(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    for _ in range(3):
        assign(owner, owner.capture(), rep)
    sync(owner, rep)
    first = rep.get("/notifications", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = rep.get("/notifications", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    positions = [n["position"] for n in first["items"] + rest["items"]]
    assert positions == sorted(positions, reverse=True)
    assert rep.post("/notifications/read-all").status_code == 200
    assign(owner, owner.capture(), rep)  # after the read-all: unread
    sync(owner, rep)
    assert unread(rep) == 1


def test_another_members_notification_is_not_found_and_another_organizations_is_audited(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    colleague = add_member(services, owner, "sales", name="Colleague")
    rival = register(client, "Rival")
    assign(owner, owner.capture(), rep)
    sync(owner, rep, colleague)
    [note] = listed(rep)
    assert_problem(colleague.post(f"/notifications/{note['id']}/read"), 404)
    assert_problem(rival.post(f"/notifications/{note['id']}/read"), 404)
    assert_problem(rival.post(f"/notifications/{uuid4()}/read"), 404)
    assert unread(rep) == 1
    head = services.app.recorder.max_notification_id() or 0
    owner.position = rival.position = head
    rows = owner.get("/audit/events", params={"event_type": INCIDENT, "limit": 200}).json()
    attempts = [r["changes"]["details"]["after"] for r in rows["items"]]
    assert [(a["resource_kind"], a["resource_id"]) for a in attempts] == [
        ("notification", note["id"])
    ]
    assert attempts[0]["from_organization_id"] == rival.organization_id


def test_an_api_key_has_no_notifications(client: TestClient[Any]) -> None:
    owner = register(client, "Acme")
    made = owner.post("/api-keys", json={"name": "CI", "scopes": ["organization:read"]})
    key = {"X-API-Key": made.json()["key"]}
    for method, path in (
        ("GET", "/notifications"),
        ("GET", "/notifications/count"),
        ("POST", "/notifications/read-all"),
        ("GET", "/notifications/preferences"),
        ("POST", f"/notifications/{uuid4()}/read"),
    ):
        assert_problem(client.request(method, path, headers=key), 403)
    refused = client.put("/notifications/preferences", headers=key, json={})
    assert_problem(refused, 403)


def test_bad_input_is_refused_and_writes_nothing(client: TestClient[Any]) -> None:
    owner = register(client, "Acme")
    assert_problem(owner.get("/notifications", params={"limit": 0}), 400)
    assert_problem(owner.get("/notifications", params={"cursor": "nonsense"}), 422)
    assert_problem(owner.get("/notifications", params={"unread": "maybe"}), 400)
    before = owner.get("/notifications/preferences").json()
    for body in (
        {"birthday": {"in_app": True, "email": True}},
        {"task_due": {"in_app": True}},
        {"task_due": {"in_app": "yes", "email": False}},
        [],
    ):
        assert_problem(owner.put("/notifications/preferences", json=body), 400)
    assert owner.get("/notifications/preferences").json() == before
    assert owner.post("/notifications/not-a-uuid/read").status_code == 404


def test_preferences_are_the_members_own_and_default_to_in_app_only(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    defaults = rep.get("/notifications/preferences").json()
    assert defaults["task_due"] == {"in_app": True, "email": False} and len(defaults) == 7
    changed = rep.put(
        "/notifications/preferences", json={"lead_assigned": {"in_app": False, "email": True}}
    )
    assert changed.status_code == 200, changed.text
    mine = rep.get("/notifications/preferences").json()
    assert mine["lead_assigned"] == {"in_app": False, "email": True}
    assert mine["task_due"] == defaults["task_due"]
    sync(owner, rep)
    assert owner.get("/notifications/preferences").json() == defaults
    assign(owner, owner.capture(), rep)  # not in the app now
    sync(owner, rep)
    assert listed(rep) == [] and unread(rep) == 0


def test_a_mention_notifies_a_member_and_ignores_a_member_of_another_organization(
    client: TestClient[Any], services: Services
) -> None:
    owner = register(client, "Acme")
    rep = add_member(services, owner, "sales", name="Rep")
    rival = register(client, "Rival")
    lead = owner.capture()
    text = f"call her @[Rep]({rep.user_id}) and @[Stranger]({rival.user_id}) and @[Me]({owner.user_id})"
    response = owner.post(f"/crm/leads/{lead['id']}/notes", json={"text": text})
    assert response.status_code == 201, response.text
    sync(owner, rep, rival)
    [note] = listed(rep)
    assert (note["kind"], note["link"]) == ("mentioned", f"/crm/leads/{lead['id']}")
    assert listed(owner) == [] and listed(rival) == []
    [stored] = [
        e
        for e in services.app.events.get(UUID(lead["id"]))
        if type(e).__qualname__ == "Lead.NoteAdded"
    ]
    assert stored.mentions == [UUID(rep.user_id), UUID(owner.user_id)]


def test_an_email_goes_out_once_when_asked_for_and_never_when_not(
    client: TestClient[Any], services: Services, mail_dir: Path
) -> None:
    owner = register(client, "Acme")
    wants = add_member(services, owner, "sales", name="Wants Mail")
    quiet = add_member(services, owner, "sales", name="No Mail")
    body = {"lead_assigned": {"in_app": True, "email": True}}
    assert wants.put("/notifications/preferences", json=body).status_code == 200
    sync(owner, wants)
    lead = owner.capture()
    assign(owner, lead, wants)
    assign(owner, owner.capture(), quiet)
    sync(owner, wants, quiet)
    assert listed(wants) and listed(quiet)
    job = notification_emails_job(services)
    # the queue is every organization's (one database per session on PostgreSQL)
    assert job.run(datetime.now(UTC)) >= 1
    assert job.run(datetime.now(UTC)) == 0
    address, other = (services.users.by_id(UUID(t.user_id)) for t in (wants, quiet))
    assert address is not None and other is not None
    [mail] = mailbox.to(mail_dir, address.email)
    assert mail["Subject"] == "Loved CRM: Lead assigned to you"
    assert mailbox.to(mail_dir, other.email) == []
    assert f"/crm/leads/{lead['id']}" in mailbox.body(mail)
