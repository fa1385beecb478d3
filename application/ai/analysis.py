"""Policy `when_message_received_analyse`: every inbound message analysed once, after it is
stored and never in the webhook's request.

The analysis queue (`projections.analysis_queue`) gets a row per `Conversation.MessageReceived`
in log order; each round claims due rows (two workers never hold the same one), reads the
message and the conversation's earlier texts from the log (opened with the lead's key), asks the
analyzer and records `Conversation.MessageAnalysed` through the conversation. Exactly once: a
webhook redelivered records one message (so one row); the aggregate refuses a second analysis
of a message, and a version conflict (another worker, a new message) reloads and tries again
with the analysis already made. A failing analyzer retries the row later with backoff.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy.engine import Engine

from application.ai.ports import MessageAnalysis, MessageAnalyzer
from application.store import CrmApplication
from domain.conversation import Conversation
from domain.errors import NotFoundError, VersionConflictError
from domain.privacy import ERASED
from domain.values import Actor
from projections.analysis_queue import DONE, PENDING, SKIPPED, claim_next, settle

log = logging.getLogger(__name__)

ANALYSIS_ACTOR = Actor(kind="system", id="ai_analysis")
#: earlier texts given to the analyzer as context
CONTEXT_MESSAGES = 10
RECORDED, ALREADY, GONE = "recorded", "already", "gone"
ANALYSIS_OFF = "analysis is off for the organization"


class AnalysisContendedError(RuntimeError):
    """The conversation changed under every attempt to record the analysis: the row retries."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def message_texts(
    app: CrmApplication, conversation_id: UUID, message_id: UUID
) -> tuple[str | None, list[str]]:
    """The message's text and the conversation's texts before it, oldest first (read from
    the log, where they are sealed with the lead's key)."""
    earlier: list[str] = []
    for event in app.events.get(conversation_id):
        if isinstance(event, Conversation.MessageReceived) and event.message_id == message_id:
            return event.text, earlier[-CONTEXT_MESSAGES:]
        if isinstance(event, Conversation.MessageReceived | Conversation.MessageSent):
            text = event.text
            if text and text != ERASED:
                earlier.append(text)
    return None, []


def _clamp(x: float, low: float, high: float, nan: float) -> float:
    return nan if math.isnan(x) else min(high, max(low, x))


def _bounded(result: MessageAnalysis) -> MessageAnalysis:
    """A model's numbers kept in their ranges (a NaN reads as neutral and unsure)."""
    return MessageAnalysis(
        sentiment=_clamp(result.sentiment, -1.0, 1.0, 0.0),
        confidence=_clamp(result.confidence, 0.0, 1.0, 0.0),
        urgency=int(_clamp(result.urgency, 0, 100, 0)),
        intent=result.intent,
        summary=result.summary,
        language=result.language,
        model=result.model or "unknown",
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
    )


def analyse_message(
    app: CrmApplication,
    analyzer: MessageAnalyzer,
    *,
    organization_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    attempts: int = 5,
) -> str:
    """Analyse one inbound message and record it: `recorded`, `already` (analysed before, here
    or by another worker), or `gone` (not an inbound message, or its contact was erased)."""
    result: MessageAnalysis | None = None
    for _ in range(attempts):
        try:
            conversation = app.load(Conversation, conversation_id, organization_id)
        except NotFoundError:
            return GONE
        if message_id in (getattr(conversation, "analysed", None) or ()):
            return ALREADY
        if conversation.statuses.get(message_id) != "received" or conversation.erased:
            return GONE
        if result is None:
            text, context = message_texts(app, conversation_id, message_id)
            if text is None or text == ERASED:
                return GONE
            result = _bounded(analyzer.analyse(text, context=context))
        recorded = conversation.record_analysis(
            message_id,
            sentiment=result.sentiment,
            confidence=result.confidence,
            urgency=result.urgency,
            intent=result.intent,
            summary=result.summary,
            language=result.language,
            model=result.model,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            actor=ANALYSIS_ACTOR,
        )
        if not recorded:
            return ALREADY
        try:
            app.commit(conversation)
        except VersionConflictError:  # another worker's analysis or a new message came first
            continue
        return RECORDED
    raise AnalysisContendedError(f"conversation {conversation_id} kept changing while analysed")


class MessageAnalysisPolicy:
    """`when_message_received_analyse`: a timer job (`run(now) -> handled`) that claims due
    rows of the analysis queue and analyses their messages."""

    def __init__(
        self,
        app: CrmApplication,
        engine: Engine,
        analyzer: MessageAnalyzer,
        *,
        batch: int = 50,
        lease: timedelta = timedelta(minutes=2),
        max_attempts: int = 5,
        budget_seconds: float = 5.0,
        analyzer_of: Callable[[UUID], MessageAnalyzer | None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.app, self.engine, self.analyzer = app, engine, analyzer
        #: the organization's analyzer (its model and key), None where analysis is off; else
        #: `analyzer` for every organization
        self.analyzer_of = analyzer_of
        self.batch, self.lease, self.max_attempts = batch, lease, max_attempts
        #: a round claims no more rows after this long: the other timers share its thread
        self.budget_seconds = budget_seconds
        self.clock = clock

    def run(self, now: datetime) -> int:
        """Analyse up to `batch` due messages; answers how many rows were handled (recorded,
        found analysed or gone, or left to a later round), so 0 means nothing was due."""
        handled = 0
        ends = time.monotonic() + self.budget_seconds
        for _ in range(self.batch):
            if time.monotonic() > ends:
                break
            with self.engine.begin() as conn:
                item = claim_next(conn, now, self.lease)
            if item is None:
                break
            status, error, retry_at = DONE, None, None
            try:
                analyzer = self._analyzer(item.organization_id)
                if analyzer is None:  # the organization turned analysis off
                    with self.engine.begin() as conn:
                        settle(conn, item, SKIPPED, self.clock(), error=ANALYSIS_OFF)
                    handled += 1
                    continue
                outcome = analyse_message(
                    self.app,
                    analyzer,
                    organization_id=item.organization_id,
                    conversation_id=item.conversation_id,
                    message_id=item.message_id,
                )
                status = SKIPPED if outcome == GONE else DONE
            except Exception as failure:  # noqa: BLE001 - the model or the store is away: retried
                log.warning("analysis of message %s failed: %r", item.message_id, failure)
                error = repr(failure)
                if item.attempts < self.max_attempts:
                    status = PENDING
                    retry_at = self.clock() + timedelta(seconds=min(600, 5 * 2**item.attempts))
                else:
                    status = SKIPPED
            with self.engine.begin() as conn:
                settle(conn, item, status, self.clock(), error=error, retry_at=retry_at)
            handled += 1
        return handled

    def _analyzer(self, organization_id: UUID) -> MessageAnalyzer | None:
        if self.analyzer_of is None:
            return self.analyzer
        return self.analyzer_of(organization_id)


when_message_received_analyse = MessageAnalysisPolicy
