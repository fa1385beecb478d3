"""The analysis queue: one row per inbound message, the work of the message-analysis policy
(`application.ai.analysis`), fed by the projector in log order so that no message is missed.

Not a read model for people: it holds ids only (the text stays sealed in the log). Row life:
`pending` → claimed (`analysing`, attempts + 1, a claim token and a lease) → `done`, or
`skipped` (erased, gone), or back to `pending` later after a failure. A claimed row whose lease
ran out (its worker died) is due again. The projector also settles a row `done` when it sees the
message's `Conversation.MessageAnalysed`, so a rebuild from zero leaves only the unanalysed
messages pending; the aggregate refuses a second analysis whatever the queue says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.base import (
    Envelope,
    Projector,
    UtcDateTime,
    bulk_insert,
    claim_due,
    metadata,
)

PENDING, ANALYSING, DONE, SKIPPED = "pending", "analysing", "done", "skipped"

ai_analysis_queue = sa.Table(
    "ai_analysis_queue",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("conversation_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # pending: when to try (again); analysing: when the claim's lease ends
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claim_token", sa.Uuid),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_ai_analysis_queue_due", "status", "next_attempt_at"),
)


class AnalysisQueueProjector(Projector):
    """A pending row per received message; `done` once its analysis is in the log."""

    name = "analysis_queue"
    tables = (ai_analysis_queue,)
    handles = frozenset({"Conversation.MessageReceived", "Conversation.MessageAnalysed"})

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        new: dict[tuple[UUID, UUID], dict[str, Any]] = {}
        done: list[tuple[UUID, UUID]] = []
        for envelope in batch:
            e = envelope.event
            key = (e.organization_id, e.message_id)
            if envelope.type_name == "Conversation.MessageReceived":
                new.setdefault(key, _row(envelope))
            elif key in new:  # received and analysed within one batch (a rebuild)
                new[key]["status"] = DONE
            else:
                done.append(key)
        bulk_insert(conn, ai_analysis_queue, list(new.values()))
        c = ai_analysis_queue.c
        for org, message in done:
            conn.execute(
                ai_analysis_queue.update()
                .where(c.organization_id == org, c.message_id == message, c.status != DONE)
                .values(status=DONE, claim_token=None)
            )


def _row(envelope: Envelope) -> dict[str, Any]:
    e = envelope.event
    return {
        "organization_id": e.organization_id,
        "message_id": e.message_id,
        "conversation_id": e.originator_id,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": e.timestamp,
        "claim_token": None,
        "last_error": None,
        "created_at": e.timestamp,
        "updated_at": e.timestamp,
        "position": envelope.position,
    }


@dataclass(frozen=True)
class AnalysisItem:
    """A claimed row: analyse the message, then settle the row with its claim token."""

    organization_id: UUID
    message_id: UUID
    conversation_id: UUID
    attempts: int
    claim_token: UUID


def claim_next(conn: Connection, now: datetime, lease: timedelta) -> AnalysisItem | None:
    """Claim the most overdue row (pending and due, or analysing with an expired lease): as
    `projections.base.claim_due` does for every work queue: two workers never hold one row."""
    row = claim_due(conn, ai_analysis_queue, "message_id", ANALYSING, now, lease)
    if row is None:
        return None
    return AnalysisItem(
        organization_id=row["organization_id"],
        message_id=row["message_id"],
        conversation_id=row["conversation_id"],
        attempts=int(row["attempts"]),
        claim_token=row["claim_token"],
    )


def settle(
    conn: Connection,
    item: AnalysisItem,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    """End a claim: done, skipped, or pending again at `retry_at`; False if the claim was lost."""
    t = ai_analysis_queue
    values: dict[str, Any] = {
        "status": status,
        "claim_token": None,
        "updated_at": now,
        "last_error": None if error is None else error[:500],
    }
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    moved = conn.execute(
        t.update()
        .where(t.c.organization_id == item.organization_id, t.c.message_id == item.message_id)
        .where(t.c.claim_token == item.claim_token)
        .values(**values)
    )
    return moved.rowcount == 1
