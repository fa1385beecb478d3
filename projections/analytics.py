"""Analytics projector: events → facts, daily roll-ups in the organization's time zone, lead state.

Batch-friendly like the leads projector: the rows a batch touches are loaded once, changed in
memory in log order, and written with one statement per kind (COPY on PostgreSQL); daily rows
are upserted with the batch's summed deltas. Nothing recomputes an organization, except a
time-zone change, which re-derives that organization's daily rows from its facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from domain.call import Call
from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import DEFAULT_TIMEZONE, Organization
from domain.values import Actor
from projections.analytics_tables import (
    ANALYTICS_TABLES,
    DIMENSIONS,
    NIL,
    epoch_us,
    local_day,
    rm_analytics_daily,
    rm_analytics_facts,
    rm_analytics_leads,
    rm_analytics_orgs,
    rm_analytics_threads,
)
from projections.base import Envelope, Projector, bulk_insert, cents

Key = tuple[UUID, UUID]
LEAD = ("Captured", "DetailsChanged", "MovedToStage", "Assigned", "NoteAdded", "Won", "Lost")
HANDLES = frozenset(
    [f"Lead.{n}" for n in (*LEAD, "Reopened", "Archived")]
    + ["Organization.Registered", "Organization.TimezoneChanged"]
    + [f"Conversation.{n}" for n in ("Started", "MessageReceived", "MessageSent")]
    + [f"Call.{n}" for n in ("Started", "Progressed", "Ended")]
)


def member_of(actor: Actor) -> UUID:
    """The user behind an action, or the nil id for keys, providers and the system."""
    if actor.kind != "user":
        return NIL
    try:
        return UUID(actor.id)
    except ValueError:
        return NIL


def whole_seconds(start_us: int, end_us: int) -> int:
    return max(0, end_us - start_us) // 1_000_000


class _Rows:
    """Rows of one state table touched by a batch, keyed (organization, id)."""

    def __init__(self, table: sa.Table, id_column: str) -> None:
        self.table, self.id_column = table, id_column
        self.rows: dict[Key, dict[str, Any]] = {}
        self.dirty: set[Key] = set()

    def load(self, conn: Connection, keys: Iterable[Key]) -> None:
        ordered = sorted(set(keys))
        for i in range(0, len(ordered), 500):
            for r in conn.execute(
                sa.select(self.table).where(*self._filter(conn, ordered[i : i + 500]))
            ):
                row = dict(r._mapping)
                self.rows[(row["organization_id"], row[self.id_column])] = row

    def put(self, row: dict[str, Any]) -> None:
        key = (row["organization_id"], row[self.id_column])
        self.rows[key] = row
        self.dirty.add(key)

    def get(self, org: UUID, id: UUID) -> dict[str, Any] | None:
        return self.rows.get((org, id))

    def changed(self, row: dict[str, Any], before: dict[str, Any]) -> None:
        if row != before:
            self.dirty.add((row["organization_id"], row[self.id_column]))

    def flush(self, conn: Connection) -> None:
        keys = sorted(self.dirty)
        for i in range(0, len(keys), 500):
            conn.execute(self.table.delete().where(*self._filter(conn, keys[i : i + 500])))
        bulk_insert(conn, self.table, [self.rows[k] for k in keys])
        self.dirty.clear()

    def _filter(self, conn: Connection, keys: Sequence[Key]) -> list[sa.ColumnElement[bool]]:
        # ids are globally unique: "org in (…) and id in (…)" is exactly these rows; PostgreSQL
        # gets two arrays (one statement shape, no long IN list to parse and plan each time)
        c = self.table.c
        orgs = sorted({k[0] for k in keys})
        ids = [k[1] for k in keys]
        if conn.dialect.name == "postgresql":
            uuids = postgresql.ARRAY(sa.Uuid)
            return [
                c.organization_id == sa.any_(sa.bindparam("orgs", orgs, type_=uuids)),
                c[self.id_column] == sa.any_(sa.bindparam("ids", ids, type_=uuids)),
            ]
        return [c.organization_id.in_(orgs), c[self.id_column].in_(ids)]


class AnalyticsProjector(Projector):
    """Feeds every analytics table; see `projections.analytics_tables` for their shapes."""

    name = "analytics"
    tables = ANALYTICS_TABLES
    handles = HANDLES

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        _Batch(conn, batch).run()


class _Batch:
    """One batch in memory: state rows loaded once, facts and daily deltas collected in order."""

    def __init__(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        self.conn, self.batch = conn, batch
        self.leads = _Rows(rm_analytics_leads, "lead_id")
        self.threads = _Rows(rm_analytics_threads, "thread_id")
        self.zones: dict[UUID, str] = {}
        self.new_zones: dict[UUID, str] = {}
        self.facts: list[dict[str, Any]] = []
        self.daily: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])

    def run(self) -> None:
        self._load()
        for env in self.batch:
            e = env.event
            self.position, self.seq = env.position, 0
            if isinstance(e, Organization.TimezoneChanged):
                _flush(self)
                _rebucket(self, e.organization_id, e.timezone)
            elif isinstance(e, Organization.Registered):
                self.zones[e.organization_id] = DEFAULT_TIMEZONE
                self.new_zones[e.organization_id] = DEFAULT_TIMEZONE
            elif env.type_name.startswith("Lead."):
                self._lead(e)
            else:
                _thread_event(self, e)
        _flush(self)

    def _load(self) -> None:
        orgs = sorted({env.event.organization_id for env in self.batch})
        for i in range(0, len(orgs), 500):
            query = sa.select(rm_analytics_orgs).where(
                rm_analytics_orgs.c.organization_id.in_(orgs[i : i + 500])
            )
            self.zones.update({r.organization_id: r.timezone for r in self.conn.execute(query)})
        created = (Lead.Captured, Conversation.Started, Call.Started)
        later: dict[bool, list[Key]] = {True: [], False: []}
        for env in self.batch:
            if not isinstance(env.event, created):
                key = (env.event.organization_id, env.event.originator_id)
                later[env.type_name.startswith("Lead.")].append(key)
        self.leads.load(self.conn, later[True])
        self.threads.load(self.conn, later[False])

    def fact(self, e: Any, kind: str, subject: UUID, **dims: Any) -> None:
        value, seconds = dims.pop("value_cents", 0), dims.pop("seconds", 0)
        row = {d: dims.get(d, NIL if d.endswith("_id") else "") for d in DIMENSIONS}
        us = epoch_us(e.timestamp)
        org = e.organization_id
        self.facts.append(
            {"organization_id": org, "position": self.position, "seq": self.seq, "kind": kind}
            | {"occurred_us": us, "subject_id": subject}
            | row
            | {"count": 1, "value_cents": value, "seconds": seconds}
        )
        self.seq += 1
        day = local_day(us, self.zones.get(org, DEFAULT_TIMEZONE))
        totals = self.daily[(org, day, kind, *row.values())]
        totals[0] += 1
        totals[1] += value
        totals[2] += seconds

    def _lead(self, e: Any) -> None:
        org, us = e.organization_id, epoch_us(e.timestamp)
        if isinstance(e, Lead.Captured):
            row = {
                "organization_id": org,
                "lead_id": e.originator_id,
                "stage_id": e.stage_id,
                "stage_entered_us": us,
                "captured_us": us,
                "closed_us": None,
                "status": "open",
                "value_cents": cents(e.estimated_value),
                "source": e.source or "",
                "assignee_id": e.assignee_id or NIL,
                "archived": False,
            }
            self.leads.put(row)
            dims = {"source": row["source"], "member_id": row["assignee_id"]}
            self.fact(e, "created", e.originator_id, stage_id=e.stage_id, **dims)
            self.fact(e, "entered", e.originator_id, stage_id=e.stage_id, **dims)
            if e.assignee_id is not None:
                self.fact(e, "assigned", e.originator_id, member_id=e.assignee_id)
            return
        lead = self.leads.get(org, e.originator_id)
        if lead is None:  # defensive: a lead whose capture this model never saw
            return
        before = dict(lead)
        _apply_to_lead(self, e, lead, us)
        self.leads.changed(lead, before)


def _apply_to_lead(b: _Batch, e: Any, lead: dict[str, Any], us: int) -> None:
    dims = {"source": lead["source"], "member_id": lead["assignee_id"]}
    subject = lead["lead_id"]
    if isinstance(e, Lead.DetailsChanged):
        if "source" in e.changes:
            lead["source"] = e.changes["source"] or ""
        if "estimated_value" in e.changes:
            lead["value_cents"] = cents(e.changes["estimated_value"])
    elif isinstance(e, Lead.MovedToStage):
        spent = whole_seconds(lead["stage_entered_us"], us)
        b.fact(e, "exited", subject, stage_id=e.from_stage_id, seconds=spent, **dims)
        b.fact(
            e,
            "moved",
            subject,
            stage_id=e.from_stage_id,
            to_stage_id=e.to_stage_id,
            member_id=member_of(e.actor),
        )
        b.fact(e, "entered", subject, stage_id=e.to_stage_id, **dims)
        lead.update(stage_id=e.to_stage_id, stage_entered_us=us)
    elif isinstance(e, Lead.Assigned):
        lead["assignee_id"] = e.to_user_id or NIL
        if e.to_user_id is not None:
            b.fact(e, "assigned", subject, member_id=e.to_user_id)
    elif isinstance(e, Lead.NoteAdded):
        b.fact(e, "note", subject, member_id=member_of(e.actor))
    elif isinstance(e, Lead.Won):
        cycle = whole_seconds(lead["captured_us"], us)
        value = cents(e.value)
        b.fact(e, "won", subject, stage_id=e.stage_id, value_cents=value, seconds=cycle, **dims)
        lead.update(status="won", closed_us=us)
    elif isinstance(e, Lead.Lost):
        b.fact(e, "lost", subject, stage_id=e.stage_id, **dims)
        lead.update(status="lost", closed_us=us)
    elif isinstance(e, Lead.Reopened):
        lead.update(status="open", closed_us=None)
    elif isinstance(e, Lead.Archived):
        lead["archived"] = True


def _thread_event(b: _Batch, e: Any) -> None:
    org, us = e.organization_id, epoch_us(e.timestamp)
    if isinstance(e, Conversation.Started):
        b.threads.put(_thread_row(org, e.originator_id, e.channel, "", NIL))
        return
    if isinstance(e, Call.Started):
        member = member_of(e.actor) if e.direction == "outbound" else NIL
        row = _thread_row(org, e.originator_id, e.direction, e.provider_type, member)
        b.threads.put(row)
        b.fact(e, "call", e.originator_id, **_call_dims(row))
        return
    t = b.threads.get(org, e.originator_id)
    if t is None:
        return
    before = dict(t)
    _apply_to_thread(b, e, t, us)
    b.threads.changed(t, before)


def _apply_to_thread(b: _Batch, e: Any, t: dict[str, Any], us: int) -> None:
    if isinstance(e, Conversation.MessageReceived):
        dims = {"channel": t["channel"], "provider": e.provider_type}
        b.fact(e, "message_in", e.originator_id, **dims)
        if t["waiting_since_us"] is None:
            t["waiting_since_us"] = us
    elif isinstance(e, Conversation.MessageSent):
        dims = {
            "channel": t["channel"],
            "provider": e.provider_type,
            "member_id": member_of(e.actor),
        }
        b.fact(e, "message_out", e.originator_id, **dims)
        if t["waiting_since_us"] is not None:
            spent = whole_seconds(t["waiting_since_us"], us)
            b.fact(e, "first_response", e.originator_id, seconds=spent, **dims)
            t["waiting_since_us"] = None
    elif isinstance(e, Call.Progressed) and e.status == "answered":
        b.fact(e, "call_answered", e.originator_id, **_call_dims(t))
    elif isinstance(e, Call.Ended):
        dims = _call_dims(t) | {"outcome": e.outcome, "seconds": e.duration_seconds}
        b.fact(e, "call_ended", e.originator_id, **dims)


def _call_dims(t: dict[str, Any]) -> dict[str, Any]:
    return {"channel": t["channel"], "provider": t["provider"], "member_id": t["member_id"]}


def _thread_row(org: UUID, id: UUID, channel: str, provider: str, member: UUID) -> dict[str, Any]:
    return {
        "organization_id": org,
        "thread_id": id,
        "channel": channel,
        "provider": provider,
        "member_id": member,
        "waiting_since_us": None,
    }


def _flush(b: _Batch) -> None:
    conn = b.conn
    if b.new_zones:
        conn.execute(
            rm_analytics_orgs.insert(),
            [{"organization_id": o, "timezone": z} for o, z in b.new_zones.items()],
        )
        b.new_zones.clear()
    bulk_insert(conn, rm_analytics_facts, b.facts)
    b.facts = []
    b.leads.flush(conn)
    b.threads.flush(conn)
    _add_daily(conn, b.daily)
    b.daily.clear()


def _add_daily(conn: Connection, daily: dict[tuple[Any, ...], list[int]]) -> None:
    if not daily:
        return
    names = ["organization_id", "day", "kind", *DIMENSIONS]
    rows = [
        dict(zip(names, key, strict=True)) | {"count": t[0], "value_cents": t[1], "seconds": t[2]}
        for key, t in daily.items()
    ]
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        rm_analytics_daily
    )
    c = rm_analytics_daily.c
    stmt = insert.on_conflict_do_update(
        index_elements=[c[n] for n in names],
        set_={m: c[m] + insert.excluded[m] for m in ("count", "value_cents", "seconds")},
    )
    conn.execute(stmt, rows)


def _rebucket(b: _Batch, org: UUID, timezone: str) -> None:
    """Re-derive one organization's daily rows in its new time zone from its facts."""
    conn = b.conn
    conn.execute(
        rm_analytics_orgs.update()
        .where(rm_analytics_orgs.c.organization_id == org)
        .values(timezone=timezone)
    )
    b.zones[org] = timezone
    conn.execute(rm_analytics_daily.delete().where(rm_analytics_daily.c.organization_id == org))
    f = rm_analytics_facts.c
    query = sa.select(f.occurred_us, f.kind, *[f[d] for d in DIMENSIONS], f.value_cents, f.seconds)
    daily: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in conn.execute(query.where(f.organization_id == org)):
        totals = daily[(org, local_day(r[0], timezone), *r[1:-2])]
        totals[0] += 1
        totals[1] += r[-2]
        totals[2] += r[-1]
    _add_daily(conn, daily)
