"""Notifications projected from real events on both backends: each kind reaches whom it
concerns once, never its author, never a non-member; a rebuild gives the same rows and ids and
queues no email twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from domain.ai_settings import AiSettings
from domain.base import TenantAggregate
from domain.conversation import Conversation
from domain.lead import Lead
from domain.notification_inbox import NotificationInbox
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, Role
from interfaces.services import Services
from projections.notification_emails import notification_emails
from projections.notifications import notification_id, rm_notifications
from tests.projections import test_runner
from tests.projections.test_runner import dump, rebuild_all, runner_for

fresh = test_runner.fresh  # services on a database of their own, on each backend

PROVIDER = Actor(kind="provider", id="whatsapp_cloud")
TIMERS = Actor(kind="system", id="timers")
NOW = datetime.now(UTC)


class Task(TenantAggregate):
    """A stand-in of the tasks slice's aggregate: only what `Task.CameDue` needs."""

    class Opened(TenantAggregate.Created):
        def apply(self, task: Task) -> None:
            task.organization_id = self.organization_id

    class CameDue(TenantAggregate.Event):
        due_at: datetime
        assignee_id: UUID | None
        lead_id: UUID | None
        title: str

        def apply(self, task: Task) -> None:
            pass

    @classmethod
    def open(cls, organization_id: UUID, actor: Actor) -> Task:
        return cls._create(cls.Opened, id=uuid4(), organization_id=organization_id, actor=actor)


def person(user: UUID) -> Actor:
    return Actor(kind="user", id=str(user))


class Team:
    """An organization with an admin, a manager, two sales members and a viewer."""

    def __init__(self, services: Services) -> None:
        self.app = services.app
        self.admin, self.manager, self.sales, self.sales2, self.viewer = (uuid4() for _ in range(5))
        org = Organization.register(name="Team", owner_user_id=self.admin, actor=person(self.admin))
        for user, role in (
            (self.manager, Role.MANAGER),
            (self.sales, Role.SALES),
            (self.sales2, Role.SALES),
            (self.viewer, Role.VIEWER),
        ):
            org.add_member(user, role, actor=person(self.admin))
        self.pipeline = Pipeline.create_default(organization_id=org.id, actor=person(self.admin))
        self.org = org
        self.app.commit(org, self.pipeline)

    @property
    def id(self) -> UUID:
        return self.org.id

    def lead(self, assignee: UUID | None, by: UUID) -> Lead:
        lead = Lead.capture(
            organization_id=self.id,
            pipeline_id=self.pipeline.id,
            stage=self.pipeline.stages[0].ref,
            details={"full_name": "Maria Sigilosa"},
            assignee_id=assignee,
            actor=person(by),
        )
        self.app.commit(lead)
        return lead


def write_notifications(services: Services) -> Team:
    """An organization whose members have notifications, read marks and preferences."""
    team = Team(services)
    inbox = NotificationInbox.open(
        organization_id=team.id, user_id=team.sales, actor=person(team.sales)
    )
    inbox.change_preferences(
        {"mentioned": {"in_app": True, "email": True}}, actor=person(team.sales)
    )
    services.app.commit(inbox)
    lead = team.lead(team.sales, by=team.admin)
    lead.add_note("see", actor=person(team.admin), mentions=[team.sales, team.sales2])
    settings = AiSettings.start(team.id, actor=person(team.admin))
    settings.change({"urgency_alert": 70}, actor=person(team.admin))  # the alerts' thresholds
    services.app.commit(lead, settings)
    return team


def rows(services: Services, org: UUID) -> list[dict[str, Any]]:
    n = rm_notifications.c
    with services.engine.connect() as conn:
        query = sa.select(rm_notifications).where(n.organization_id == org).order_by(n.position)
        return [dict(r) for r in conn.execute(query).mappings()]


def told(services: Services, org: UUID) -> set[tuple[UUID, str]]:
    return {(r["user_id"], r["kind"]) for r in rows(services, org)}


def test_each_kind_reaches_whom_it_concerns_once_and_a_rebuild_gives_the_same_rows(
    fresh: Services,
) -> None:
    team = Team(fresh)
    app = fresh.app
    lead = team.lead(team.sales, by=team.admin)  # assigned on capture by someone else
    lead.assign(team.sales2, actor=person(team.sales2))  # taking it oneself: nobody told
    lead.assign(team.sales, actor=Actor(kind="rule", id=str(uuid4())))
    lead.add_note("@[S2](x) hi", actor=person(team.admin), mentions=[team.sales2, team.admin])
    app.commit(lead)
    task = Task.open(team.id, person(team.admin))
    task.trigger_event(
        Task.CameDue,
        due_at=NOW,
        assignee_id=team.sales,
        lead_id=lead.id,
        title="Call back",
        actor=TIMERS,
    )
    chat = Conversation.start(
        organization_id=team.id,
        lead_id=lead.id,
        channel="whatsapp",
        contact="+5511999990000",
        actor=PROVIDER,
    )
    message = chat.receive(
        provider_message_id="wamid.1",
        provider_type="whatsapp_cloud",
        text="oi",
        sent_at=NOW,
        actor=PROVIDER,
    )
    chat.hand_off(team.sales2, actor=person(team.admin))
    chat.record_response_breach(
        message_id=message,
        waiting_since=NOW,
        deadline=NOW + timedelta(minutes=5),
        sla_minutes=5,
        assignee_id=team.sales,
        actor=TIMERS,
    )
    app.commit(task, chat)
    runner = runner_for(fresh)
    runner.catch_up()
    runner.catch_up()  # nothing new: nothing twice

    assert sorted(told(fresh, team.id), key=str) == sorted(
        {
            (team.sales, "lead_assigned"),
            (team.sales2, "mentioned"),
            (team.sales, "task_due"),
            (team.sales2, "conversation_handed_off"),
            (team.sales, "sla_breached"),
            (team.admin, "sla_breached"),
            (team.manager, "sla_breached"),
        },
        key=str,
    )
    made = rows(fresh, team.id)
    assert len(made) == 8  # lead_assigned twice to sales: on capture and by the rule
    by_kind = {(r["user_id"], r["kind"], r["actor_kind"]): r for r in made}
    by_rule = by_kind[(team.sales, "lead_assigned", "rule")]
    assert by_rule["summary"] == "A lead was assigned to you by an assignment rule."
    assert by_rule["link"] == f"/crm/leads/{lead.id}" and by_rule["lead_id"] == lead.id
    due = by_kind[(team.sales, "task_due", "system")]
    assert due["summary"] == "Task due: Call back" and due["link"] == f"/crm/tasks/{task.id}"
    handed = by_kind[(team.sales2, "conversation_handed_off", "user")]
    assert handed["lead_id"] == lead.id
    assert handed["link"] == f"/crm/conversations/{chat.id}/messages"
    for r in made:
        assert r["notification_id"] == notification_id(r["position"], r["user_id"])
        assert "Maria" not in repr(r)  # the sealed name is never copied here
    with fresh.engine.connect() as conn:
        live = dump(conn)
    assert rebuild_all(fresh) == live


def test_preferences_hide_in_app_and_queue_email_once_even_after_a_rebuild(
    fresh: Services,
) -> None:
    team = Team(fresh)
    inbox = NotificationInbox.open(
        organization_id=team.id, user_id=team.sales, actor=person(team.sales)
    )
    inbox.change_preferences(
        {"lead_assigned": {"in_app": False, "email": True}}, actor=person(team.sales)
    )
    fresh.app.commit(inbox)
    team.lead(team.sales, by=team.admin)
    team.lead(team.sales2, by=team.admin)  # sales2 kept the defaults: in the app, no email
    runner_for(fresh).catch_up()
    made = {r["user_id"]: r for r in rows(fresh, team.id)}
    assert made[team.sales]["in_app"] is False and made[team.sales2]["in_app"] is True
    with fresh.engine.connect() as conn:
        queued = conn.execute(sa.select(notification_emails.c.notification_id)).scalars().all()
    assert queued == [made[team.sales]["notification_id"]]
    rebuild_all(fresh)
    with fresh.engine.connect() as conn:
        again = conn.execute(sa.select(notification_emails.c.notification_id)).scalars().all()
    assert again == queued


def test_a_member_removed_is_no_longer_told_and_read_marks_apply_in_log_order(
    fresh: Services,
) -> None:
    team = Team(fresh)
    first = team.lead(team.sales, by=team.admin)
    team.lead(team.sales, by=team.admin)
    runner_for(fresh).catch_up()
    positions = [r["position"] for r in rows(fresh, team.id)]
    inbox = NotificationInbox.open(
        organization_id=team.id, user_id=team.sales, actor=person(team.sales)
    )
    inbox.mark_read(
        notification_id(positions[1], team.sales), positions[1], actor=person(team.sales)
    )
    inbox.mark_all_read(positions[0], actor=person(team.sales))
    org = fresh.app.load(Organization, team.id, team.id)
    org.remove_member(team.sales2, actor=person(team.admin))
    first.assign(team.sales2, actor=person(team.admin))  # recorded, but sales2 has gone
    fresh.app.commit(inbox, org, first)
    runner_for(fresh).catch_up()
    made = rows(fresh, team.id)
    assert [(r["user_id"], r["read_at"] is not None) for r in made] == [
        (team.sales, True),
        (team.sales, True),
    ]
