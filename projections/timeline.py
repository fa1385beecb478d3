"""Lead timeline: one activity row per lead event, message and call, keyed by log position.

Lead events carry the lead's version; messages and calls belong to other aggregates, so their
rows have no version and find their lead through `rm_timeline_sources`, filled from the
conversations' and calls' Started events (this model's own table: a rebuild needs nothing else)
and moved to the new lead by `Conversation.Resumed`.

Tasks about a lead show on its timeline too: `Task.Created` (and an edit naming another lead)
records the task's lead in `rm_timeline_sources`, which the task's later events follow.

`Lead.PersonalDataErased` leaves the lead's earlier rows as a rebuild reads them once the lead's
key is gone: each personal value of their events `[erased]` (None stays None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.call import Call
from domain.conversation import Conversation
from domain.lead import Lead
from domain.privacy import PERSONAL_DATA
from domain.task import Task
from projections.audit import erase_paths
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
    "Lead.PersonalDataErased": ("personal_data_erased", "Personal data erased"),
}
#: the title of an assignment made by an assignment rule (actor kind "rule", id the rule's)
ASSIGNED_BY_RULE = "Assigned by an assignment rule"
SOURCE_ACTIVITY = {
    "Conversation.MessageReceived": ("message_received", "Message received", "conversation_id"),
    "Conversation.MessageSent": ("message_sent", "Message sent", "conversation_id"),
    "Conversation.MessageAnalysed": ("message_analysed", "Message analysed", "conversation_id"),
    "Call.Ended": ("call_ended", "Call ended", "call_id"),
    "Call.RecordingAttached": ("call_recording", "Call recording attached", "call_id"),
}
STARTS = frozenset({"Conversation.Started", "Call.Started"})
TASK_ACTIVITY = {
    "Task.Created": ("task_created", "Task created"),
    "Task.Edited": ("task_edited", "Task edited"),
    "Task.Reassigned": ("task_reassigned", "Task reassigned"),
    "Task.Completed": ("task_completed", "Task completed"),
    "Task.Reopened": ("task_reopened", "Task reopened"),
    "Task.Cancelled": ("task_cancelled", "Task cancelled"),
    "Task.CameDue": ("task_came_due", "Task came due"),
}
RESUMED = "Conversation.Resumed"
_EVENT_OF = (
    {kind: name for name, (kind, _) in ACTIVITY.items()}
    | {kind: name for name, (kind, _, _) in SOURCE_ACTIVITY.items()}
    | {"call_placed": "Call.Started", "call_received": "Call.Started"}
)
#: activity type -> where its event's personal values are in the row's `data`
PERSONAL = {k: PERSONAL_DATA[n].paths for k, n in _EVENT_OF.items() if n in PERSONAL_DATA}


class TimelineProjector(Projector):
    name = "timeline"
    tables = (rm_lead_timeline, rm_timeline_sources)
    handles = frozenset(
        LEAD_EVENTS | SOURCE_ACTIVITY.keys() | STARTS | {RESUMED} | TASK_ACTIVITY.keys()
    )

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        leads = self._known_sources(conn, batch)
        sources: dict[Key, dict[str, Any]] = {}
        moved: dict[Key, UUID | None] = {}
        rows: list[dict[str, Any]] = []
        for env in batch:
            e = env.event
            key = (e.organization_id, e.originator_id)
            if isinstance(e, Lead.PersonalDataErased):
                _erase(conn, rows, key, env.position)
            if env.type_name in ACTIVITY:
                kind, title = ACTIVITY[env.type_name]
                if isinstance(e, Lead.Assigned) and e.actor.kind == "rule":
                    title = ASSIGNED_BY_RULE  # the row's actor names the rule
                rows.append(self._row(env, e.originator_id, kind, title, e.originator_version))
            elif env.type_name in STARTS:
                if key not in leads:
                    leads[key] = e.lead_id
                    sources[key] = _source(key, e.lead_id)
                if isinstance(e, Call.Started):
                    rows.append(self._call_started(env, e))
            elif env.type_name in TASK_ACTIVITY:
                self._task_event(env, leads, sources, moved, rows)
            elif isinstance(e, Conversation.Resumed):
                # the thread's next messages are the new lead's; the earlier ones stay put
                if key in leads and key not in sources:
                    moved[key] = e.lead_id
                else:
                    sources[key] = _source(key, e.lead_id)
                leads[key] = e.lead_id
            elif (lead := leads.get(key)) is not None:
                kind, title, id_name = SOURCE_ACTIVITY[env.type_name]
                rows.append(self._row(env, lead, kind, title, None, {id_name: e.originator_id}))
        c = rm_timeline_sources.c
        if gone := [k for k, lead in moved.items() if lead is None]:  # tasks that left a lead
            conn.execute(rm_timeline_sources.delete().where(*keys_filter(conn, *_KEY, gone)))
        bulk_insert(conn, rm_timeline_sources, [r for r in sources.values() if r["lead_id"]])
        if relinked := {k: lead for k, lead in moved.items() if lead is not None}:
            conn.execute(
                rm_timeline_sources.update()
                .where(c.organization_id == sa.bindparam("k_org"))
                .where(c.source_id == sa.bindparam("k_id"))
                .values(lead_id=sa.bindparam("v_lead")),
                [{"k_org": o, "k_id": i, "v_lead": lead} for (o, i), lead in relinked.items()],
            )
        bulk_insert(conn, rm_lead_timeline, rows)

    @staticmethod
    def _known_sources(conn: Connection, batch: Sequence[Envelope]) -> dict[Key, UUID]:
        """The leads of the conversations and calls this batch continues (started before it)."""
        wanted = {
            (env.event.organization_id, env.event.originator_id)
            for env in batch
            if env.type_name in SOURCE_ACTIVITY
            or env.type_name == RESUMED
            or (env.type_name in TASK_ACTIVITY and env.type_name != "Task.Created")
        }
        found: dict[Key, UUID] = {}
        ordered = sorted(wanted)
        c = rm_timeline_sources.c
        for i in range(0, len(ordered), 500):
            where = keys_filter(conn, c.organization_id, c.source_id, ordered[i : i + 500])
            for org, source, lead in conn.execute(sa.select(rm_timeline_sources).where(*where)):
                found[(org, source)] = lead
        return found

    def _task_event(
        self,
        env: Envelope,
        leads: dict[Key, UUID],
        sources: dict[Key, dict[str, Any]],
        moved: dict[Key, UUID | None],
        rows: list[dict[str, Any]],
    ) -> None:
        """A task's event on its lead's timeline; an edit naming another lead (or none) moves
        the task's later events, and shows on the lead it leaves when it leaves for none."""
        e = env.event
        key = (e.organization_id, e.originator_id)
        lead = leads.get(key)
        if isinstance(e, Task.Created):
            lead = e.lead_id
        elif isinstance(e, Task.Edited) and "lead_id" in e.changes:
            new = e.changes["lead_id"]
            if key in sources or lead is None:
                sources[key] = _source(key, new)
            else:
                moved[key] = new
            lead = new or lead
        if isinstance(e, Task.Created) and lead is not None:
            sources[key] = _source(key, lead)
        if lead is not None:
            leads[key] = lead
            kind, title = TASK_ACTIVITY[env.type_name]
            rows.append(self._row(env, lead, kind, title, None, {"task_id": e.originator_id}))
        if isinstance(e, Task.Edited) and e.changes.get("lead_id", lead) is None:
            leads.pop(key, None)

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


_KEY = (rm_timeline_sources.c.organization_id, rm_timeline_sources.c.source_id)


def _source(key: Key, lead_id: UUID | None) -> dict[str, Any]:
    return {"organization_id": key[0], "source_id": key[1], "lead_id": lead_id}


def _erase(conn: Connection, pending: list[dict[str, Any]], lead: Key, position: int) -> None:
    """The lead's rows before `position` as a rebuild reads them once the lead's key is gone:
    those of this batch (not written yet) and those written before it."""
    org, lead_id = lead
    for row in pending:
        if (row["organization_id"], row["lead_id"]) == lead and row["activity_type"] in PERSONAL:
            row["data"] = erase_paths(row["data"], PERSONAL[row["activity_type"]])
    t = rm_lead_timeline.c
    query = sa.select(t.position, t.activity_type, t.data).where(
        t.organization_id == org,
        t.lead_id == lead_id,
        t.position < position,
        t.activity_type.in_(sorted(PERSONAL)),
    )
    params = []
    for found in conn.execute(query).mappings():
        data = erase_paths(found["data"], PERSONAL[found["activity_type"]])
        if data != found["data"]:
            params.append({"k_org": org, "k_lead": lead_id, "k_pos": found["position"]})
            params[-1]["v_data"] = data
    if params:
        conn.execute(
            rm_lead_timeline.update()
            .where(t.organization_id == sa.bindparam("k_org"))
            .where(t.lead_id == sa.bindparam("k_lead"))
            .where(t.position == sa.bindparam("k_pos"))
            .values(data=sa.bindparam("v_data")),
            params,
        )
