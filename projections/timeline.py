"""Lead timeline: one activity row per lead event, message and call, keyed by log position.

Lead events carry the lead's version; messages and calls belong to other aggregates, so their
rows have no version and find their lead through `rm_timeline_sources`, filled from the
conversations' and calls' Started events (this model's own table: a rebuild needs nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.call import Call
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
from projections.conversations import Key, keys_filter
from projections.leads import LEAD_EVENTS

rm_lead_timeline = sa.Table(
    "rm_lead_timeline",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("version", sa.Integer),  # the lead's version; none for messages and calls
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("activity_type", sa.String(40), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),
    sa.Column("actor_id", sa.String(100), nullable=False),
    sa.Column("data", JSONType, nullable=False),
)

rm_timeline_sources = sa.Table(
    "rm_timeline_sources",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("source_id", sa.Uuid, primary_key=True),  # a conversation or a call
    sa.Column("lead_id", sa.Uuid, nullable=False),
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
SOURCE_ACTIVITY = {
    "Conversation.MessageReceived": ("message_received", "Message received", "conversation_id"),
    "Conversation.MessageSent": ("message_sent", "Message sent", "conversation_id"),
    "Call.Ended": ("call_ended", "Call ended", "call_id"),
    "Call.RecordingAttached": ("call_recording", "Call recording attached", "call_id"),
}
STARTS = frozenset({"Conversation.Started", "Call.Started"})


class TimelineProjector(Projector):
    name = "timeline"
    tables = (rm_lead_timeline, rm_timeline_sources)
    handles = frozenset(LEAD_EVENTS | SOURCE_ACTIVITY.keys() | STARTS)

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        leads = self._known_sources(conn, batch)
        sources: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for env in batch:
            e = env.event
            if env.type_name in ACTIVITY:
                kind, title = ACTIVITY[env.type_name]
                rows.append(self._row(env, e.originator_id, kind, title, e.originator_version))
            elif env.type_name in STARTS:
                key = (e.organization_id, e.originator_id)
                if key not in leads:
                    leads[key] = e.lead_id
                    sources.append(
                        {"organization_id": key[0], "source_id": key[1], "lead_id": e.lead_id}
                    )
                if isinstance(e, Call.Started):
                    rows.append(self._call_started(env, e))
            elif (lead := leads.get((e.organization_id, e.originator_id))) is not None:
                kind, title, id_name = SOURCE_ACTIVITY[env.type_name]
                rows.append(self._row(env, lead, kind, title, None, {id_name: e.originator_id}))
        bulk_insert(conn, rm_timeline_sources, sources)
        bulk_insert(conn, rm_lead_timeline, rows)

    @staticmethod
    def _known_sources(conn: Connection, batch: Sequence[Envelope]) -> dict[Key, UUID]:
        """The leads of the conversations and calls this batch continues (started before it)."""
        wanted = {
            (env.event.organization_id, env.event.originator_id)
            for env in batch
            if env.type_name in SOURCE_ACTIVITY
        }
        found: dict[Key, UUID] = {}
        ordered = sorted(wanted)
        c = rm_timeline_sources.c
        for i in range(0, len(ordered), 500):
            where = keys_filter(conn, c.organization_id, c.source_id, ordered[i : i + 500])
            for org, source, lead in conn.execute(sa.select(rm_timeline_sources).where(*where)):
                found[(org, source)] = lead
        return found

    def _call_started(self, env: Envelope, e: Call.Started) -> dict[str, Any]:
        if e.direction == "outbound":
            kind, title = "call_placed", "Call placed"
        else:
            kind, title = "call_received", "Call received"
        return self._row(env, e.lead_id, kind, title, None, {"call_id": e.originator_id})

    @staticmethod
    def _row(
        env: Envelope,
        lead_id: UUID,
        kind: str,
        title: str,
        version: int | None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        e = env.event
        return {
            "organization_id": e.organization_id,
            "lead_id": lead_id,
            "position": env.position,
            "version": version,
            "activity_type": kind,
            "title": title,
            "occurred_at": e.timestamp,
            "actor_kind": e.actor.kind,
            "actor_id": e.actor.id,
            "data": jsonable((extra or {}) | event_data(e)),
        }
