"""Custom reports: whitelisted measures by whitelisted dimensions over the analytics roll-ups.

A request names measures and dimensions from the tables below; they select columns and fact
kinds from these tables only, and every value from the client (dates, filter values) is a bound
parameter. No client text ever becomes SQL. The report reads the narrowest daily roll-up that
keeps every column it groups or filters by, else the facts themselves (same day column).
The response SLA measures read the SLA read model's daily figures (by period and assignee only)
and are merged into the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.analytics.queries import Period, bucket, in_period, key_text, money, ratio
from domain.errors import InvalidValueError
from projections.analytics_tables import NIL, ROLLUP_TABLES, ROLLUPS, rm_analytics_facts
from projections.sla import rm_sla_daily

#: measure → (fact kind, summed column, extra condition on the row); `value_cents` is money,
#: answered as an exact decimal in the lead's unit like every amount of the API
MEASURES: dict[str, tuple[str, str, tuple[str, str] | None]] = {
    "leads_created": ("created", "count", None),
    "leads_won": ("won", "count", None),
    "won_value": ("won", "value_cents", None),
    "leads_lost": ("lost", "count", None),
    "stage_moves": ("moved", "count", None),
    "notes": ("note", "count", None),
    "leads_assigned": ("assigned", "count", None),
    "messages_in": ("message_in", "count", None),
    "messages_out": ("message_out", "count", None),
    "calls": ("call", "count", None),
    "calls_placed": ("call", "count", ("channel", "outbound")),
    "calls_answered": ("call_answered", "count", None),
    "talk_seconds": ("call_ended", "seconds", None),
}
#: response SLA measures (see `projections.sla`): first responses by the deadline, waits past it,
#: and in time ÷ (in time + breaches), null without either
SLA_MEASURES = ("sla_first_responses_in_time", "sla_breaches", "sla_compliance_rate")
#: what the SLA figures are kept by: they group and filter by nothing else
SLA_DIMENSIONS = frozenset({"period", "assignee"})
#: dimension → column of the daily rows (`period` is the bucket of the day)
DIMENSIONS = {
    "period": "day",
    "source": "source",
    "assignee": "member_id",
    "stage": "stage_id",
    "to_stage": "to_stage_id",
    "channel": "channel",
    "provider": "provider",
    "outcome": "outcome",
}
UUID_COLUMNS = frozenset({"member_id", "stage_id", "to_stage_id"})
MAX_ROWS = 10_000


class CustomReportRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    measures: list[str]
    dimensions: list[str] = []
    filters: dict[str, list[str | None]] = {}
    start: str | None = msgspec.field(default=None, name="from")
    end: str | None = msgspec.field(default=None, name="to")
    granularity: str | None = None


class CustomReport(msgspec.Struct, frozen=True):
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    granularity: str
    measures: list[str]
    dimensions: list[str]
    rows: list[dict[str, Any]]


def _known(field: str, names: list[str], allowed: dict[str, Any], at_least: int) -> None:
    unknown = [n for n in names if n not in allowed]
    if unknown or len(names) < at_least or len(set(names)) != len(names):
        raise InvalidValueError(
            field,
            f"unknown or repeated: {', '.join(unknown) or '(none)'}; allowed: "
            + ", ".join(allowed),
        )


def _filter_value(column: str, value: str | None) -> Any:
    if value is None:
        return NIL if column in UUID_COLUMNS else ""
    if column not in UUID_COLUMNS:
        return value
    try:
        return UUID(value)
    except ValueError:
        raise InvalidValueError("filters", f"{value!r} is not an id") from None


def validate(req: CustomReportRequest) -> None:
    _known("measures", req.measures, MEASURES | dict.fromkeys(SLA_MEASURES), 1)
    _known("dimensions", req.dimensions, DIMENSIONS, 0)
    filterable = {k: v for k, v in DIMENSIONS.items() if k != "period"}
    _known("filters", list(req.filters), filterable, 0)
    if any(m in SLA_MEASURES for m in req.measures):
        other = sorted(set(req.dimensions) - SLA_DIMENSIONS) or sorted(
            set(req.filters) - SLA_DIMENSIONS
        )
        if other:
            raise InvalidValueError(
                "dimensions" if set(req.dimensions) - SLA_DIMENSIONS else "filters",
                f"the response SLA measures go only by period and assignee, not {other[0]}",
            )


def source_table(columns: set[str]) -> sa.Table:
    """The roll-up with the fewest dimensions that keeps `columns`, else the facts table."""
    fitting = [name for name, dims in ROLLUPS.items() if columns <= set(dims)]
    if not fitting:
        return rm_analytics_facts
    return ROLLUP_TABLES[min(fitting, key=lambda name: len(ROLLUPS[name]))]


def custom_report(
    conn: Connection,
    org: UUID,
    period: Period,
    req: CustomReportRequest,
    only_member: UUID | None,
) -> CustomReport:
    """Sales (`only_member`) grouping or filtering by assignee see only their own figures."""
    validate(req)
    mine = only_member if "assignee" in req.dimensions or "assignee" in req.filters else None
    base = [m for m in req.measures if m in MEASURES]
    totals: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(dict)
    if base:
        for key, values in _rollup_totals(conn, org, period, req, base, mine).items():
            totals[key].update(values)
    if any(m in SLA_MEASURES for m in req.measures):
        for key, (in_time, breaches) in _sla_totals(conn, org, period, req, mine).items():
            totals[key].update(
                sla_first_responses_in_time=in_time,
                sla_breaches=breaches,
                sla_compliance_rate=ratio(in_time, in_time + breaches),
            )
    if len(totals) > MAX_ROWS:
        raise InvalidValueError("dimensions", f"the report would exceed {MAX_ROWS} rows")
    empty: dict[str, Any] = dict.fromkeys(req.measures, 0)
    empty |= {
        m: money(0) for m in req.measures if m in MEASURES and MEASURES[m][1] == "value_cents"
    }
    empty |= {m: None for m in req.measures if m == "sla_compliance_rate"}
    rows = [
        dict(zip(req.dimensions, key, strict=True)) | {m: v.get(m, empty[m]) for m in req.measures}
        for key, v in sorted(totals.items(), key=lambda kv: tuple(x or "" for x in kv[0]))
    ]
    return CustomReport(
        start=str(period.start),
        end=str(period.end),
        granularity=period.granularity,
        measures=req.measures,
        dimensions=req.dimensions,
        rows=rows,
    )


def _rollup_totals(
    conn: Connection,
    org: UUID,
    period: Period,
    req: CustomReportRequest,
    measures: list[str],
    only_member: UUID | None,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The analytics measures of the report, per key of its dimensions."""
    columns = {DIMENSIONS[n] for n in (*req.dimensions, *req.filters)} - {"day"}
    columns |= {extra[0] for m in measures if (extra := MEASURES[m][2]) is not None}
    if only_member is not None:
        columns.add("member_id")
    table = source_table(columns)
    d = table.c
    groups = [d[DIMENSIONS[name]] for name in req.dimensions]
    sums = []
    for name in measures:
        kind, column, extra = MEASURES[name]
        condition = d.kind == kind
        if extra is not None:
            condition = sa.and_(condition, d[extra[0]] == extra[1])
        sums.append(sa.func.sum(sa.case((condition, d[column]), else_=0)))
    kinds = sorted({MEASURES[m][0] for m in measures})
    if table is rm_analytics_facts:
        days = sa.and_(d.day >= period.start, d.day <= period.end)
    else:
        days = in_period(table, period, "period" in req.dimensions)
    query = sa.select(*groups, *sums).where(d.organization_id == org, d.kind.in_(kinds), days)
    for name, values in req.filters.items():
        column = DIMENSIONS[name]
        query = query.where(d[column].in_([_filter_value(column, v) for v in values]))
    if only_member is not None:
        query = query.where(d.member_id == only_member)  # per-member figures: their own only
    if groups:
        query = query.group_by(*groups)
    totals: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * len(measures))
    for row in conn.execute(query):
        acc = totals[_key(req, period, row)]
        for i, value in enumerate(row[len(groups) :]):
            acc[i] += int(value or 0)
    shapes = [money if MEASURES[m][1] == "value_cents" else int for m in measures]
    return {
        key: {m: shape(x) for m, shape, x in zip(measures, shapes, v, strict=True)}
        for key, v in totals.items()
    }


def _sla_totals(
    conn: Connection,
    org: UUID,
    period: Period,
    req: CustomReportRequest,
    only_member: UUID | None,
) -> dict[tuple[Any, ...], list[int]]:
    """(in time, breaches) per key of the report's dimensions (period and assignee at most)."""
    d = rm_sla_daily.c
    names = {"period": d.day, "assignee": d.member_id}
    groups = [names[name] for name in req.dimensions]
    query = sa.select(*groups, sa.func.sum(d.in_time), sa.func.sum(d.breached)).where(
        d.organization_id == org, d.day >= period.start, d.day <= period.end
    )
    for values in req.filters.values():  # only assignee passes validation
        query = query.where(d.member_id.in_([_filter_value("member_id", v) for v in values]))
    if only_member is not None:
        query = query.where(d.member_id == only_member)
    if groups:
        query = query.group_by(*groups)
    totals: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for row in conn.execute(query):
        acc = totals[_key(req, period, row)]
        acc[0] += int(row[-2] or 0)
        acc[1] += int(row[-1] or 0)
    return totals


def _key(req: CustomReportRequest, period: Period, row: Any) -> tuple[Any, ...]:
    return tuple(
        str(bucket(v, period.granularity)) if n == "period" else key_text(v)
        for n, v in zip(req.dimensions, row, strict=False)
    )
