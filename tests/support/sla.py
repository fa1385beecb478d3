"""Histories for the response SLA: an organization with its settings, a lead, a conversation,
messages in and out at chosen times (written through the aggregates, stamped by a fake clock)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from application.store import CrmApplication
from domain.business_hours import BusinessHours
from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor
from domain.work_settings import ResponseSla, WorkSettings
from tests.support.clock import FakeClock

MANAGER = Actor(kind="user", id=str(uuid4()))
PROVIDER = Actor(kind="provider", id="business_api")


class SlaWorld:
    """One organization, written to the log as a test goes."""

    def __init__(self, app: CrmApplication, clock: FakeClock, timezone: str = "UTC") -> None:
        self.app, self.clock = app, clock
        self.org = Organization.register(name="Answers", owner_user_id=uuid4(), actor=MANAGER)
        if timezone != "UTC":
            self.org.change_timezone(timezone, actor=MANAGER)
        self.pipeline = Pipeline.create_default(organization_id=self.org.id, actor=MANAGER)
        self.settings = WorkSettings.start(self.org.id, actor=MANAGER)
        app.commit(self.org, self.pipeline, self.settings)
        self.leads: dict[UUID, Lead] = {}
        self.chats: dict[UUID, Conversation] = {}

    @property
    def id(self) -> UUID:
        return self.org.id

    def set_sla(self, minutes: int, *, business_hours: bool, enabled: bool = True) -> None:
        sla = ResponseSla.parse(enabled=enabled, minutes=minutes, business_hours=business_hours)
        self.settings.set_sla(sla, actor=MANAGER)
        self.app.commit(self.settings)

    def set_hours(self, weekly: dict[str, Any], holidays: list[str] = ()) -> None:  # type: ignore[assignment]
        hours = BusinessHours.parse(self.org.timezone, weekly, holidays)
        self.settings.set_business_hours(hours, actor=MANAGER)
        self.app.commit(self.settings)

    def change_timezone(self, timezone: str) -> None:
        self.org.change_timezone(timezone, actor=MANAGER)
        self.app.commit(self.org)

    def lead(self, assignee: UUID | None = None) -> Lead:
        lead = Lead.capture(
            organization_id=self.org.id,
            pipeline_id=self.pipeline.id,
            stage=self.pipeline.stages[0].ref,
            details={"full_name": "Ana"},
            assignee_id=assignee,
            actor=MANAGER,
        )
        self.app.commit(lead)
        self.leads[lead.id] = lead
        return lead

    def assign(self, lead: Lead, member: UUID | None) -> None:
        lead.assign(member, actor=MANAGER)
        self.app.commit(lead)

    def chat(self, lead: Lead) -> Conversation:
        chat = Conversation.start(
            organization_id=self.org.id,
            lead_id=lead.id,
            channel="whatsapp",
            contact=f"+55119{uuid4().int % 10**8:08d}",
            actor=PROVIDER,
        )
        self.app.commit(chat)
        self.chats[chat.id] = chat
        return chat

    def inbound(self, chat: Conversation, at: datetime | None = None) -> UUID:
        if at is not None:
            self.clock.move_to(at)
        message = chat.receive(
            provider_message_id=uuid4().hex,
            provider_type="business_api",
            text="hello?",
            sent_at=self.clock.now,
            actor=PROVIDER,
        )
        self.app.commit(chat)
        return message

    def outbound(self, chat: Conversation, by: UUID, at: datetime | None = None) -> UUID:
        if at is not None:
            self.clock.move_to(at)
        message = chat.send(
            provider_type="business_api",
            now=self.clock.now,
            text="hi!",
            window=False,
            actor=Actor(kind="user", id=str(by)),
        )
        self.app.commit(chat)
        return message

    def reload(self, chat: Conversation) -> Conversation:
        fresh = self.app.load(Conversation, chat.id, self.org.id)
        self.chats[chat.id] = fresh
        return fresh


def write_sla_history(app: CrmApplication) -> None:
    """One organization with a 30-minute SLA: a reply in time, a breach recorded, a reply late,
    a wait still open — every SLA table gets rows."""
    from datetime import UTC, timedelta

    from tests.support.clock import event_clock

    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    with event_clock(start) as clock:
        world = SlaWorld(app, clock, timezone="America/Sao_Paulo")
        world.set_sla(30, business_hours=False)
        member = uuid4()
        chats = [world.chat(world.lead(assignee=member)) for _ in range(4)]
        world.inbound(chats[0])
        world.outbound(chats[0], by=member, at=start + timedelta(minutes=10))
        waiting = world.inbound(chats[1])
        chats[1].record_response_breach(
            message_id=waiting,
            waiting_since=start + timedelta(minutes=10),
            deadline=start + timedelta(minutes=40),
            sla_minutes=30,
            assignee_id=member,
            actor=Actor(kind="system", id="timers"),
        )
        app.commit(chats[1])
        world.inbound(chats[2])
        world.outbound(chats[2], by=member, at=start + timedelta(hours=2))
        world.inbound(chats[3])
