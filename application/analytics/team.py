"""Team and communication analytics: per-member activity, messages, calls, response times.

Members are the users behind each fact: the assignee for won/lost leads, the one assigned for
`leads_assigned`, the acting user for moves, notes and messages sent, the caller for calls placed.
Medians and p90 are exact: counted per bin of response time, then read from one bin's facts.
Response SLA figures (first responses in time, breaches, compliance) come from the SLA read model
(`projections.sla`): the member is the lead's assignee when the wait ended.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.analytics.queries import (
    Period,
    average,
    bucket,
    in_period,
    key_text,
    money,
    ratio,
    rollup_sums,
)
from projections.analytics_tables import (
    NIL,
    bin_bounds,
    epoch_us,
    rm_analytics_facts,
    rm_analytics_responses,
    rm_analytics_threads,
)
from projections.sla import rm_sla_daily

TEAM_KINDS: tuple[str, ...] = ("assigned", "moved", "note", "won", "lost", "message_out")
TEAM_KINDS += ("call", "call_answered", "call_ended")


class ResponseTimes:
    """Exact order statistics of the first-response times of a period, read bin by bin.

    The histogram (`rm_analytics_responses`) gives how many times fall in each bin; the k-th
    smallest time is then read from that bin's facts alone, in seconds order (an index range).
    """

    def __init__(self, conn: Connection, org: UUID, period: Period) -> None:
        self.conn, self.org, self.period = conn, org, period
        r = rm_analytics_responses
        query = (
            sa.select(r.c.member_id, r.c.bin, sa.func.sum(r.c.count))
            .where(r.c.organization_id == org, in_period(r, period, by_day=False))
            .group_by(r.c.member_id, r.c.bin)
        )
        self.bins: dict[UUID | None, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        for member, b, n in conn.execute(query):
            self.bins[member][int(b)] += int(n)
            self.bins[None][int(b)] += int(n)

    def members(self) -> list[UUID]:
        return [m for m in self.bins if m is not None and m != NIL]

    def count(self, member: UUID | None = None) -> int:
        return sum(self.bins[member].values()) if member in self.bins else 0

    def median(self, member: UUID | None = None) -> float | None:
        """The middle time (the mean of the two middle ones for an even count)."""
        n = self.count(member)
        if n == 0:
            return None
        low, high = self.ranked(member, (n - 1) // 2), self.ranked(member, n // 2)
        return float(low) if low == high else (low + high) / 2

    def percentile(self, p: int, member: UUID | None = None) -> float | None:
        """Nearest rank: the smallest time with at least p % of the times at or below it."""
        n = self.count(member)
        if n == 0:
            return None
        return float(self.ranked(member, max(1, math.ceil(p * n / 100)) - 1))

    def ranked(self, member: UUID | None, rank: int) -> int:
        """The time at 0-based `rank` in increasing order."""
        before = 0
        for b in sorted(self.bins[member]):
            n = self.bins[member][b]
            if rank < before + n:
                return self._in_bin(member, b, rank - before)
            before += n
        raise IndexError(rank)

    def _in_bin(self, member: UUID | None, b: int, offset: int) -> int:
        f = rm_analytics_facts.c
        low, high = bin_bounds(b)
        query = sa.select(f.seconds).where(
            f.organization_id == self.org,
            # written out, not bound: the partial indexes on first responses must match it
            f.kind == sa.literal_column("'first_response'"),
            f.seconds >= low,
            f.seconds <= high,
            f.day >= self.period.start,
            f.day <= self.period.end,
        )
        if member is not None:
            query = query.where(f.member_id == member)
        query = query.order_by(f.seconds).offset(offset).limit(1)
        return int(self.conn.execute(query).scalar_one())


# ---------------------------------------------------------------- team


class MemberFigures(msgspec.Struct, frozen=True):
    member_id: UUID
    leads_assigned: int
    stage_moves: int
    notes: int
    won: int
    won_value: Decimal
    lost: int
    win_rate: float | None
    messages_sent: int
    calls_placed: int
    calls_answered: int
    talk_seconds: int
    median_first_response_seconds: float | None
    #: first responses sent by the SLA deadline, to contacts of leads assigned to the member
    sla_first_responses_in_time: int = 0
    #: waits that passed their deadline (recorded breaches and replies sent after it)
    sla_breaches: int = 0
    #: in time ÷ (in time + breaches); null without either
    sla_compliance_rate: float | None = None


class TeamReport(msgspec.Struct, frozen=True):
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    members: list[MemberFigures] = []


def team_report(
    conn: Connection, org: UUID, period: Period, only_member: UUID | None
) -> TeamReport:
    """One row per member with any activity in the period; `only_member` keeps just that one."""
    sums: dict[UUID, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for kind, member, channel, n, value, seconds in rollup_sums(
        conn, org, period, "member", TEAM_KINDS, "member_id", "channel"
    ):
        if member == NIL or (only_member is not None and member != only_member):
            continue
        if kind == "call" and channel != "outbound":
            continue
        acc = sums[member][kind]
        acc[0] += int(n)
        acc[1] += int(value)
        acc[2] += int(seconds)
    times = ResponseTimes(conn, org, period)
    responders = [m for m in times.members() if only_member is None or m == only_member]
    sla = {m: n for m, n in sla_sums(conn, org, period).items() if m != NIL}
    if only_member is not None:
        sla = {m: n for m, n in sla.items() if m == only_member}
    members = []
    for member in sorted(set(sums) | set(responders) | set(sla), key=str):
        s = sums[member]
        won, lost = s["won"][0], s["lost"][0]
        in_time, breaches = sla.get(member, (0, 0))
        members.append(
            MemberFigures(
                member_id=member,
                leads_assigned=s["assigned"][0],
                stage_moves=s["moved"][0],
                notes=s["note"][0],
                won=won,
                won_value=money(s["won"][1]),
                lost=lost,
                win_rate=ratio(won, won + lost),
                messages_sent=s["message_out"][0],
                calls_placed=s["call"][0],
                calls_answered=s["call_answered"][0],
                talk_seconds=s["call_ended"][2],
                median_first_response_seconds=times.median(member),
                sla_first_responses_in_time=in_time,
                sla_breaches=breaches,
                sla_compliance_rate=ratio(in_time, in_time + breaches),
            )
        )
    return TeamReport(start=period.start, end=period.end, members=members)


def sla_sums(conn: Connection, org: UUID, period: Period) -> dict[UUID, tuple[int, int]]:
    """Per member (the nil id: leads without an assignee): (in time, breaches) in the period."""
    d = rm_sla_daily.c
    query = (
        sa.select(d.member_id, sa.func.sum(d.in_time), sa.func.sum(d.breached))
        .where(d.organization_id == org, d.day >= period.start, d.day <= period.end)
        .group_by(d.member_id)
    )
    return {m: (int(i or 0), int(b or 0)) for m, i, b in conn.execute(query)}


# ---------------------------------------------------------------- communication


class MessagesPoint(msgspec.Struct, frozen=True):
    period: date
    channel: str | None
    provider: str | None
    messages_in: int
    messages_out: int


class CallsByOutcome(msgspec.Struct, frozen=True):
    outcome: str | None
    calls: int
    duration_seconds: int
    average_duration_seconds: float | None


class CommunicationReport(msgspec.Struct, frozen=True):
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    granularity: str = "day"
    as_of: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    waiting_hours: int = 24
    messages: list[MessagesPoint] = []
    calls: list[CallsByOutcome] = []
    calls_placed: int = 0
    calls_received: int = 0
    calls_answered: int = 0
    first_responses: int = 0
    median_first_response_seconds: float | None = None
    p90_first_response_seconds: float | None = None
    waiting_for_reply: int = 0


def communication_report(
    conn: Connection, org: UUID, period: Period, waiting_hours: int, now: datetime
) -> CommunicationReport:
    messages: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0])
    outcomes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    calls = {"outbound": 0, "inbound": 0, "answered": 0}
    for kind, day, channel, provider, n, _, _ in rollup_sums(
        conn, org, period, "channel", ("message_in", "message_out"), "day", "channel", "provider"
    ):
        point = messages[(bucket(day, period.granularity), channel, provider)]
        point[0 if kind == "message_in" else 1] += int(n)
    for kind, channel, outcome, n, _, seconds in rollup_sums(
        conn, org, period, "channel", ("call", "call_answered", "call_ended"), "channel", "outcome"
    ):
        if kind == "call":
            calls["outbound" if channel == "outbound" else "inbound"] += int(n)
        elif kind == "call_answered":
            calls["answered"] += int(n)
        else:
            outcomes[outcome][0] += int(n)
            outcomes[outcome][1] += int(seconds)
    times = ResponseTimes(conn, org, period)
    t = rm_analytics_threads.c
    waiting = conn.execute(
        sa.select(sa.func.count()).where(
            t.organization_id == org,
            t.waiting_since_us <= epoch_us(now) - waiting_hours * 3_600_000_000,
        )
    ).scalar_one()
    return CommunicationReport(
        start=period.start,
        end=period.end,
        granularity=period.granularity,
        as_of=now.astimezone(UTC),
        waiting_hours=waiting_hours,
        messages=[
            MessagesPoint(p, key_text(c), key_text(v), *n)
            for (p, c, v), n in sorted(messages.items())
        ],
        calls=[
            CallsByOutcome(key_text(o), n, s, average(s, n))
            for o, (n, s) in sorted(outcomes.items())
        ],
        calls_placed=calls["outbound"],
        calls_received=calls["inbound"],
        calls_answered=calls["answered"],
        first_responses=times.count(),
        median_first_response_seconds=times.median(),
        p90_first_response_seconds=times.percentile(90),
        waiting_for_reply=int(waiting),
    )
