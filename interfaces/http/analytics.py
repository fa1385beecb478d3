"""Analytics routes: pipeline funnel, lead figures, team, communication, custom reports.

Every route answers JSON, or CSV (`Accept: text/csv` or `?format=csv`): the same report flattened
to long rows `section,index,field,value` — one row per number, so one header fits every report.
Sales see the organization's totals and only their own per-member rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.openapi.spec import Example
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from application import analytics as q
from application import analytics_report as custom
from application import analytics_team as team_q
from application.context import Ctx
from application.permissions import Permission, own_leads_only
from interfaces.http.common import read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.ANALYTICS_READ}
CSV = "text/csv"
Day = Annotated[str | None, QueryParameter(max_length=40)]
From = Annotated[str | None, QueryParameter(name="from", max_length=40)]
Choice = Annotated[str | None, QueryParameter(max_length=20)]
Hours = Annotated[int, QueryParameter(ge=1, le=24 * 366)]
Format = Annotated[
    str | None,
    QueryParameter(
        max_length=20,
        description="`json` (the default) or `csv`; without it, `Accept: text/csv` asks for CSV.",
        examples=[Example(value="csv")],
    ),
]


def own_member(ctx: Ctx) -> UUID | None:
    """Sales read only their own per-member rows; everyone else reads all of them."""
    if own_leads_only(ctx):
        return ctx.user_id
    return None


def wants_csv(request: Request[Any, Any, Any], format: str | None) -> bool:
    if format is not None:
        return q.choice("format", format, ("json", "csv"), "json") == "csv"
    return CSV in request.headers.get("accept", "")


def csv_rows(report: Any) -> Iterator[str]:
    """The report as long rows: section (a list's name, or `summary`), index, field, value."""
    data = msgspec.to_builtins(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(*cells: Any) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(["" if c is None else c for c in cells])
        return buffer.getvalue()

    yield line("section", "index", "field", "value")
    for key, value in data.items():
        if isinstance(value, list):
            for i, item in enumerate(value):
                cells = item.items() if isinstance(item, dict) else [("value", item)]
                for field, cell in cells:
                    yield line(key, i, field, cell)
        elif isinstance(value, dict):
            for field, cell in value.items():
                yield line(key, 0, field, cell)
        else:
            yield line("summary", 0, key, value)


def respond(
    request: Request[Any, Any, Any], format: str | None, report: Any, headers: dict[str, str]
) -> Response[Any]:
    if wants_csv(request, format):
        return Stream(csv_rows(report), media_type=f"{CSV}; charset=utf-8", headers=headers)
    return Response(report, headers=headers or None)


class AnalyticsController(Controller):
    path = "/analytics"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["analytics"]  # noqa: RUF012
    opt = {"csv": True}  # noqa: RUF012 - every route answers CSV; see interfaces.http.openapi

    @get("/pipeline", opt=READ, sync_to_thread=True, operation_id="analyticsPipeline")
    def pipeline(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        start: From = None,
        to: Day = None,
        granularity: Choice = None,
        format: Format = None,
    ) -> Response[q.PipelineReport]:
        """Per stage now (count, value, weighted value, age) and for the period (entries,
        conversion, transitions, win rate, sales cycle, time in stage)."""
        headers = read_after(services, request, "analytics", "leads")
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, granularity, now)
            report = q.pipeline_report(conn, ctx.organization_id, period, now)
        return respond(request, format, report, headers)

    @get("/leads", opt=READ, sync_to_thread=True, operation_id="analyticsLeads")
    def leads(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        start: From = None,
        to: Day = None,
        granularity: Choice = None,
        group_by: Choice = None,
        format: Format = None,
    ) -> Response[q.LeadsReport]:
        """New, won, lost and won value per bucket, grouped by source, assignee or stage."""
        headers = read_after(services, request, "analytics")
        group = q.choice("group_by", group_by, tuple(q.GROUPS), "source")
        only = own_member(ctx) if group == "assignee" else None
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, granularity, now)
            report = q.leads_report(conn, ctx.organization_id, period, group, only)
        return respond(request, format, report, headers)

    @get("/team", opt=READ, sync_to_thread=True, operation_id="analyticsTeam")
    def team(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        start: From = None,
        to: Day = None,
        format: Format = None,
    ) -> Response[team_q.TeamReport]:
        """Per member: leads assigned, moves, notes, won/lost, messages, calls, talk time,
        median first response; sales get only their own row."""
        headers = read_after(services, request, "analytics")
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, None, now)
            report = team_q.team_report(conn, ctx.organization_id, period, own_member(ctx))
        return respond(request, format, report, headers)

    @get("/communication", opt=READ, sync_to_thread=True, operation_id="analyticsCommunication")
    def communication(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        start: From = None,
        to: Day = None,
        granularity: Choice = None,
        waiting_hours: Hours = 24,
        format: Format = None,
    ) -> Response[team_q.CommunicationReport]:
        """Messages in/out by channel and provider, calls by outcome, first-response median
        and p90, conversations waiting longer than `waiting_hours` for a reply."""
        headers = read_after(services, request, "analytics")
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, granularity, now)
            report = team_q.communication_report(
                conn, ctx.organization_id, period, waiting_hours, now
            )
        return respond(request, format, report, headers)

    @post(
        "/custom-report",
        opt=READ,
        sync_to_thread=True,
        status_code=200,
        operation_id="analyticsCustomReport",
    )
    def custom_report(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[custom.CustomReportRequest],
        ctx: CtxDep,
        services: ServicesDep,
        format: Format = None,
    ) -> Response[custom.CustomReport]:
        """Whitelisted measures by whitelisted dimensions (see the README for both lists)."""
        headers = read_after(services, request, "analytics")
        custom.validate(data)
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(
                conn, ctx.organization_id, data.start, data.end, data.granularity, now
            )
            report = custom.custom_report(conn, ctx.organization_id, period, data, own_member(ctx))
        return respond(request, format, report, headers)
