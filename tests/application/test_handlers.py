"""Command handlers: load, call, commit — across aggregates and organizations."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest

from application.context import Ctx
from application.identity import accounts
from application.leads import commands as leads
from application.leads import pipelines
from application.permissions import NotPermittedError
from application.ports import UserRecord
from domain.errors import NotFoundError, StageInUseError
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline, default_pipeline_id
from domain.values import Actor, LeadStatus, Role
from interfaces.services import Services, build_services
from tests.conftest import settings_for


def owner_of(services: Services, name: str = "Acme") -> Ctx:
    cmd = accounts.Register(f"{uuid4().hex[:8]}@example.com", "long enough pw", "Owner", name)
    done = accounts.register(services.app, services.users, services.hasher, cmd)
    return Ctx(done.organization_id, done.user_id, Role.ADMIN, Actor("user", str(done.user_id)))


def member_of(services: Services, owner: Ctx, role: Role) -> Ctx:
    user_id = uuid4()
    org = services.app.load(Organization, owner.organization_id, owner.organization_id)
    org.add_member(user_id, role, actor=owner.actor)
    services.app.commit(org)
    return Ctx(owner.organization_id, user_id, role, Actor("user", str(user_id)))


def stages(services: Services, ctx: Ctx) -> list[object]:
    pipeline = services.app.load(
        Pipeline, default_pipeline_id(ctx.organization_id), ctx.organization_id
    )
    return list(pipeline.stages)


def test_registration_creates_the_owner_as_admin_with_a_default_pipeline(
    services: Services,
) -> None:
    ctx = owner_of(services)
    org = services.app.load(Organization, ctx.organization_id, ctx.organization_id)
    assert org.role_of(ctx.user_id) is Role.ADMIN
    names = [s.name for s in stages(services, ctx)]  # type: ignore[attr-defined]
    assert names == ["Lead", "Contact", "Proposal", "Negotiation", "Won", "Lost"]


def test_a_registration_whose_events_cannot_be_saved_leaves_no_user_behind(
    tmp_path: Path, sqlite_template: Path
) -> None:
    target = tmp_path / "crm.db"
    target.write_bytes(sqlite_template.read_bytes())
    with sqlite3.connect(target) as conn:  # the event table is gone: the save must fail
        conn.execute("ALTER TABLE stored_events RENAME TO gone")
    services = build_services(settings_for(f"sqlite:///{target}"), with_runner=False)
    try:
        cmd = accounts.Register("ghost@example.com", "long enough pw", "Ghost", "Nowhere")
        with pytest.raises(Exception):  # noqa: B017 - whatever the store raises
            accounts.register(services.app, services.users, services.hasher, cmd)
        assert services.users.by_email("ghost@example.com") is None
    finally:
        services.close()


def test_a_lead_cannot_be_assigned_to_someone_outside_the_organization(services: Services) -> None:
    ctx = owner_of(services)
    stranger = owner_of(services, "Other")
    with pytest.raises(NotFoundError):
        leads.capture_lead(
            services.app, leads.CaptureLead(full_name="Ann", assigned_to=stranger.user_id), ctx
        )
    written = leads.capture_lead(services.app, leads.CaptureLead(full_name="Ann"), ctx)
    with pytest.raises(NotFoundError):
        leads.assign_lead(services.app, written.id, stranger.user_id, ctx)
    leads.assign_lead(services.app, written.id, ctx.user_id, ctx)
    assert services.app.load(Lead, written.id, ctx.organization_id).assignee_id == ctx.user_id


def test_another_organizations_lead_and_stages_are_not_found(services: Services) -> None:
    acme = owner_of(services)
    other = owner_of(services, "Other")
    written = leads.capture_lead(services.app, leads.CaptureLead(full_name="Ann"), acme)
    with pytest.raises(NotFoundError):
        leads.add_note(services.app, written.id, "hello", other)
    foreign_stage = stages(services, acme)[1].id  # type: ignore[attr-defined]
    mine = leads.capture_lead(services.app, leads.CaptureLead(full_name="Bob"), other)
    with pytest.raises(NotFoundError):
        leads.move_lead_to_stage(services.app, mine.id, foreign_stage, None, other)
    assert services.app.load(Lead, written.id, acme.organization_id).notes == 0


def test_won_lost_and_reopen_follow_the_pipelines_stage_types(services: Services) -> None:
    ctx = owner_of(services)
    lead = leads.capture_lead(
        services.app, leads.CaptureLead(full_name="Ann", estimated_value=Decimal("10")), ctx
    )
    leads.win_lead(services.app, lead.id, ctx)
    assert services.app.load(Lead, lead.id, ctx.organization_id).status is LeadStatus.WON
    leads.reopen_lead(services.app, lead.id, None, ctx)
    leads.lose_lead(services.app, lead.id, "budget", ctx)
    loaded = services.app.load(Lead, lead.id, ctx.organization_id)
    assert loaded.status is LeadStatus.LOST
    assert loaded.stage_id == stages(services, ctx)[5].id  # type: ignore[attr-defined]


def test_removing_a_stage_moves_its_leads_in_the_same_transaction(services: Services) -> None:
    ctx = owner_of(services)
    contact, proposal = stages(services, ctx)[1:3]
    ids = [
        leads.capture_lead(
            services.app,
            leads.CaptureLead(full_name=f"L{i}", stage_id=contact.id),
            ctx,  # type: ignore[attr-defined]
        ).id
        for i in range(3)
    ]

    with pytest.raises(StageInUseError):
        pipelines.remove_stage(services.app, contact.id, None, ctx, services)  # type: ignore[attr-defined]
    written = pipelines.remove_stage(services.app, contact.id, proposal.id, ctx, services)  # type: ignore[attr-defined]
    assert written.position > 0
    assert all(services.app.load(Lead, i, ctx.organization_id).stage_id == proposal.id for i in ids)  # type: ignore[attr-defined]
    assert len(stages(services, ctx)) == 5


def test_a_user_repository_refuses_a_second_account_with_the_same_email(services: Services) -> None:
    from datetime import UTC, datetime

    from application.ports import EmailTakenError

    user = UserRecord(uuid4(), "same@example.com", "A", "hash", datetime.now(UTC))
    services.users.add(user) if services.users.by_email(user.email) is None else None
    with pytest.raises(EmailTakenError):
        services.users.add(UserRecord(uuid4(), "same@example.com", "B", "hash", datetime.now(UTC)))


def test_a_sales_member_captures_for_themselves_and_changes_only_their_own_leads(
    services: Services,
) -> None:
    admin = owner_of(services)
    sales = member_of(services, admin, Role.SALES)
    app = services.app
    mine = leads.capture_lead(app, leads.CaptureLead(full_name="Walk-in"), sales)
    assert app.load(Lead, mine.id, admin.organization_id).assignee_id == sales.user_id
    theirs = leads.capture_lead(app, leads.CaptureLead(full_name="Theirs"), admin)
    assert app.load(Lead, theirs.id, admin.organization_id).assignee_id is None
    for refused in (
        lambda: leads.capture_lead(
            app, leads.CaptureLead(full_name="X", assigned_to=admin.user_id), sales
        ),
        lambda: leads.add_note(app, theirs.id, "mine now", sales),
        lambda: leads.assign_lead(app, theirs.id, sales.user_id, sales),
        # someone else's lead is refused before a stale version is even looked at
        lambda: leads.change_lead_details(
            app, theirs.id, leads.ChangeLeadDetails(expected_version=99, company="X"), sales
        ),
    ):
        with pytest.raises(NotPermittedError):
            refused()
    leads.add_note(app, mine.id, "called back", sales)
    assert app.load(Lead, theirs.id, admin.organization_id).version == 1
    # managers and API keys are not limited to their own leads
    manager = member_of(services, admin, Role.MANAGER)
    leads.add_note(app, theirs.id, "checked", manager)
    key = Ctx(admin.organization_id, uuid4(), Role.SALES, Actor("api_key", str(uuid4())))
    leads.add_note(app, theirs.id, "from the form", key)
    assert app.load(Lead, theirs.id, admin.organization_id).version == 3
