"""A message's analysis: recorded once per inbound message of the conversation, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from domain.conversation import Conversation
from domain.errors import InvalidValueError
from domain.values import Actor
from tests.domain.builders import replay

ACTOR = Actor("system", "ai_analysis")
PROVIDER = Actor("provider", "whatsapp")
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
READING: dict[str, Any] = {
    "sentiment": -0.6,
    "confidence": 0.8,
    "urgency": 90,
    "intent": "complaint",
    "summary": "Unhappy with the delay",
    "language": "en",
    "model": "test",
    "tokens_in": 12,
    "tokens_out": 4,
}


def chat_with_a_message() -> tuple[Conversation, Any]:
    c = Conversation.start(
        organization_id=uuid4(),
        lead_id=uuid4(),
        channel="whatsapp",
        contact="+55 11 99999-0000",
        actor=PROVIDER,
    )
    message = c.receive(
        provider_message_id="wamid.1",
        provider_type="business_api",
        text="where is my order?!",
        sent_at=T0,
        actor=PROVIDER,
    )
    return c, message


def test_an_inbound_message_is_analysed_once_and_the_analysis_names_the_lead() -> None:
    c, message = chat_with_a_message()

    first = c.record_analysis(message, **READING, actor=ACTOR)
    second = c.record_analysis(message, **READING, actor=ACTOR)

    analysed = [e for e in c.collect_events() if isinstance(e, Conversation.MessageAnalysed)]
    assert (first, second) == (True, False)
    assert len(analysed) == 1 and analysed[0].lead_id == c.lead_id
    assert analysed[0].summary == "Unhappy with the delay"


def test_a_replayed_conversation_remembers_what_was_analysed() -> None:
    c, message = chat_with_a_message()
    c.record_analysis(message, **READING, actor=ACTOR)
    again = replay(c.collect_events())

    assert isinstance(again, Conversation)
    assert again.record_analysis(message, **READING, actor=ACTOR) is False


def test_an_outbound_an_unknown_or_an_erased_contacts_message_is_not_analysed() -> None:
    c, message = chat_with_a_message()
    sent = c.send(provider_type="business_api", now=T0, actor=ACTOR, text="on its way")
    assert c.record_analysis(sent, **READING, actor=ACTOR) is False
    assert c.record_analysis(uuid4(), **READING, actor=ACTOR) is False
    c.erase_contact(actor=ACTOR)
    assert c.record_analysis(message, **READING, actor=ACTOR) is False


@pytest.mark.parametrize(
    "wrong", [{"sentiment": 1.5}, {"confidence": -0.1}, {"urgency": 101}, {"model": " "}]
)
def test_an_analysis_out_of_its_ranges_is_refused(wrong: dict[str, Any]) -> None:
    c, message = chat_with_a_message()
    with pytest.raises(InvalidValueError):
        c.record_analysis(message, **(READING | wrong), actor=ACTOR)
