"""Calls log read model: one row per call, placed or received, with its progress and recordings.

A call's numbers are its lead's personal data: once the lead is erased they read `[erased]`, in
the calls the lead had until then (as a rebuild reads them once the lead's key is gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.call import Call
from domain.lead import Lead
from domain.privacy import ERASED
from domain.values import Actor
from projections.base import Envelope, JSONType, Projector, UtcDateTime, metadata
from projections.conversations import BatchRows, Key

rm_calls = sa.Table(
    "rm_calls",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("call_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("provider_type", sa.String(40), nullable=False),
    sa.Column("provider_call_id", sa.String(200)),
    sa.Column("from_number", sa.String(32), nullable=False),
    sa.Column("to_number", sa.String(32), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("outcome", sa.String(20)),
    sa.Column("duration_seconds", sa.Integer),
    sa.Column("recording_urls", JSONType, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("answered_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("placed_by", sa.Uuid),
    sa.Column("position", sa.BigInteger, nullable=False),
)
sa.Index(
    "ix_rm_calls_log", rm_calls.c.organization_id, rm_calls.c.started_at.desc(), rm_calls.c.call_id
)
sa.Index(
    "ix_rm_calls_lead",
    rm_calls.c.organization_id,
    rm_calls.c.lead_id,
    rm_calls.c.started_at,
    rm_calls.c.call_id,
)

CALL_EVENTS = frozenset(
    f"Call.{n}" for n in ("Started", "Dialed", "Progressed", "Ended", "RecordingAttached")
)
ERASED_EVENT = "Lead.PersonalDataErased"


def placed_by(direction: str, actor: Actor) -> UUID | None:
    """The user who placed an outbound call (calls started by providers or keys have none)."""
    if direction != "outbound" or actor.kind != "user":
        return None
    try:
        return UUID(actor.id)
    except ValueError:
        return None


class CallsProjector(Projector):
    """Fills `rm_calls`, one batch in memory and one write per kind."""

    name = "calls"
    tables = (rm_calls,)
    handles = CALL_EVENTS | {ERASED_EVENT}

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        calls = BatchRows(rm_calls, "call_id")
        later: set[Key] = {
            (env.event.organization_id, env.event.originator_id)
            for env in batch
            if env.type_name in CALL_EVENTS and not isinstance(env.event, Call.Started)
        }
        calls.load(conn, later)
        erased = {
            (env.event.organization_id, env.event.originator_id)
            for env in batch
            if env.type_name == ERASED_EVENT
        }
        calls.load(conn, erased, by="lead_id")
        for env in batch:
            e = env.event
            if isinstance(e, Call.Started):
                calls.add(_started(e, env.position))
                continue
            if isinstance(e, Lead.PersonalDataErased):
                _erase(calls, e.organization_id, e.originator_id, env.position)
                continue
            row = calls.get(e.organization_id, e.originator_id)
            if row is None:  # defensive: a call whose start this model never saw
                continue
            _apply(row, e)
            calls.touch(row, env.position)
        calls.flush(conn)


def _started(e: Call.Started, position: int) -> dict[str, Any]:
    return {
        "organization_id": e.organization_id,
        "call_id": e.originator_id,
        "lead_id": e.lead_id,
        "direction": e.direction,
        "provider_type": e.provider_type,
        "provider_call_id": e.provider_call_id,
        "from_number": e.from_number,
        "to_number": e.to_number,
        "status": "initiated",
        "outcome": None,
        "duration_seconds": None,
        "recording_urls": [],
        "started_at": e.timestamp,
        "answered_at": None,
        "ended_at": None,
        "placed_by": placed_by(e.direction, e.actor),
        "position": position,
    }


def _apply(row: dict[str, Any], e: Any) -> None:
    if isinstance(e, Call.Dialed):
        row["provider_call_id"] = e.provider_call_id
    elif isinstance(e, Call.Progressed):
        row["status"] = e.status
        row["provider_call_id"] = e.provider_call_id or row["provider_call_id"]
        if e.status == "answered":
            row["answered_at"] = e.timestamp
    elif isinstance(e, Call.Ended):
        row.update(
            status="ended",
            outcome=e.outcome,
            duration_seconds=e.duration_seconds,
            ended_at=e.timestamp,
        )
    elif isinstance(e, Call.RecordingAttached):
        row["recording_urls"] = [*row["recording_urls"], e.recording_url]


def _erase(calls: BatchRows, org: UUID, lead_id: UUID, position: int) -> None:
    """The lead's numbers in its calls so far read as erased (a rebuild reads them so)."""
    for row in list(calls.rows.values()):
        if row["organization_id"] == org and row["lead_id"] == lead_id:
            row.update(from_number=ERASED, to_number=ERASED)
            calls.touch(row, position)
