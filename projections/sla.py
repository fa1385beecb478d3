"""Response SLA read model: each conversation's response clock and the figures it leaves.

A conversation waits for a reply from its first unanswered inbound message until the next
outbound one (the aggregate's `awaiting_reply_to`, mirrored here event by event). When a wait
begins, its deadline is computed from the organization's first-response SLA and business hours
**as the log stood at that message**: the projector follows `WorkSettings` and the
organization's time zone itself, so a rebuild computes the very same deadlines. A later change of
the SLA or the hours (or turning it off) applies to waits that begin after it; open clocks keep
the deadline they were given (the promise in force when the contact wrote).

A wait is closed by the next outbound message (counted `in_time` at or before the deadline,
`late` after it) or by the recorded `ResponseSlaBreached` (`breached`; a reply after it counts
nothing more). A wait that began while the SLA was off, or whose contact was erased, is
`untimed`: it is tracked (a second inbound message must not start a new wait) but never due.
Closing a conversation does not stop its clock: the contact is still unanswered.

Figures, per organization, local day (the organization's time zone) and member: first
responses in time, and breaches — recorded breaches plus replies sent after the deadline before
a breach was recorded (a timer outage must not improve compliance). The member is the lead's
assignee at that moment: at the reply for in-time and late replies (this model follows
`Lead.Captured`/`Lead.Assigned` itself), the breach event's `assignee_id` for a breach. A reply
counts on the day it was sent, a breach on the day of its deadline. A time-zone change re-derives
the organization's days, as the analytics model does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from domain.business_hours import BusinessHours
from domain.conversation import Conversation
from domain.errors import InvalidValueError
from domain.lead import Lead
from domain.organization import DEFAULT_TIMEZONE, Organization
from domain.work_settings import WorkSettings
from projections.analytics_tables import NIL, epoch_us, local_day
from projections.base import Envelope, JSONType, Projector, UtcDateTime, metadata

#: clock states: nothing awaited; awaited with a deadline; past it and recorded; awaited, no SLA
IDLE, OPEN, BREACHED, UNTIMED = "idle", "open", "breached", "untimed"
#: outcomes of a timed wait
IN_TIME, LATE, BREACH = "in_time", "late", "breached"

#: what the projector knows of each organization: its time zone, hours and SLA as of now
rm_sla_orgs = sa.Table(
    "rm_sla_orgs",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("hours", JSONType),  # {timezone, weekly, holidays}; NULL: the default week
    sa.Column("sla_enabled", sa.Boolean, nullable=False),
    sa.Column("sla_minutes", sa.Integer, nullable=False),
    sa.Column("sla_business_hours", sa.Boolean, nullable=False),
)

#: each lead's assignee now: the member a reply or a breach is counted for
rm_sla_leads = sa.Table(
    "rm_sla_leads",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("assignee_id", sa.Uuid),
)

#: one row per conversation: its current wait for a first response, if any
rm_sla_clocks = sa.Table(
    "rm_sla_clocks",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("conversation_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("message_id", sa.Uuid),  # the first unanswered inbound message
    sa.Column("waiting_since", UtcDateTime),
    sa.Column("deadline", UtcDateTime),
    sa.Column("sla_minutes", sa.Integer),
    sa.Column("position", sa.BigInteger, nullable=False),
    # the timers ask across organizations for open clocks past their deadline (as the outbox's
    # due index does); tenant reads go by the primary key
    sa.Index("ix_rm_sla_clocks_due", "status", "deadline"),
)

#: one row per timed wait that ended: how, when, for whom
rm_sla_outcomes = sa.Table(
    "rm_sla_outcomes",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("message_id", sa.Uuid, primary_key=True),
    sa.Column("conversation_id", sa.Uuid, nullable=False),
    sa.Column("lead_id", sa.Uuid, nullable=False),
    sa.Column("member_id", sa.Uuid, nullable=False),  # NIL: the lead had no assignee
    sa.Column("outcome", sa.String(10), nullable=False),
    sa.Column("waiting_since", UtcDateTime, nullable=False),
    sa.Column("deadline", UtcDateTime, nullable=False),
    sa.Column("replied_at", UtcDateTime),  # in_time and late only
    sa.Column("counted_at", UtcDateTime, nullable=False),  # the reply, or the deadline
    sa.Column("day", sa.Date, nullable=False),
    sa.Index("ix_rm_sla_outcomes_day", "organization_id", "day"),
)

#: per organization, local day and member: first responses in time and breaches
rm_sla_daily = sa.Table(
    "rm_sla_daily",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("member_id", sa.Uuid, primary_key=True),
    sa.Column("in_time", sa.BigInteger, nullable=False),
    sa.Column("breached", sa.BigInteger, nullable=False),
)

SLA_TABLES = (rm_sla_orgs, rm_sla_leads, rm_sla_clocks, rm_sla_outcomes, rm_sla_daily)

HANDLES = frozenset(
    ["Organization.Registered", "Organization.TimezoneChanged"]
    + ["WorkSettings.BusinessHoursSet", "WorkSettings.SlaSet"]
    + ["Lead.Captured", "Lead.Assigned"]
    + [f"Conversation.{n}" for n in ("Started", "Resumed", "MessageReceived", "MessageSent")]
    + ["Conversation.ResponseSlaBreached", "Conversation.ContactErased"]
)

Key = tuple[UUID, UUID]
SETTINGS = (Organization.TimezoneChanged, WorkSettings.BusinessHoursSet, WorkSettings.SlaSet)


def deadline_for(org: dict[str, Any], waiting_since: datetime) -> datetime | None:
    """When a wait that began at `waiting_since` is due under the organization's settings
    (`org` is its `rm_sla_orgs` row); None when the SLA is off or no open time lies ahead."""
    if not org["sla_enabled"]:
        return None
    minutes = org["sla_minutes"]
    if not org["sla_business_hours"]:
        return waiting_since + timedelta(minutes=minutes)
    hours = org["hours"]
    try:
        schedule = (
            BusinessHours.parse(hours["timezone"], hours["weekly"], hours["holidays"])
            if hours
            else BusinessHours.default(org["timezone"])
        )
        return schedule.add(waiting_since, minutes)
    except InvalidValueError:  # e.g. every day ahead a holiday: nothing can come due
        return None


def _org_row(org: UUID, timezone: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    return {
        "organization_id": org,
        "timezone": timezone,
        "hours": None,
        "sla_enabled": False,
        "sla_minutes": 60,
        "sla_business_hours": True,
    }


class SlaProjector(Projector):
    name = "sla"
    tables = SLA_TABLES
    handles = HANDLES

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        _Batch(conn, batch).run()


class _Batch:
    """The rows a batch touches, loaded once, changed in log order, written back at the end."""

    def __init__(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        self.conn, self.batch = conn, batch
        self.orgs: dict[UUID, dict[str, Any]] = {}
        self.leads: dict[Key, dict[str, Any]] = {}
        self.clocks: dict[Key, dict[str, Any]] = {}
        self.stored: dict[str, set[Key]] = defaultdict(set)
        self.dirty: dict[str, set[Key]] = defaultdict(set)
        self.outcomes: list[dict[str, Any]] = []
        self.daily: dict[tuple[UUID, Any, UUID], list[int]] = defaultdict(lambda: [0, 0])
        self.rezoned: set[UUID] = set()
        self.position = 0

    def run(self) -> None:
        self._load()
        for env in self.batch:
            self.position = env.position
            e = env.event
            org = e.organization_id
            if isinstance(e, Organization.Registered):
                self.orgs[org] = _org_row(org)
                self.dirty["orgs"].add((org, org))
            elif isinstance(e, SETTINGS):
                self._settings(e)
            elif isinstance(e, Lead.Captured | Lead.Assigned):
                assignee = e.assignee_id if isinstance(e, Lead.Captured) else e.to_user_id
                key = (org, e.originator_id)
                self.leads[key] = {
                    "organization_id": org,
                    "lead_id": key[1],
                    "assignee_id": assignee,
                }
                self.dirty["leads"].add(key)
            else:
                self._conversation(e)
        self._flush()

    # ------------------------------------------------------------------ loading

    def _load(self) -> None:
        events = [env.event for env in self.batch]
        kinds = [env.type_name.split(".", 1)[0] for env in self.batch]
        orgs = sorted({e.organization_id for e in events}, key=str)
        t = rm_sla_orgs.c
        for i in range(0, len(orgs), 500):
            for r in self.conn.execute(
                sa.select(rm_sla_orgs).where(t.organization_id.in_(orgs[i : i + 500]))
            ):
                self.orgs[r.organization_id] = dict(r._mapping)
                self.stored["orgs"].add((r.organization_id, r.organization_id))
        threads = {
            (e.organization_id, e.originator_id)
            for e, kind in zip(events, kinds, strict=True)
            if kind == "Conversation"
        }
        self._rows(rm_sla_clocks, "conversation_id", threads, self.clocks, "clocks")
        leads = {
            (e.organization_id, e.originator_id)
            for e, kind in zip(events, kinds, strict=True)
            if kind == "Lead"
        }
        leads |= {(k[0], c["lead_id"]) for k, c in self.clocks.items()}
        leads |= {
            (e.organization_id, e.lead_id)
            for e in events
            if isinstance(e, Conversation.Started | Conversation.Resumed)
        }
        self._rows(rm_sla_leads, "lead_id", leads, self.leads, "leads")

    def _rows(
        self, table: sa.Table, id_column: str, keys: set[Key], into: dict[Key, Any], name: str
    ) -> None:
        wanted = sorted(keys, key=str)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            query = sa.select(table).where(
                table.c.organization_id.in_(sorted({k[0] for k in chunk}, key=str)),
                table.c[id_column].in_([k[1] for k in chunk]),
            )
            for r in self.conn.execute(query):
                key = (r.organization_id, r._mapping[id_column])
                into[key] = dict(r._mapping)
                self.stored[name].add(key)

    # ------------------------------------------------------------------ events

    def _org(self, org: UUID) -> dict[str, Any]:
        if org not in self.orgs:  # defensive: an organization whose registration this never saw
            self.orgs[org] = _org_row(org)
            self.dirty["orgs"].add((org, org))
        return self.orgs[org]

    def _settings(self, e: Any) -> None:
        row = self._org(e.organization_id)
        self.dirty["orgs"].add((e.organization_id, e.organization_id))
        if isinstance(e, Organization.TimezoneChanged):
            row["timezone"] = e.timezone
            self.rezoned.add(e.organization_id)
        elif isinstance(e, WorkSettings.BusinessHoursSet):
            row["hours"] = {"timezone": e.timezone, "weekly": e.weekly, "holidays": e.holidays}
        elif isinstance(e, WorkSettings.SlaSet):
            row.update(
                sla_enabled=e.enabled, sla_minutes=e.minutes, sla_business_hours=e.business_hours
            )

    def _conversation(self, e: Any) -> None:
        key = (e.organization_id, e.originator_id)
        if isinstance(e, Conversation.Started):
            self.clocks[key] = {
                "organization_id": key[0],
                "conversation_id": key[1],
                "lead_id": e.lead_id,
                "status": IDLE,
                "message_id": None,
                "waiting_since": None,
                "deadline": None,
                "sla_minutes": None,
                "position": self.position,
            }
            self.dirty["clocks"].add(key)
            return
        clock = self.clocks.get(key)
        if clock is None:  # defensive: a conversation whose start this model never saw
            return
        self.dirty["clocks"].add(key)
        clock["position"] = self.position
        if isinstance(e, Conversation.Resumed):
            clock["lead_id"] = e.lead_id
        elif isinstance(e, Conversation.MessageReceived):
            if clock["status"] == IDLE:
                self._begin(clock, e)
        elif isinstance(e, Conversation.MessageSent):
            if clock["status"] == OPEN:
                self._replied(clock, e.timestamp)
            _idle(clock)
        elif isinstance(e, Conversation.ResponseSlaBreached):
            if clock["message_id"] == e.message_id and clock["status"] in (OPEN, UNTIMED):
                self._outcome(clock, BREACH, e.assignee_id, e.deadline, None, e.deadline)
                clock["status"] = BREACHED
        elif isinstance(e, Conversation.ContactErased) and clock["status"] == OPEN:
            clock.update(status=UNTIMED, deadline=None)  # no one can be answered any more

    def _begin(self, clock: dict[str, Any], e: Conversation.MessageReceived) -> None:
        # the message's own time, never later than when it was recorded (a contact's clock
        # running ahead must not move the deadline)
        since = min(e.sent_at, e.timestamp)
        org = self._org(clock["organization_id"])
        deadline = deadline_for(org, since)
        clock.update(
            message_id=e.message_id,
            waiting_since=since,
            deadline=deadline,
            sla_minutes=org["sla_minutes"] if deadline is not None else None,
            status=OPEN if deadline is not None else UNTIMED,
        )

    def _replied(self, clock: dict[str, Any], at: datetime) -> None:
        lead = self.leads.get((clock["organization_id"], clock["lead_id"]))
        member = lead["assignee_id"] if lead else None
        deadline = clock["deadline"]
        if at <= deadline:
            self._outcome(clock, IN_TIME, member, at, at, deadline)
        else:
            self._outcome(clock, LATE, member, deadline, at, deadline)

    def _outcome(
        self,
        clock: dict[str, Any],
        outcome: str,
        member: UUID | None,
        counted_at: datetime,
        replied_at: datetime | None,
        deadline: datetime,
    ) -> None:
        org = clock["organization_id"]
        day = local_day(epoch_us(counted_at), self.orgs[org]["timezone"])
        member = member or NIL
        self.outcomes.append(
            {
                "organization_id": org,
                "message_id": clock["message_id"],
                "conversation_id": clock["conversation_id"],
                "lead_id": clock["lead_id"],
                "member_id": member,
                "outcome": outcome,
                "waiting_since": clock["waiting_since"],
                "deadline": deadline,
                "replied_at": replied_at,
                "counted_at": counted_at,
                "day": day,
            }
        )
        self.daily[(org, day, member)][0 if outcome == IN_TIME else 1] += 1

    # ------------------------------------------------------------------ writing

    def _flush(self) -> None:
        self._write(rm_sla_orgs, "organization_id", self.orgs, "orgs")
        self._write(rm_sla_leads, "lead_id", self.leads, "leads")
        self._write(rm_sla_clocks, "conversation_id", self.clocks, "clocks")
        if self.outcomes:
            self.conn.execute(rm_sla_outcomes.insert(), self.outcomes)
        add_daily(
            self.conn,
            [
                {"organization_id": o, "day": d, "member_id": m, "in_time": n[0], "breached": n[1]}
                for (o, d, m), n in self.daily.items()
            ],
        )
        for org in sorted(self.rezoned, key=str):
            rezone(self.conn, org, self.orgs[org]["timezone"])

    def _write(self, table: sa.Table, id_column: str, rows: dict[Any, Any], name: str) -> None:
        dirty = sorted(self.dirty[name], key=str)
        if not dirty:
            return
        replaced = [k for k in dirty if k in self.stored[name]]
        for i in range(0, len(replaced), 500):
            chunk = replaced[i : i + 500]
            self.conn.execute(
                table.delete().where(
                    table.c.organization_id.in_(sorted({k[0] for k in chunk}, key=str)),
                    table.c[id_column].in_([k[1] for k in chunk]),
                )
            )
        # organizations are keyed by their id alone, marked dirty as (id, id)
        self.conn.execute(table.insert(), [rows[k[0] if name == "orgs" else k] for k in dirty])


def _idle(clock: dict[str, Any]) -> None:
    clock.update(status=IDLE, message_id=None, waiting_since=None, deadline=None, sla_minutes=None)


def add_daily(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add per-day counts to `rm_sla_daily` (one upsert)."""
    if not rows:
        return
    table = rm_sla_daily
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
    stmt = insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={m: table.c[m] + insert.excluded[m] for m in ("in_time", "breached")},
    )
    conn.execute(stmt, rows)


def rezone(conn: Connection, org: UUID, timezone: str) -> None:
    """An organization moved to another time zone: its outcome days and daily counts anew."""
    o = rm_sla_outcomes.c
    rows = conn.execute(
        sa.select(o.message_id, o.counted_at, o.member_id, o.outcome).where(
            o.organization_id == org
        )
    ).all()
    counts: dict[tuple[Any, UUID], list[int]] = defaultdict(lambda: [0, 0])
    for message_id, counted_at, member, outcome in rows:
        day = local_day(epoch_us(counted_at), timezone)
        conn.execute(
            rm_sla_outcomes.update()
            .where(o.organization_id == org, o.message_id == message_id)
            .values(day=day)
        )
        counts[(day, member)][0 if outcome == IN_TIME else 1] += 1
    conn.execute(rm_sla_daily.delete().where(rm_sla_daily.c.organization_id == org))
    add_daily(
        conn,
        [
            {"organization_id": org, "day": d, "member_id": m, "in_time": n[0], "breached": n[1]}
            for (d, m), n in counts.items()
        ],
    )
