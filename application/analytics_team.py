"""Team and communication analytics: per-member activity, messages, calls, response times.

Members are the users behind each fact: the assignee for won/lost leads, the one assigned for
`leads_assigned`, the acting user for moves, notes and messages sent, the caller for calls placed.
Medians and p90 read the individual first-response facts of the period (few rows per day).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.analytics import (
    Period,
    average,
    bucket,
    key_text,
    ratio,
    rollup_sums,
)
from projections.analytics_tables import NIL, epoch_us, rm_analytics_facts, rm_analytics_threads

TEAM_KINDS: tuple[str, ...] = ("assigned", "moved", "note", "won", "lost", "message_out")
TEAM_KINDS += ("call", "call_answered", "call_ended")


def median(values: list[int]) -> float | None:
    """The middle value (the mean of the two middle ones for an even count)."""
    if not values:
        return None
    v, n = sorted(values), len(values)
    return float(v[n // 2]) if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def percentile(values: list[int], p: int) -> float | None:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not values:
        return None
    v = sorted(values)
    return float(v[max(1, math.ceil(p * len(v) / 100)) - 1])


def first_responses(
    conn: Connection, org: UUID, period: Period, member: UUID | None = None
) -> list[tuple[UUID, int]]:
    """(responder, seconds) of every first response in the period's local days."""
    f = rm_analytics_facts.c
    query = sa.select(f.member_id, f.seconds).where(
        f.organization_id == org,
        f.kind == "first_response",
        f.day >= period.start,
        f.day <= period.end,
    )
    if member is not None:
        query = query.where(f.member_id == member)
    return [(r[0], int(r[1])) for r in conn.execute(query)]


# ---------------------------------------------------------------- team


class MemberFigures(msgspec.Struct, frozen=True):
    member_id: UUID
    leads_assigned: int
    stage_moves: int
    notes: int
    won: int
    won_value_cents: int
    lost: int
    win_rate: float | None
    messages_sent: int
    calls_placed: int
    calls_answered: int
    talk_seconds: int
    median_first_response_seconds: float | None


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
    responses: dict[UUID, list[int]] = defaultdict(list)
    for member, seconds in first_responses(conn, org, period, only_member):
        if member != NIL:
            responses[member].append(seconds)
    members = []
    for member in sorted(set(sums) | set(responses), key=str):
        s = sums[member]
        won, lost = s["won"][0], s["lost"][0]
        members.append(
            MemberFigures(
                member_id=member,
                leads_assigned=s["assigned"][0],
                stage_moves=s["moved"][0],
                notes=s["note"][0],
                won=won,
                won_value_cents=s["won"][1],
                lost=lost,
                win_rate=ratio(won, won + lost),
                messages_sent=s["message_out"][0],
                calls_placed=s["call"][0],
                calls_answered=s["call_answered"][0],
                talk_seconds=s["call_ended"][2],
                median_first_response_seconds=median(responses[member]),
            )
        )
    return TeamReport(start=period.start, end=period.end, members=members)


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
    times = [s for _, s in first_responses(conn, org, period)]
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
        first_responses=len(times),
        median_first_response_seconds=median(times),
        p90_first_response_seconds=percentile(times, 90),
        waiting_for_reply=int(waiting),
    )
