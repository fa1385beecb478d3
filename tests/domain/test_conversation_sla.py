"""A first-response SLA breach is recorded once per waiting period, never for an answered one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from domain.conversation import Conversation
from domain.values import Actor
from tests.domain.builders import replay

PROVIDER = Actor("provider", "whatsapp")
TIMERS = Actor("system", "timers")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def conversation() -> Conversation:
    return Conversation.start(
        organization_id=uuid4(),
        lead_id=uuid4(),
        channel="whatsapp",
        contact="+55 11 99999-0000",
        actor=PROVIDER,
    )


def receive(c: Conversation, key: str, at: datetime) -> UUID:
    return c.receive(
        provider_message_id=key, provider_type="cloud", text="oi", sent_at=at, actor=PROVIDER
    )


def breach(c: Conversation, message_id: UUID) -> bool:
    return c.record_response_breach(
        message_id=message_id,
        waiting_since=T0,
        deadline=T0 + timedelta(minutes=30),
        sla_minutes=30,
        assignee_id=None,
        actor=TIMERS,
    )


def test_the_first_unanswered_message_starts_the_wait_and_later_ones_do_not_move_it() -> None:
    c = conversation()
    first = receive(c, "m1", T0)
    receive(c, "m2", T0 + timedelta(minutes=5))
    assert c.awaiting_reply_to == first


def test_a_breach_is_recorded_once_for_its_waiting_message() -> None:
    c = conversation()
    first = receive(c, "m1", T0)
    assert breach(c, first) is True
    assert breach(c, first) is False
    breaches = [e for e in c.collect_events() if isinstance(e, Conversation.ResponseSlaBreached)]
    assert [b.message_id for b in breaches] == [first]


def test_an_answered_message_is_never_breached() -> None:
    c = conversation()
    first = receive(c, "m1", T0)
    c.send(provider_type="cloud", now=T0 + timedelta(minutes=1), actor=PROVIDER, text="olá")
    assert c.awaiting_reply_to is None
    assert breach(c, first) is False


def test_a_new_message_after_a_reply_starts_a_new_waiting_period() -> None:
    c = conversation()
    first = receive(c, "m1", T0)
    breach(c, first)
    c.send(provider_type="cloud", now=T0 + timedelta(hours=1), actor=PROVIDER, text="olá")
    second = receive(c, "m2", T0 + timedelta(hours=2))
    assert c.awaiting_reply_to == second
    assert breach(c, second) is True
    replayed = replay(c.collect_events())
    assert isinstance(replayed, Conversation)
    assert replayed.breached_for == second
