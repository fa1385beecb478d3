"""Response SLA breaches: the timers' job that records a first response gone past its deadline.

The deadlines are those of the SLA read model (`projections.sla`): open clocks whose deadline
has passed. Each is recorded through its conversation, which refuses a message answered
meanwhile or a breach already recorded: a clock read stale (the reply not yet projected), a
second process doing the same, or a restart halfway record nothing twice. Who was to answer is
the lead's assignee now, as that read model knows it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from application.store import CrmApplication
from domain.conversation import Conversation
from domain.errors import NotFoundError, VersionConflictError
from domain.values import Actor
from projections.sla import OPEN, rm_sla_clocks, rm_sla_leads

TIMERS = Actor(kind="system", id="timers")
#: clocks read per round: a round records at most this many breaches
BATCH = 200


def due_clocks(
    engine: Engine, now: datetime, limit: int = BATCH
) -> list[sa.Row[tuple[object, ...]]]:
    """Open clocks whose deadline is at or before `now`, oldest first, with the lead's assignee."""
    c, lead = rm_sla_clocks.c, rm_sla_leads.c
    query = (
        sa.select(
            c.organization_id,
            c.conversation_id,
            c.message_id,
            c.waiting_since,
            c.deadline,
            c.sla_minutes,
            lead.assignee_id,
        )
        .select_from(
            rm_sla_clocks.outerjoin(
                rm_sla_leads,
                sa.and_(lead.organization_id == c.organization_id, lead.lead_id == c.lead_id),
            )
        )
        .where(c.status == OPEN, c.deadline <= now)
        .order_by(c.deadline)
        .limit(limit)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


class ResponseSlaTimer:
    """The timers' job: each round records the breaches of clocks due by its `now`.

    A clock this process already settled (recorded, or refused as answered or recorded
    elsewhere) stays due in the read model until the projector catches up with the fact; it is
    remembered here meanwhile and skipped, so a lagging projector does not make every round
    re-read the same first `batch` clocks while later ones wait. What is remembered is only
    what the read model still shows, so the memory shrinks as the projector catches up.
    """

    def __init__(self, app: CrmApplication, engine: Engine, batch: int = BATCH) -> None:
        self.app, self.engine, self.batch = app, engine, batch
        self.settled: set[tuple[UUID, UUID]] = set()

    def run(self, now: datetime) -> int:
        """Record up to `batch` due breaches; answers how many were recorded here (a no-op or a
        lost race counts none)."""
        rows = due_clocks(self.engine, now, self.batch + len(self.settled))
        self.settled &= {(r.conversation_id, r.message_id) for r in rows}
        todo = [r for r in rows if (r.conversation_id, r.message_id) not in self.settled]
        recorded = 0
        for row in todo[: self.batch]:
            if record_breach(
                self.app,
                organization_id=row.organization_id,
                conversation_id=row.conversation_id,
                message_id=row.message_id,
                waiting_since=row.waiting_since,
                deadline=row.deadline,
                sla_minutes=row.sla_minutes,
                assignee_id=row.assignee_id,
            ):
                recorded += 1
            self.settled.add((row.conversation_id, row.message_id))
        return recorded


def record_due_breaches(
    app: CrmApplication, engine: Engine, now: datetime, limit: int = BATCH
) -> int:
    """One round of a fresh timer: the breaches due by `now` (at most `limit`)."""
    return ResponseSlaTimer(app, engine, limit).run(now)


def record_breach(
    app: CrmApplication,
    *,
    organization_id: UUID,
    conversation_id: UUID,
    message_id: UUID,
    waiting_since: datetime,
    deadline: datetime,
    sla_minutes: int,
    assignee_id: UUID | None,
) -> bool:
    """Record one breach; False when the message was answered, the breach is already recorded,
    or another process recorded it first."""
    try:
        conversation = app.load(Conversation, conversation_id, organization_id)
    except NotFoundError:
        return False
    if not conversation.record_response_breach(
        message_id=message_id,
        waiting_since=waiting_since,
        deadline=deadline,
        sla_minutes=sla_minutes,
        assignee_id=assignee_id,
        actor=TIMERS,
    ):
        return False
    try:
        app.commit(conversation)
    except VersionConflictError:  # a reply or the other process's record came first
        return False
    return True
