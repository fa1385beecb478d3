"""What the application needs from a language model, whichever answers: OpenAI through its SDK,
an OpenAI-compatible server, or the deterministic offline analyzer (the default and fallback)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

Intent = Literal["pricing", "purchase", "support", "complaint", "scheduling", "greeting", "other"]
INTENTS: tuple[Intent, ...] = (
    "pricing",
    "purchase",
    "support",
    "complaint",
    "scheduling",
    "greeting",
    "other",
)


class MessageAnalysis(msgspec.Struct, frozen=True):
    """One inbound message read by a model: how the contact feels, how urgent it is, what they
    want, in a sentence — and what it cost."""

    #: -1 (very negative) .. 1 (very positive)
    sentiment: float
    #: 0 .. 1, how sure the model is of the sentiment and intent
    confidence: float
    #: 0 .. 100
    urgency: int
    intent: Intent
    summary: str
    #: ISO 639-1 code of the language it read ("pt", "en")
    language: str
    #: "offline" or the model's name
    model: str
    tokens_in: int = 0
    tokens_out: int = 0


class MessageAnalyzer(Protocol):
    """Analyse one message; `context` holds the conversation's earlier messages, oldest first."""

    def analyse(self, text: str, *, context: Sequence[str] = ()) -> MessageAnalysis: ...
