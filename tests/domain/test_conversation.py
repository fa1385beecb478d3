"""Conversations: provider ids recorded once, statuses only forward, the 24-hour window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.conversation import (
    STATUS_RANK,
    Conversation,
    ConversationClosedError,
    WindowClosedError,
)
from domain.errors import InvalidValueError, NotFoundError
from domain.values import Actor
from tests.domain.builders import replay, through_the_event_store

ACTOR = Actor("provider", "whatsapp")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def conversation() -> Conversation:
    return Conversation.start(
        organization_id=uuid4(),
        lead_id=uuid4(),
        channel="whatsapp",
        contact="+55 11 99999-0000",
        actor=ACTOR,
    )


def test_a_webhook_retry_of_the_same_message_records_it_once() -> None:
    c = conversation()
    first = c.receive(
        provider_message_id="wamid.1",
        provider_type="whatsapp_business",
        text="oi",
        sent_at=T0,
        actor=ACTOR,
    )
    again = c.receive(
        provider_message_id="wamid.1",
        provider_type="whatsapp_business",
        text="oi",
        sent_at=T0,
        actor=ACTOR,
    )
    assert first == again
    assert [type(e).__name__ for e in c.collect_events()] == ["Started", "MessageReceived"]


def test_free_text_goes_out_only_inside_the_window_opened_by_the_contact() -> None:
    c = conversation()
    with pytest.raises(WindowClosedError):
        c.send(provider_type="whatsapp_business", text="hello", now=T0, actor=ACTOR)
    template = c.send(
        provider_type="whatsapp_business",
        template_name="welcome",
        template_variables={"name": "Ana"},
        now=T0,
        actor=ACTOR,
    )
    assert c.statuses[template] == "queued"
    c.receive(
        provider_message_id="wamid.2",
        provider_type="whatsapp_business",
        text="oi",
        sent_at=T0,
        actor=ACTOR,
    )
    c.send(
        provider_type="whatsapp_business", text="hello", now=T0 + timedelta(hours=23), actor=ACTOR
    )
    with pytest.raises(WindowClosedError):
        c.send(
            provider_type="whatsapp_business",
            text="late",
            now=T0 + timedelta(hours=24),
            actor=ACTOR,
        )
    with pytest.raises(InvalidValueError):
        c.send(provider_type="whatsapp_business", now=T0, actor=ACTOR)


def test_statuses_only_move_forward_and_read_may_come_before_delivered() -> None:
    c = conversation()
    m = c.send(provider_type="whatsapp_business", template_name="welcome", now=T0, actor=ACTOR)
    c.change_status(m, "read", actor=ACTOR, provider_message_id="wamid.9")
    c.change_status(m, "delivered", actor=ACTOR)
    c.change_status(m, "failed", actor=ACTOR)
    assert c.statuses[m] == "read"
    assert c.provider_ids["wamid.9"] == m
    with pytest.raises(NotFoundError):
        c.change_status(uuid4(), "sent", actor=ACTOR)
    with pytest.raises(InvalidValueError):
        c.change_status(m, "lost", actor=ACTOR)


def test_a_closed_conversation_takes_no_more_messages() -> None:
    c = conversation()
    c.close(actor=ACTOR)
    with pytest.raises(ConversationClosedError):
        c.send(provider_type="whatsapp_business", template_name="x", now=T0, actor=ACTOR)


STATUSES = st.sampled_from([*STATUS_RANK, "failed"])


@settings(max_examples=150, deadline=None)
@given(st.lists(STATUSES, max_size=12), st.lists(st.integers(0, 3), max_size=8))
def test_any_order_of_callbacks_keeps_statuses_forward_and_replays_equal(
    statuses: list[str], retries: list[int]
) -> None:
    c = conversation()
    m = c.send(provider_type="whatsapp_business", template_name="t", now=T0, actor=ACTOR)
    highest = 0
    for status in statuses:
        before = c.statuses[m]
        c.change_status(m, status, actor=ACTOR)
        after = c.statuses[m]
        if before == "failed":
            assert after == "failed"
        elif after != "failed":
            assert STATUS_RANK[after] >= STATUS_RANK[before]
            highest = max(highest, STATUS_RANK[after])
    for n in retries:
        c.receive(
            provider_message_id=f"wamid.{n}",
            provider_type="web_bridge",
            text="x",
            sent_at=T0,
            actor=ACTOR,
        )
    received = [e for e in c.collect_events() if isinstance(e, Conversation.MessageReceived)]
    assert len(received) == len(set(retries))
    assert highest <= STATUS_RANK["read"]


def test_a_conversations_events_rebuild_it_through_the_event_store(
    event_mapper: Mapper[UUID],
) -> None:
    c = conversation()
    c.receive(
        provider_message_id="wamid.1",
        provider_type="whatsapp_business",
        text="oi",
        sent_at=T0,
        actor=ACTOR,
        contact_name="Ana",
    )
    m = c.send(
        provider_type="whatsapp_business", text="olá", now=T0 + timedelta(minutes=5), actor=ACTOR
    )
    c.change_status(m, "delivered", actor=ACTOR, provider_message_id="wamid.2")
    c.hand_off(uuid4(), actor=ACTOR)
    events: list[Any] = list(c.collect_events())
    assert replay(through_the_event_store(event_mapper, events)) == c


def test_the_contact_writing_again_reopens_a_closed_conversation() -> None:
    c = Conversation.start(
        organization_id=uuid4(),
        lead_id=uuid4(),
        channel="whatsapp",
        contact="+5511987654321",
        actor=ACTOR,
    )
    c.close(actor=ACTOR)
    with pytest.raises(ConversationClosedError):
        c.send(provider_type="business_api", template_name="w", now=T0, actor=ACTOR)
    c.receive(
        provider_message_id="wamid.again",
        provider_type="business_api",
        text="oi",
        sent_at=T0,
        actor=ACTOR,
    )
    assert not c.closed
    c.send(provider_type="business_api", text="olá", now=T0, actor=ACTOR)
