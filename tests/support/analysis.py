"""Deterministic analyzers for tests (the real ones live in application.ai): what they answer
follows from the text alone, so a test knows the analysis it expects."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from application.ai.ports import INTENTS, MessageAnalysis


def expected(text: str, context: Sequence[str] = ()) -> MessageAnalysis:
    """Sentiment from the text's length, urgency from its exclamation marks, the intent by
    length, the summary naming the text and how much context came with it."""
    return MessageAnalysis(
        sentiment=round((len(text) % 21) / 10 - 1, 2),
        confidence=0.5,
        urgency=min(100, 20 * text.count("!")),
        intent=INTENTS[len(text) % len(INTENTS)],
        summary=f"about {text[:60]} ({len(context)} before)",
        language="en",
        model="test-length",
        tokens_in=len(text),
        tokens_out=3,
    )


class LengthAnalyzer:
    """`expected` as a MessageAnalyzer, counting its calls (thread-safe)."""

    def __init__(self, summary: str | None = None) -> None:
        self.summary = summary
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self._lock = threading.Lock()

    def analyse(self, text: str, *, context: Sequence[str] = ()) -> MessageAnalysis:
        with self._lock:
            self.calls.append((text, tuple(context)))
        result = expected(text, context)
        if self.summary is not None:
            return MessageAnalysis(**{**_fields(result), "summary": self.summary})
        return result


def _fields(result: MessageAnalysis) -> dict[str, object]:
    return {name: getattr(result, name) for name in result.__struct_fields__}


def write_analyses(app: Any) -> None:
    """An organization's conversations with analysed and unanalysed messages, one erased later
    (for the read models' verification against the log)."""
    from datetime import UTC, datetime, timedelta
    from uuid import uuid4

    from domain.conversation import Conversation
    from domain.values import Actor

    provider, system = Actor("provider", "whatsapp"), Actor("system", "ai_analysis")
    org, at = uuid4(), datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    for n in range(2):
        chat = Conversation.start(
            organization_id=org,
            lead_id=uuid4(),
            channel="whatsapp",
            contact=f"+55 11 90000-000{n}",
            actor=provider,
        )
        texts = ["hello", "is it ready?!", "still waiting!!", "thanks"]
        for i, text in enumerate(texts):
            message = chat.receive(
                provider_message_id=f"wamid.{n}.{i}",
                provider_type="business_api",
                text=text,
                sent_at=at + timedelta(minutes=i),
                actor=provider,
            )
            if i < 3:  # the last one waits for its analysis
                reading = expected(text, texts[:i])
                chat.record_analysis(message, **_fields(reading), actor=system)  # type: ignore[arg-type]
            app.commit(chat)
        if n:
            chat.erase_contact(actor=system)
            app.commit(chat)
