"""Analytics queries: the period, the pipeline funnel, lead figures by source, assignee or stage.

Everything reads the analytics read model (never the event store). Days are the organization's
local days; sums come from the database as integers and every ratio or average is computed
here, once, so the JSON and the CSV carry the same numbers. Money is summed in integer cents
and answered as an exact decimal in the lead's unit (`Decimal`, a string in JSON: "1200.50"),
the shape of every amount of the API. See README "Analytics" for the definition of each measure.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.errors import InvalidValueError
from projections.analytics_tables import (
    NIL,
    ROLLUP_TABLES,
    epoch_us,
    rm_analytics_orgs,
    rm_analytics_stage_totals,
)
from projections.leads import rm_stages

GRANULARITIES = ("day", "week", "month")
#: group_by → (roll-up, its column)
GROUPS = {
    "source": ("source", "source"),
    "assignee": ("member", "member_id"),
    "stage": ("stage", "stage_id"),
}
DEFAULT_DAYS = 30
MAX_DAYS = 3660
MIN_YEAR, MAX_YEAR = 1970, 2200  # epoch microseconds and local-day arithmetic stay in range


class Period(msgspec.Struct, frozen=True):
    """Local days `start`..`end` (inclusive) of the organization, bucketed by `granularity`."""

    start: date
    end: date
    granularity: str


def org_timezone(conn: Connection, org: UUID) -> str:
    row = conn.execute(
        sa.select(rm_analytics_orgs.c.timezone).where(rm_analytics_orgs.c.organization_id == org)
    ).scalar_one_or_none()
    return str(row) if row is not None else "UTC"


def _day(name: str, value: str | None) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidValueError(name, "must be an ISO 8601 date (YYYY-MM-DD)") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise InvalidValueError(name, f"must be a date between {MIN_YEAR} and {MAX_YEAR}")
    return day


def choice(name: str, value: str | None, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise InvalidValueError(name, f"must be one of {', '.join(allowed)}")
    return value


def parse_period(
    start: str | None, end: str | None, granularity: str | None, today: date
) -> Period:
    """`from`/`to` ISO dates; default: the last 30 days ending today (organization's time)."""
    last = _day("to", end) or today
    first = _day("from", start) or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidValueError("from", "must not be after to")
    if (last - first).days >= MAX_DAYS:
        raise InvalidValueError("from", f"the period may span at most {MAX_DAYS} days")
    return Period(first, last, choice("granularity", granularity, GRANULARITIES, "day"))


def today_in(timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def bucket(day: date, granularity: str) -> date:
    """The first day of the bucket holding `day`: itself, its ISO week's Monday, its month's 1st."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def average(total: int, count: int) -> float | None:
    return None if count == 0 else round(total / count, 3)


def money(cents: int) -> Decimal:
    """Integer cents as an exact amount in the lead's unit: 120050 → Decimal("1200.50")."""
    return Decimal(int(cents)).scaleb(-2)


def key_text(value: Any) -> str | None:
    """A dimension value for the outside: sentinels ('' / nil UUID) become null."""
    if value is None or value == "" or value == NIL:
        return None
    return str(value)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def segments(period: Period, by_day: bool) -> list[tuple[str, date, date]]:
    """(grain, first, last) row ranges covering the period: its whole months from month rows
    (unless days are asked for, finer than a month) and its partial months from day rows."""
    if by_day and period.granularity != "month":
        return [("day", period.start, period.end)]
    first = period.start if period.start.day == 1 else _next_month(period.start)
    after = (
        _next_month(period.end)
        if _next_month(period.end) - timedelta(days=1) == period.end
        else period.end.replace(day=1)
    )
    if first >= after:
        return [("day", period.start, period.end)]
    out = [("month", first, after - timedelta(days=1))]
    if period.start < first:
        out.append(("day", period.start, first - timedelta(days=1)))
    if after <= period.end:
        out.append(("day", after, period.end))
    return out


def in_period(table: sa.Table, period: Period, by_day: bool) -> sa.ColumnElement[bool]:
    """The roll-up rows that sum exactly the period's days."""
    t = table.c
    return sa.or_(
        *[
            sa.and_(t.grain == grain, t.day >= first, t.day <= last)
            for grain, first, last in segments(period, by_day)
        ]
    )


def rollup_sums(
    conn: Connection, org: UUID, period: Period, rollup: str, kinds: tuple[str, ...], *by: str
) -> list[Any]:
    """(kind, *by, count, value_cents, seconds) summed over the period's days of one roll-up.

    `by` names columns of that roll-up (`day` included: then the day a row is dated, bucketed
    by the caller); everything else is summed away.
    """
    table = ROLLUP_TABLES[rollup]
    t = table.c
    groups = [t.kind, *[t[c] for c in by]]
    query = (
        sa.select(*groups, sa.func.sum(t.count), sa.func.sum(t.value_cents), sa.func.sum(t.seconds))
        .where(t.organization_id == org, t.kind.in_(kinds))
        .where(in_period(table, period, "day" in by))
        .group_by(*groups)
    )
    return list(conn.execute(query))


# ---------------------------------------------------------------- pipeline


class StageFigures(msgspec.Struct, frozen=True):
    stage_id: UUID
    name: str
    stage_type: str
    position: int
    win_probability: int
    count: int
    total_value: Decimal
    weighted_value: Decimal
    average_age_seconds: float | None
    entered: int
    conversion_to_next: float | None
    exits: int
    average_time_in_stage_seconds: float | None


class Transition(msgspec.Struct, frozen=True):
    from_stage_id: UUID
    to_stage_id: UUID
    count: int


class PipelinePoint(msgspec.Struct, frozen=True):
    period: date
    created: int
    won: int
    lost: int
    won_value: Decimal


class PipelineReport(msgspec.Struct, frozen=True):
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    granularity: str = "day"
    as_of: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    stages: list[StageFigures] = []
    transitions: list[Transition] = []
    won: int = 0
    lost: int = 0
    win_rate: float | None = None
    won_value: Decimal = Decimal("0.00")
    average_sales_cycle_seconds: float | None = None
    series: list[PipelinePoint] = []


def win_probabilities(stages: list[tuple[UUID, str]]) -> dict[UUID, int]:
    """Derived percent by stage: won 100, lost 0, the i-th of n open stages 100·(i+1)//(n+1).

    Used for stages whose own `win_probability` setting is unset (null).
    """
    opened = [s for s, kind in stages if kind == "open"]
    out = {s: (100 if kind == "won" else 0) for s, kind in stages}
    for i, s in enumerate(opened):
        out[s] = 100 * (i + 1) // (len(opened) + 1)
    return out


def next_stages(stages: list[tuple[UUID, str]]) -> dict[UUID, UUID]:
    """An open stage's next one: the following stage in order that is not a lost stage."""
    out: dict[UUID, UUID] = {}
    for i, (s, kind) in enumerate(stages):
        if kind != "open":
            continue
        after = [t for t, k in stages[i + 1 :] if k != "lost"]
        if after:
            out[s] = after[0]
    return out


def _now_by_stage(conn: Connection, org: UUID, as_of_us: int) -> dict[UUID, tuple[int, int, int]]:
    """Per stage: (unarchived leads, their value, the sum of their ages in whole seconds)."""
    t = rm_analytics_stage_totals.c
    query = sa.select(t.stage_id, t.count, t.value_cents, t.entered_seconds).where(
        t.organization_id == org, t.count > 0
    )
    now = as_of_us // 1_000_000
    return {r[0]: (int(r[1]), int(r[2]), int(r[1]) * now - int(r[3])) for r in conn.execute(query)}


def pipeline_report(conn: Connection, org: UUID, period: Period, now: datetime) -> PipelineReport:
    as_of_us = epoch_us(now)
    s = rm_stages.c
    stage_rows = list(
        conn.execute(
            sa.select(s.stage_id, s.name, s.stage_type, s.win_probability)
            .where(s.organization_id == org)
            .order_by(s.sort_order)
        )
    )
    kinds = [(r[0], str(r[2])) for r in stage_rows]
    chance, nexts = win_probabilities(kinds), next_stages(kinds)
    chance |= {r[0]: int(r[3]) for r in stage_rows if r[3] is not None}  # the stage's own setting
    current = _now_by_stage(conn, org, as_of_us)
    # per stage: entered = captured into + moved into; exits = moved out (with time spent)
    entered: dict[UUID, int] = defaultdict(int)
    exits: dict[UUID, list[int]] = defaultdict(lambda: [0, 0])
    transitions: dict[tuple[UUID, UUID], int] = defaultdict(int)
    closed = {"won": [0, 0, 0], "lost": [0, 0, 0]}
    for kind, stage, to_stage, n, value, seconds in rollup_sums(
        conn, org, period, "stage", ("created", "moved", "won", "lost"), "stage_id", "to_stage_id"
    ):
        if kind == "created":
            entered[stage] += int(n)
        elif kind == "moved":
            transitions[(stage, to_stage)] += int(n)
            entered[to_stage] += int(n)
            exits[stage][0] += int(n)
            exits[stage][1] += int(seconds)
        else:
            for i, v in enumerate((n, value, seconds)):
                closed[kind][i] += int(v)
    series: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for kind, day, n, value, _ in rollup_sums(
        conn, org, period, "stage", ("created", "won", "lost"), "day"
    ):
        point = series[bucket(day, period.granularity)]
        point[{"created": 0, "won": 1, "lost": 2}[kind]] += int(n)
        point[3] += int(value) if kind == "won" else 0

    figures = []
    for position, (stage_id, name, stage_type, _) in enumerate(stage_rows):
        count, value, age = current.get(stage_id, (0, 0, 0))
        nxt = nexts.get(stage_id)
        figures.append(
            StageFigures(
                stage_id=stage_id,
                name=str(name),
                stage_type=str(stage_type),
                position=position,
                win_probability=chance[stage_id],
                count=count,
                total_value=money(value),
                weighted_value=money(value * chance[stage_id] // 100),
                average_age_seconds=average(age, count),
                entered=entered[stage_id],
                conversion_to_next=None if nxt is None else ratio(entered[nxt], entered[stage_id]),
                exits=exits[stage_id][0],
                average_time_in_stage_seconds=average(exits[stage_id][1], exits[stage_id][0]),
            )
        )
    won, lost = closed["won"][0], closed["lost"][0]
    return PipelineReport(
        start=period.start,
        end=period.end,
        granularity=period.granularity,
        as_of=now.astimezone(UTC),
        stages=figures,
        transitions=[
            Transition(a, b, n) for (a, b), n in sorted(transitions.items(), key=_text_key)
        ],
        won=won,
        lost=lost,
        win_rate=ratio(won, won + lost),
        won_value=money(closed["won"][1]),
        average_sales_cycle_seconds=average(closed["won"][2], won),
        series=[
            PipelinePoint(p, created, won, lost, money(value))
            for p, (created, won, lost, value) in sorted(series.items())
        ],
    )


def _text_key(item: tuple[Any, Any]) -> tuple[str, ...]:
    return tuple(str(x) for x in item[0])


# ---------------------------------------------------------------- leads


class LeadsPoint(msgspec.Struct, frozen=True):
    period: date
    group: str | None
    new: int
    won: int
    lost: int
    won_value: Decimal


class LeadsGroup(msgspec.Struct, frozen=True):
    group: str | None
    new: int
    won: int
    lost: int
    won_value: Decimal
    conversion_rate: float | None
    win_rate: float | None


class LeadsTotals(msgspec.Struct, frozen=True):
    new: int
    won: int
    lost: int
    won_value: Decimal
    conversion_rate: float | None
    win_rate: float | None


class LeadsReport(msgspec.Struct, frozen=True):
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    granularity: str = "day"
    group_by: str = "source"
    totals: LeadsTotals = LeadsTotals(0, 0, 0, Decimal("0.00"), None, None)
    groups: list[LeadsGroup] = []
    series: list[LeadsPoint] = []


def _figures(v: list[int]) -> tuple[int, int, int, Decimal, float | None, float | None]:
    new, won, lost, value = v
    return new, won, lost, money(value), ratio(won, new), ratio(won, won + lost)


def _leads_by_day(
    conn: Connection, org: UUID, period: Period, rollup: str, column: str
) -> list[Any]:
    """(day, group, new, won, lost, won value) per roll-up day (or month) row and group."""
    table = ROLLUP_TABLES[rollup]
    t = table.c

    def of(kind: str, measure: Any) -> Any:
        return sa.func.sum(sa.case((t.kind == kind, measure), else_=0))

    query = (
        sa.select(
            t.day,
            t[column],
            of("created", t.count),
            of("won", t.count),
            of("lost", t.count),
            of("won", t.value_cents),
        )
        .where(t.organization_id == org, t.kind.in_(("created", "won", "lost")))
        .where(in_period(table, period, by_day=True))
        .group_by(t.day, t[column])
    )
    return list(conn.execute(query))


def leads_report(
    conn: Connection, org: UUID, period: Period, group_by: str, only_member: UUID | None
) -> LeadsReport:
    """New, won, lost and won value per bucket and group; `only_member` limits assignee rows."""
    rollup, column = GROUPS[group_by]
    series: dict[tuple[date, str], list[int]] = {}
    groups: dict[str, list[int]] = {}
    totals = [0, 0, 0, 0]
    names: dict[Any, str | None] = {}  # dimension value → its text (a few distinct values)
    for day, key, *figures in _leads_by_day(conn, org, period, rollup, column):
        new, won, lost, value = (int(x or 0) for x in figures)
        if key not in names:
            names[key] = key_text(key)
        group = names[key]
        accs = [totals]
        if only_member is None or group == str(only_member):  # sales: their own rows only
            accs.append(groups.setdefault(group or "", [0, 0, 0, 0]))
            bucketed = (bucket(day, period.granularity), group or "")
            accs.append(series.setdefault(bucketed, [0, 0, 0, 0]))
        for acc in accs:
            acc[0] += new
            acc[1] += won
            acc[2] += lost
            acc[3] += value
    return LeadsReport(
        start=period.start,
        end=period.end,
        granularity=period.granularity,
        group_by=group_by,
        totals=LeadsTotals(*_figures(totals)),
        # groups are keyed by their text, '' for none (sorted first, answered null)
        groups=[LeadsGroup(g or None, *_figures(v)) for g, v in sorted(groups.items())],
        series=[
            LeadsPoint(p, g or None, new, won, lost, money(value))
            for (p, g), (new, won, lost, value) in sorted(series.items())
        ],
    )


def resolve_period(
    conn: Connection,
    org: UUID,
    start: str | None,
    end: str | None,
    granularity: str | None,
    now: datetime,
) -> Period:
    """The requested period; defaults count in the organization's own calendar."""
    return parse_period(start, end, granularity, today_in(org_timezone(conn, org), now))
