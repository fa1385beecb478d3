"""Analytics projector: events → facts and narrow daily roll-ups in the organization's time zone.

Batch-friendly like the leads projector: the state rows a batch touches are loaded once, changed
in memory in log order, and written with one statement per table (COPY for facts and state rows
on PostgreSQL); each roll-up gets one upsert of the batch's summed deltas (one `unnest` statement
on PostgreSQL). Nothing recomputes an organization, except a time-zone change, which recomputes
that organization's fact days and re-derives its roll-ups from its facts.

A lead's closing (its won or lost fact) stands only while it is the lead's latest: a reopen, or a
later win or loss, retracts it — dropped from the batch if it is still pending there, else
subtracted from the roll-ups and deleted from the facts when the batch is flushed (the lead's
state row keeps the position of its current closing). Closing figures therefore count each
lead's current closing once, in the period it happened; flow facts (moves…) stay event counts.

Facts, one per counted thing (see README "Analytics" for the questions they answer):
created, assigned, moved (from stage → to stage, the seconds spent in the one left), note, won
(value, capture → win seconds) and lost (a lead's current closing only), message_in,
message_out, first_response (seconds waited), call, call_answered, call_ended (outcome, talk
seconds).
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
    ROLLUP_TABLES,
    ROLLUPS,
    epoch_us,
    local_day,
    response_bin,
    rm_analytics_facts,
    rm_analytics_leads,
    rm_analytics_orgs,
    rm_analytics_responses,
    rm_analytics_stage_totals,
    rm_analytics_threads,
)
from projections.base import Envelope, Projector, cents, copy_rows

Key = tuple[UUID, UUID]
CLOSINGS = ("won", "lost")
LEAD = ("Captured", "DetailsChanged", "MovedToStage", "Assigned", "NoteAdded", "Won", "Lost")
HANDLES = frozenset(
    [f"Lead.{n}" for n in (*LEAD, "Reopened", "Archived")]
    + ["Organization.Registered", "Organization.TimezoneChanged"]
    + [f"Conversation.{n}" for n in ("Started", "MessageReceived", "MessageSent")]
    + [f"Call.{n}" for n in ("Started", "Progressed", "Ended")]
)
_BLANK = {d: (NIL if d.endswith("_id") else "") for d in DIMENSIONS}


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
    """Rows of one state table, keyed (organization, id), kept in memory between batches.

    The projector forgets them whenever the table may have changed behind its back (a batch
    that did not commit, another runner's batch); only rows changed by a batch are written.
    """

    def __init__(self, table: sa.Table, id_column: str) -> None:
        self.table, self.id_column = table, id_column
        self.names = [c.name for c in table.columns]
        self.rows: dict[Key, dict[str, Any]] = {}
        self.stored: set[Key] = set()  # rows known to exist in the table
        self.dirty: set[Key] = set()

    def forget(self) -> None:
        self.rows.clear()
        self.stored.clear()
        self.dirty.clear()

    def trim(self, limit: int) -> None:
        """Keep at most `limit` rows in memory (the most recently loaded)."""
        if len(self.rows) > limit:
            for key in list(self.rows)[: len(self.rows) - limit // 2]:
                del self.rows[key]
                self.stored.discard(key)

    def load(self, conn: Connection, keys: Iterable[Key]) -> None:
        missing = sorted(k for k in set(keys) if k not in self.rows)  # not `- keys()`: O(cache)
        for i in range(0, len(missing), 500):
            for r in conn.execute(
                sa.select(self.table).where(*self._filter(conn, missing[i : i + 500]))
            ):
                row = dict(r._mapping)
                key = (row["organization_id"], row[self.id_column])
                self.rows[key] = row
                self.stored.add(key)

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
        replaced = sorted(self.dirty & self.stored)
        for i in range(0, len(replaced), 500):
            conn.execute(self.table.delete().where(*self._filter(conn, replaced[i : i + 500])))
        keys = sorted(self.dirty)
        copy_rows(conn, self.table, [tuple(self.rows[k][n] for n in self.names) for k in keys])
        self.stored |= self.dirty
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
    """Feeds every analytics table; see `projections.analytics_tables` for their shapes.

    Lead and conversation/call state rows stay in memory between batches (at most
    `cached_rows` of each, the most recently read), as long as every batch since they were read
    committed here. The bound also bounds the pause of a full garbage collection in a process
    that serves HTTP beside its projectors.
    """

    name = "analytics"
    tables = ANALYTICS_TABLES
    handles = HANDLES

    def __init__(self, cached_rows: int = 50_000) -> None:
        self.leads = _Rows(rm_analytics_leads, "lead_id")
        self.threads = _Rows(rm_analytics_threads, "thread_id")
        self.cached_rows = cached_rows
        self.end: int | None = None  # the position after the last batch committed here

    def starting(self, start: int) -> None:
        if start != self.end:  # someone else moved the tables meanwhile
            self.discarded()

    def committed(self, last: int) -> None:
        self.end = last
        self.leads.trim(self.cached_rows)
        self.threads.trim(self.cached_rows)

    def discarded(self) -> None:
        self.end = None
        self.leads.forget()
        self.threads.forget()

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        _Batch(conn, batch, self.leads, self.threads).run()


class _Batch:
    """One batch in memory: state rows loaded once, facts and roll-up deltas collected in order."""

    def __init__(
        self, conn: Connection, batch: Sequence[Envelope], leads: _Rows, threads: _Rows
    ) -> None:
        self.conn, self.batch = conn, batch
        self.leads, self.threads = leads, threads
        self.zones: dict[UUID, str] = {}
        self.new_zones: dict[UUID, str] = {}
        #: facts not yet written, by (position, seq): a retracted closing is simply dropped
        self.facts: dict[tuple[int, int], tuple[Any, ...]] = {}
        #: written closings (organization, position) to subtract from the roll-ups and delete
        self.retracted: list[tuple[UUID, int]] = []
        self.stages: dict[tuple[UUID, UUID], list[int]] = defaultdict(lambda: [0, 0, 0])
        self.position = self.seq = 0

    def run(self) -> None:
        self._load()
        for env in self.batch:
            e = env.event
            self.position, self.seq = env.position, 0
            if isinstance(e, Organization.TimezoneChanged):
                _flush(self)
                _rebucket(self.conn, e.organization_id, e.timezone)
                self.zones[e.organization_id] = e.timezone
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
        """Record one fact (the roll-ups are summed from the batch's facts when it is flushed)."""
        value, seconds = dims.pop("value_cents", 0), dims.pop("seconds", 0)
        values = tuple(dims[d] if d in dims else _BLANK[d] for d in DIMENSIONS)
        us = epoch_us(e.timestamp)
        org = e.organization_id
        day = local_day(us, self.zones.get(org, DEFAULT_TIMEZONE))
        where = (org, self.position, self.seq, kind, day, day.replace(day=1), us, subject)
        score = response_bin(seconds) if kind == "first_response" else -1
        self.facts[(self.position, self.seq)] = (*where, *values, 1, value, seconds, score)
        self.seq += 1

    def close(self, e: Any, lead: dict[str, Any], status: str, us: int) -> None:
        """Make this Won/Lost event the lead's one closing (its fact is the event's first)."""
        self.retract(lead)
        dims = {"source": lead["source"], "member_id": lead["assignee_id"], "stage_id": e.stage_id}
        if status == "won":
            cycle = whole_seconds(lead["captured_us"], us)
            self.fact(e, "won", lead["lead_id"], value_cents=cents(e.value), seconds=cycle, **dims)
        else:
            self.fact(e, "lost", lead["lead_id"], **dims)
        lead.update(status=status, closed_us=us, closing_position=self.position)

    def retract(self, lead: dict[str, Any]) -> None:
        """Take back the lead's current closing, if any, wherever it was counted."""
        position = lead["closing_position"]
        if position is not None and self.facts.pop((position, 0), None) is None:
            self.retracted.append((lead["organization_id"], position))
        lead.update(status="open", closed_us=None, closing_position=None)

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
                "closing_position": None,
                "status": "open",
                "value_cents": cents(e.estimated_value),
                "source": e.source or "",
                "assignee_id": e.assignee_id or NIL,
                "archived": False,
            }
            self.leads.put(row)
            self.count_in_stage(row, +1)
            dims = {"source": row["source"], "member_id": row["assignee_id"]}
            self.fact(e, "created", e.originator_id, stage_id=e.stage_id, **dims)
            if e.assignee_id is not None:
                self.fact(e, "assigned", e.originator_id, member_id=e.assignee_id)
            return
        lead = self.leads.get(org, e.originator_id)
        if lead is None:  # defensive: a lead whose capture this model never saw
            return
        before = dict(lead)
        _apply_to_lead(self, e, lead, us)
        if lead != before:
            self.count_in_stage(before, -1)
            self.count_in_stage(lead, +1)
        self.leads.changed(lead, before)

    def count_in_stage(self, lead: dict[str, Any], sign: int) -> None:
        """Add (or take away) an unarchived lead from its stage's totals."""
        if not lead["archived"]:
            totals = self.stages[(lead["organization_id"], lead["stage_id"])]
            totals[0] += sign
            totals[1] += sign * lead["value_cents"]
            totals[2] += sign * (lead["stage_entered_us"] // 1_000_000)


def _apply_to_lead(b: _Batch, e: Any, lead: dict[str, Any], us: int) -> None:
    subject = lead["lead_id"]
    if isinstance(e, Lead.DetailsChanged):
        if "source" in e.changes:
            lead["source"] = e.changes["source"] or ""
        if "estimated_value" in e.changes:
            lead["value_cents"] = cents(e.changes["estimated_value"])
    elif isinstance(e, Lead.MovedToStage):
        b.fact(
            e,
            "moved",
            subject,
            stage_id=e.from_stage_id,
            to_stage_id=e.to_stage_id,
            member_id=member_of(e.actor),
            seconds=whole_seconds(lead["stage_entered_us"], us),
        )
        lead.update(stage_id=e.to_stage_id, stage_entered_us=us)
    elif isinstance(e, Lead.Assigned):
        lead["assignee_id"] = e.to_user_id or NIL
        if e.to_user_id is not None:
            b.fact(e, "assigned", subject, member_id=e.to_user_id)
    elif isinstance(e, Lead.NoteAdded):
        b.fact(e, "note", subject, member_id=member_of(e.actor))
    elif isinstance(e, Lead.Won):
        b.close(e, lead, "won", us)
    elif isinstance(e, Lead.Lost):  # also straight from a won stage, without a reopen
        b.close(e, lead, "lost", us)
    elif isinstance(e, Lead.Reopened):
        b.retract(lead)
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
    b.leads.flush(conn)
    b.threads.flush(conn)
    _add_stage_totals(conn, b.stages)
    b.stages.clear()
    _retract(conn, b.retracted)
    b.retracted = []
    if not b.facts:
        return
    facts = list(b.facts.values())
    copy_rows(conn, rm_analytics_facts, facts)
    f = rm_analytics_facts.c
    orgs = sorted({fact[0] for fact in facts})
    batch = sa.and_(f.organization_id.in_(orgs), f.position.between(facts[0][1], facts[-1][1]))
    for name in ROLLUPS:
        _add_facts(conn, name, batch)
    _add_responses(conn, batch)
    b.facts = {}


def _retract(conn: Connection, closings: list[tuple[UUID, int]]) -> None:
    """Subtract written closing facts from every roll-up, delete them, and drop the roll-up rows
    left counting nothing (a rebuild that never wrote them has no such row either)."""
    if not closings:
        return
    f = rm_analytics_facts.c
    keys = sorted(closings, key=lambda k: (str(k[0]), k[1]))
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        orgs, where = sorted({k[0] for k in chunk}), [k[1] for k in chunk]
        if conn.dialect.name == "postgresql":
            array = postgresql.ARRAY(sa.BigInteger)
            at = f.position == sa.any_(sa.bindparam("positions", where, type_=array))
        else:
            at = f.position.in_(where)
        # positions are global: "org in (…) and position in (…)" is exactly these closings
        chosen = sa.and_(f.organization_id.in_(orgs), at, f.kind.in_(CLOSINGS))
        for name in ROLLUPS:
            _add_facts(conn, name, chosen, sign=-1)
        conn.execute(rm_analytics_facts.delete().where(chosen))
        for table in ROLLUP_TABLES.values():
            t = table.c
            emptied = sa.and_(t.organization_id.in_(orgs), t.kind.in_(CLOSINGS), t.count == 0)
            conn.execute(table.delete().where(emptied))


def _add_stage_totals(conn: Connection, deltas: dict[tuple[UUID, UUID], list[int]]) -> None:
    rows = [
        {
            "organization_id": org,
            "stage_id": stage,
            "count": n,
            "value_cents": v,
            "entered_seconds": e,
        }
        for (org, stage), (n, v, e) in deltas.items()
        if (n, v, e) != (0, 0, 0)
    ]
    if not rows:
        return
    table = rm_analytics_stage_totals
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    sums = ("count", "value_cents", "entered_seconds")
    stmt = insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={m: table.c[m] + insert.excluded[m] for m in sums},
    )
    conn.execute(stmt, rows)
    # an emptied stage has no row, however the batches fell (rebuilds stay identical)
    orgs = sorted({r["organization_id"] for r in rows}, key=str)
    conn.execute(table.delete().where(table.c.organization_id.in_(orgs), table.c.count == 0))


def _add_facts(conn: Connection, rollup: str, facts: sa.ColumnElement[bool], sign: int = 1) -> None:
    """Add (or, `sign` -1, subtract) the sums of the chosen facts to a roll-up's day and month
    rows."""
    f = rm_analytics_facts.c
    sums: dict[str, Any] = {
        "count": sa.func.count(),
        "value_cents": sa.func.sum(f.value_cents),
        "seconds": sa.func.sum(f.seconds),
    }
    if sign < 0:
        sums = {m: -total for m, total in sums.items()}
    _add_grouped(conn, ROLLUP_TABLES[rollup], ["kind", *ROLLUPS[rollup]], sums, facts)


def _add_responses(conn: Connection, facts: sa.ColumnElement[bool]) -> None:
    f = rm_analytics_facts.c
    # by bin, not by kind: a planner matching the partial indexes on first responses would scan
    # all of an organization's responses instead of the batch's position range
    chosen = sa.and_(facts, f.bin >= 0)
    _add_grouped(
        conn, rm_analytics_responses, ["member_id", "bin"], {"count": sa.func.count()}, chosen
    )


def _add_grouped(
    conn: Connection,
    table: sa.Table,
    keys: list[str],
    sums: dict[str, Any],
    facts: sa.ColumnElement[bool],
) -> None:
    """Upsert the chosen facts, grouped by `keys` per day and per month, into `table`
    (organization, `keys`' first one if it is the kind, grain, day, the other keys, sums)."""
    f = rm_analytics_facts.c
    grains = []
    for grain, column in (("day", f.day), ("month", f.month)):
        columns: dict[str, Any] = {"organization_id": f.organization_id}
        columns |= {k: f[k] for k in keys} | {"grain": sa.literal(grain), "day": column}
        names = [c.name for c in table.columns if c.name not in sums]
        grains.append(
            sa.select(*[columns[n] for n in names], *sums.values())
            .where(facts)
            .group_by(f.organization_id, column, *[f[k] for k in keys])
        )
    # a subquery with a WHERE: SQLite would read ON CONFLICT as a join constraint otherwise
    both = sa.select(sa.union_all(*grains).subquery()).where(sa.true())
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    stmt = insert.from_select([*names, *sums], both).on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={m: table.c[m] + insert.excluded[m] for m in sums},
    )
    conn.execute(stmt)


def _rebucket(conn: Connection, org: UUID, timezone: str) -> None:
    """Move one organization to a new time zone: new fact days, roll-ups re-derived from them."""
    conn.execute(
        rm_analytics_orgs.update()
        .where(rm_analytics_orgs.c.organization_id == org)
        .values(timezone=timezone)
    )
    f = rm_analytics_facts.c
    moved = []
    for r in conn.execute(
        sa.select(f.position, f.seq, f.occurred_us, f.day).where(f.organization_id == org)
    ):
        day = local_day(r.occurred_us, timezone)
        if day != r.day:
            moved.append({"o": org, "p": r.position, "s": r.seq, "d": day, "m": day.replace(day=1)})
    if moved:
        conn.execute(
            rm_analytics_facts.update()
            .where(
                f.organization_id == sa.bindparam("o"),
                f.position == sa.bindparam("p"),
                f.seq == sa.bindparam("s"),
            )
            .values(day=sa.bindparam("d"), month=sa.bindparam("m")),
            moved,
        )
    for name, table in ROLLUP_TABLES.items():
        conn.execute(table.delete().where(table.c.organization_id == org))
        _add_facts(conn, name, f.organization_id == org)
    responses = rm_analytics_responses
    conn.execute(responses.delete().where(responses.c.organization_id == org))
    _add_responses(conn, f.organization_id == org)
