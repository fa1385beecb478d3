"""Analytics queries: the period, the pipeline funnel, lead figures by source, assignee or stage.

Everything reads the analytics read model (never the event store). Days are the organization's
local days; sums come from the database as integers and every ratio or average is computed
here, once, so the JSON and the CSV carry the same numbers. See README "Analytics" for the
definition of each measure.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.errors import InvalidValueError
from projections.analytics_tables import (
    NIL,
    epoch_us,
    rm_analytics_daily,
    rm_analytics_leads,
    rm_analytics_orgs,
)
from projections.leads import rm_stages

GRANULARITIES = ("day", "week", "month")
GROUPS = {"source": "source", "assignee": "member_id", "stage": "stage_id"}
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


def key_text(value: Any) -> str | None:
    """A dimension value for the outside: sentinels ('' / nil UUID) become null."""
    if value is None or value == "" or value == NIL:
        return None
    return str(value)


def daily_sums(
    conn: Connection, org: UUID, period: Period, kinds: tuple[str, ...], *by: str
) -> list[Any]:
    """(day, kind, *by, count, value_cents, seconds) summed over the period's daily rows."""
    d = rm_analytics_daily.c
    groups = [d.day, d.kind, *[d[c] for c in by]]
    query = (
        sa.select(*groups, sa.func.sum(d.count), sa.func.sum(d.value_cents), sa.func.sum(d.seconds))
        .where(d.organization_id == org, d.day >= period.start, d.day <= period.end)
        .where(d.kind.in_(kinds))
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
    total_value_cents: int
    weighted_value_cents: int
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
    won_value_cents: int


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
    won_value_cents: int = 0
    average_sales_cycle_seconds: float | None = None
    series: list[PipelinePoint] = []


def win_probabilities(stages: list[tuple[UUID, str]]) -> dict[UUID, int]:
    """Percent by stage: won 100, lost 0, the i-th of n open stages (in order) 100·(i+1)//(n+1).

    Pipelines have no probability setting yet: it is derived from the stage's position.
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
    lead = rm_analytics_leads.c
    age = (sa.literal(as_of_us, sa.BigInteger) - lead.stage_entered_us) // 1_000_000
    query = (
        sa.select(lead.stage_id, sa.func.count(), sa.func.sum(lead.value_cents), sa.func.sum(age))
        .where(lead.organization_id == org, lead.archived.is_(False))
        .group_by(lead.stage_id)
    )
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(query)}


def pipeline_report(conn: Connection, org: UUID, period: Period, now: datetime) -> PipelineReport:
    as_of_us = epoch_us(now)
    s = rm_stages.c
    stage_rows = list(
        conn.execute(
            sa.select(s.stage_id, s.name, s.stage_type)
            .where(s.organization_id == org)
            .order_by(s.sort_order)
        )
    )
    kinds = [(r[0], str(r[2])) for r in stage_rows]
    chance, nexts = win_probabilities(kinds), next_stages(kinds)
    current = _now_by_stage(conn, org, as_of_us)
    sums: dict[tuple[str, UUID], list[int]] = defaultdict(lambda: [0, 0, 0])
    transitions: dict[tuple[UUID, UUID], int] = defaultdict(int)
    series: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    kinds_read = ("created", "entered", "exited", "moved", "won", "lost")
    for day, kind, stage, to_stage, n, value, seconds in daily_sums(
        conn, org, period, kinds_read, "stage_id", "to_stage_id"
    ):
        if kind == "moved":
            transitions[(stage, to_stage)] += int(n)
            continue
        acc = sums[(kind, stage)]
        acc[0] += int(n)
        acc[1] += int(value)
        acc[2] += int(seconds)
        index = {"created": 0, "won": 1, "lost": 2}.get(kind)
        if index is not None:
            point = series[bucket(day, period.granularity)]
            point[index] += int(n)
            if kind == "won":
                point[3] += int(value)

    def total(kind: str, i: int) -> int:
        return sum(v[i] for (k, _), v in sums.items() if k == kind)

    figures = []
    for position, (stage_id, name, stage_type) in enumerate(stage_rows):
        count, value, age = current.get(stage_id, (0, 0, 0))
        entered = sums[("entered", stage_id)][0]
        exited = sums[("exited", stage_id)]
        nxt = nexts.get(stage_id)
        figures.append(
            StageFigures(
                stage_id=stage_id,
                name=str(name),
                stage_type=str(stage_type),
                position=position,
                win_probability=chance[stage_id],
                count=count,
                total_value_cents=value,
                weighted_value_cents=value * chance[stage_id] // 100,
                average_age_seconds=average(age, count),
                entered=entered,
                conversion_to_next=None
                if nxt is None
                else ratio(sums[("entered", nxt)][0], entered),
                exits=exited[0],
                average_time_in_stage_seconds=average(exited[2], exited[0]),
            )
        )
    won, lost = total("won", 0), total("lost", 0)
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
        won_value_cents=total("won", 1),
        average_sales_cycle_seconds=average(total("won", 2), won),
        series=[PipelinePoint(p, *v) for p, v in sorted(series.items())],
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
    won_value_cents: int


class LeadsGroup(msgspec.Struct, frozen=True):
    group: str | None
    new: int
    won: int
    lost: int
    won_value_cents: int
    conversion_rate: float | None
    win_rate: float | None


class LeadsTotals(msgspec.Struct, frozen=True):
    new: int
    won: int
    lost: int
    won_value_cents: int
    conversion_rate: float | None
    win_rate: float | None


class LeadsReport(msgspec.Struct, frozen=True):
    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    granularity: str = "day"
    group_by: str = "source"
    totals: LeadsTotals = LeadsTotals(0, 0, 0, 0, None, None)
    groups: list[LeadsGroup] = []
    series: list[LeadsPoint] = []


def _figures(v: list[int]) -> tuple[int, int, int, int, float | None, float | None]:
    new, won, lost, value = v
    return new, won, lost, value, ratio(won, new), ratio(won, won + lost)


def leads_report(
    conn: Connection, org: UUID, period: Period, group_by: str, only_member: UUID | None
) -> LeadsReport:
    """New, won, lost and won value per bucket and group; `only_member` limits assignee rows."""
    column = GROUPS[group_by]
    series: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    groups: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    totals = [0, 0, 0, 0]
    mine = None if only_member is None else str(only_member)
    for day, kind, key, n, value, _ in daily_sums(
        conn, org, period, ("created", "won", "lost"), column
    ):
        index = {"created": 0, "won": 1, "lost": 2}[kind]
        totals[index] += int(n)
        totals[3] += int(value) if kind == "won" else 0
        group = key_text(key)
        if only_member is not None and group != mine:
            continue
        for acc in (series[(bucket(day, period.granularity), group)], groups[group]):
            acc[index] += int(n)
            acc[3] += int(value) if kind == "won" else 0
    return LeadsReport(
        start=period.start,
        end=period.end,
        granularity=period.granularity,
        group_by=group_by,
        totals=LeadsTotals(*_figures(totals)),
        groups=[LeadsGroup(g, *_figures(v)) for g, v in sorted(groups.items(), key=_none_first)],
        series=[
            LeadsPoint(p, g, *v)
            for (p, g), v in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ],
    )


def _none_first(item: tuple[str | None, Any]) -> str:
    return item[0] or ""


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
