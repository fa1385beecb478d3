"""Message analysis by a language model through the official `openai` SDK.

Chat Completions with a JSON-schema structured output, which OpenAI and OpenAI-compatible
servers (vLLM, Ollama, LiteLLM) accept. The SDK honours `OPENAI_API_KEY` and `OPENAI_BASE_URL`
when no key or base URL is given (a platform-wide key); an organization may bring its own.
Retries with backoff on 429 and 5xx are the SDK's own (`max_retries`, honouring Retry-After),
each attempt bounded by `timeout`. Whatever goes wrong — no answer, a refusal, JSON that is not
the schema, values out of range — the fallback analyzer (the offline one) answers instead, so
a message is always analysed and the result says which model did it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import msgspec
import openai
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.shared_params import ResponseFormatJSONSchema

from application.ai.ports import INTENTS, Intent, MessageAnalysis, MessageAnalyzer

log = logging.getLogger(__name__)

#: earlier messages sent as context, newest kept
MAX_CONTEXT = 10
MAX_TEXT = 4_000

INSTRUCTIONS = (
    "You analyse one message a contact sent to a sales team (Portuguese or English). "
    "Answer with JSON only: sentiment from -1 (very negative) to 1 (very positive), "
    "confidence from 0 to 1, urgency from 0 to 100 (deadlines, time words, repeated asks), "
    "intent (one of: " + ", ".join(INTENTS) + "), a one-sentence summary in the message's "
    "language, and language as an ISO 639-1 code. Earlier messages of the conversation are "
    "context only: analyse the last one."
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "urgency": {"type": "integer", "minimum": 0, "maximum": 100},
        "intent": {"type": "string", "enum": list(INTENTS)},
        "summary": {"type": "string"},
        "language": {"type": "string"},
    },
    "required": ["sentiment", "confidence", "urgency", "intent", "summary", "language"],
    "additionalProperties": False,
}


RESPONSE_FORMAT = ResponseFormatJSONSchema(
    type="json_schema",
    json_schema={"name": "message_analysis", "strict": True, "schema": SCHEMA},
)


class _Answer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sentiment: float
    confidence: float
    urgency: int
    intent: Intent
    summary: str
    language: str


class ModelAnswerError(ValueError):
    """The model answered, but not an analysis the schema allows."""


def _checked(answer: _Answer) -> _Answer:
    if not -1 <= answer.sentiment <= 1:
        raise ModelAnswerError(f"sentiment {answer.sentiment} out of -1..1")
    if not 0 <= answer.confidence <= 1:
        raise ModelAnswerError(f"confidence {answer.confidence} out of 0..1")
    if not 0 <= answer.urgency <= 100:
        raise ModelAnswerError(f"urgency {answer.urgency} out of 0..100")
    if not answer.summary.strip() or len(answer.summary) > 1_000:
        raise ModelAnswerError("summary empty or too long")
    return answer


class OpenAIAnalyzer:
    """A `MessageAnalyzer` asking a Chat Completions model, falling back on failure."""

    def __init__(
        self,
        *,
        model: str,
        fallback: MessageAnalyzer,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        client: openai.OpenAI | None = None,
    ) -> None:
        self.model = model
        self.fallback = fallback
        # None: the SDK reads OPENAI_API_KEY / OPENAI_BASE_URL itself
        self.client = client or openai.OpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    def messages(self, text: str, context: Sequence[str]) -> list[ChatCompletionMessageParam]:
        earlier = [c[:MAX_TEXT] for c in context[-MAX_CONTEXT:]]
        history = "\n".join(f"- {c}" for c in earlier)
        prompt = text[:MAX_TEXT]
        if history:
            prompt = f"Earlier messages (context):\n{history}\n\nMessage to analyse:\n{prompt}"
        return [
            ChatCompletionSystemMessageParam(role="system", content=INSTRUCTIONS),
            ChatCompletionUserMessageParam(role="user", content=prompt),
        ]

    def analyse(self, text: str, *, context: Sequence[str] = ()) -> MessageAnalysis:
        try:
            return self._ask(text, context)
        except (openai.OpenAIError, msgspec.MsgspecError, ModelAnswerError) as error:
            # never the message itself in the log: it is personal data
            log.warning("model analysis failed, offline analyzer used: %s", type(error).__name__)
            return self.fallback.analyse(text, context=context)

    def _ask(self, text: str, context: Sequence[str]) -> MessageAnalysis:
        completion = self.client.chat.completions.create(
            model=self.model,
            messages=self.messages(text, context),
            response_format=RESPONSE_FORMAT,
            temperature=0.0,
        )
        if not completion.choices:
            raise ModelAnswerError("no choice in the answer")
        message = completion.choices[0].message
        if message.content is None:
            raise ModelAnswerError("no content (a refusal?)")
        answer = _checked(msgspec.json.decode(message.content, type=_Answer))
        usage = completion.usage
        return MessageAnalysis(
            sentiment=answer.sentiment,
            confidence=answer.confidence,
            urgency=answer.urgency,
            intent=answer.intent,
            summary=answer.summary.strip()[:500],
            language=answer.language[:8],
            model=completion.model or self.model,
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
        )


class Models:
    """The `ModelFactory`: OpenAI when a key is given (or `OPENAI_API_KEY` is set), else the
    offline analyzer; every model analyzer falls back to the offline one."""

    def __init__(self, *, default_model: str, timeout: float = 10.0) -> None:
        from application.ai.offline import OfflineAnalyzer

        self.default_model = default_model
        self.timeout = timeout
        self.offline = OfflineAnalyzer()
        # one SDK client (its connection pool) per model and key, not one per message
        self._made: dict[tuple[str, str | None], OpenAIAnalyzer] = {}

    def analyzer(self, *, model: str | None, api_key: str | None) -> MessageAnalyzer:
        if not api_key and not os.environ.get("OPENAI_API_KEY"):
            return self.offline
        wanted = (model or self.default_model, api_key)
        made = self._made.get(wanted)
        if made is None:
            if len(self._made) >= 256:
                self._made.clear()
            made = OpenAIAnalyzer(
                model=wanted[0], fallback=self.offline, api_key=api_key, timeout=self.timeout
            )
            self._made[wanted] = made
        return made
