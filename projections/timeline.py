"""Lead timeline: one activity row per lead event, keyed by the lead's version (no duplicates)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from projections.base import (
    Envelope,
    JSONType,
    Projector,
    UtcDateTime,
    bulk_insert,
    event_data,
    jsonable,
    metadata,
)
from projections.leads import LEAD_EVENTS

rm_lead_timeline = sa.Table(
    "rm_lead_timeline",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("activity_type", sa.String(40), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(100), nullable=False),
    sa.Column("data", JSONType, nullable=False),
)

ACTIVITY = {
    "Lead.Captured": ("captured", "Lead captured"),
    "Lead.DetailsChanged": ("details_changed", "Details changed"),
    "Lead.MovedToStage": ("stage_changed", "Moved to another stage"),
    "Lead.Assigned": ("assigned", "Assignee changed"),
    "Lead.NoteAdded": ("note", "Note added"),
    "Lead.Won": ("won", "Lead won"),
    "Lead.Lost": ("lost", "Lead lost"),
    "Lead.Reopened": ("reopened", "Lead reopened"),
    "Lead.Archived": ("archived", "Lead archived"),
}


class TimelineProjector(Projector):
    name = "timeline"
    tables = (rm_lead_timeline,)
    handles = frozenset(LEAD_EVENTS)

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        rows = [self._row(env) for env in batch if env.type_name in ACTIVITY]
        bulk_insert(conn, rm_lead_timeline, rows)

    @staticmethod
    def _row(env: Envelope) -> dict[str, Any]:
        e = env.event
        kind, title = ACTIVITY[env.type_name]
        return {
            "organization_id": e.organization_id,
            "lead_id": e.originator_id,
            "version": e.originator_version,
            "position": env.position,
            "activity_type": kind,
            "title": title,
            "occurred_at": e.timestamp,
            "actor_kind": e.actor.kind,
            "actor_id": e.actor.id,
            "data": jsonable(event_data(e)),
        }
