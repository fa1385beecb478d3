"""Analytics routes: pipeline funnel, lead figures, team, communication, custom reports.

Every route answers JSON, or CSV (`Accept: text/csv` or `?format=csv`): one table of the report
per request, `?section=` naming which (each list of the report, its top-level objects and a
`summary` row; see `interfaces.http.csv_tables`), with the report's main list as the default.
Sales see the organization's totals and only their own per-member rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.openapi.spec import Example
from litestar.params import JSONBody, QueryParameter

from application.analytics import queries as q
from application.analytics import report as custom
from application.analytics import team as team_q
from application.context import Ctx
from application.permissions import Permission, own_leads_only
from interfaces.http.common import read_after
from interfaces.http.csv_tables import MEDIA_TYPE, Tables
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


def respond(
    request: Request[Any, Any, Any],
    format: str | None,
    report: Any,
    headers: dict[str, str],
    tables: Tables,
    section: str,
) -> Response[Any]:
    if wants_csv(request, format):
        name = tables.filename(report, section)
        return Response(
            tables.render(report, section).encode("utf-8"),
            media_type=MEDIA_TYPE,
            headers=headers | {"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(report, headers=headers or None)


def section_query(tables: Tables) -> Any:
    """The `section` query parameter of a route answering `tables`, documented from them."""
    return QueryParameter(
        max_length=40,
        description=(
            f"CSV only: the table to answer, one of {', '.join(tables.names)} "
            f"(default `{tables.default}`); anything else is a 422. "
            "Each list of the report is a table of its own:\n" + tables.describe()
        ),
        examples=[Example(value=tables.default)],
        schema_extra={"enum": list(tables.names)},
    )


PIPELINE = Tables("pipeline", q.PipelineReport, "stages")
LEADS = Tables("leads", q.LeadsReport, "groups")
TEAM = Tables("team", team_q.TeamReport, "members")
COMMUNICATION = Tables("communication", team_q.CommunicationReport, "messages")
CUSTOM = Tables("custom-report", custom.CustomReport, "rows", {"rows": ("dimensions", "measures")})
PipelineSection = Annotated[str | None, section_query(PIPELINE)]
LeadsSection = Annotated[str | None, section_query(LEADS)]
TeamSection = Annotated[str | None, section_query(TEAM)]
CommunicationSection = Annotated[str | None, section_query(COMMUNICATION)]
CustomSection = Annotated[str | None, section_query(CUSTOM)]


class AnalyticsController(Controller):
    path = "/analytics"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["analytics"]  # noqa: RUF012

    @get(
        "/pipeline",
        opt=READ | {"csv": PIPELINE},
        sync_to_thread=True,
        operation_id="analyticsPipeline",
    )
    def pipeline(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        start: From = None,
        to: Day = None,
        granularity: Choice = None,
        format: Format = None,
        section: PipelineSection = None,
    ) -> Response[q.PipelineReport]:
        """Per stage now (count, value, weighted value, age) and for the period (entries,
        conversion, transitions, win rate, sales cycle, time in stage)."""
        chosen = PIPELINE.choose(section)
        headers = read_after(services, request, "analytics", "leads")
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, granularity, now)
            report = q.pipeline_report(conn, ctx.organization_id, period, now)
        return respond(request, format, report, headers, PIPELINE, chosen)

    @get("/leads", opt=READ | {"csv": LEADS}, sync_to_thread=True, operation_id="analyticsLeads")
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
        section: LeadsSection = None,
    ) -> Response[q.LeadsReport]:
        """New, won, lost and won value per bucket, grouped by source, assignee or stage."""
        chosen = LEADS.choose(section)
        headers = read_after(services, request, "analytics")
        group = q.choice("group_by", group_by, tuple(q.GROUPS), "source")
        only = own_member(ctx) if group == "assignee" else None
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, granularity, now)
            report = q.leads_report(conn, ctx.organization_id, period, group, only)
        return respond(request, format, report, headers, LEADS, chosen)

    @get("/team", opt=READ | {"csv": TEAM}, sync_to_thread=True, operation_id="analyticsTeam")
    def team(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        start: From = None,
        to: Day = None,
        format: Format = None,
        section: TeamSection = None,
    ) -> Response[team_q.TeamReport]:
        """Per member: leads assigned, moves, notes, won/lost, messages, calls, talk time,
        median first response, response SLA (in time, breaches, compliance rate); sales get only
        their own row."""
        chosen = TEAM.choose(section)
        headers = read_after(services, request, "analytics", "sla")  # SLA figures: their own model
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, None, now)
            report = team_q.team_report(conn, ctx.organization_id, period, own_member(ctx))
        return respond(request, format, report, headers, TEAM, chosen)

    @get(
        "/communication",
        opt=READ | {"csv": COMMUNICATION},
        sync_to_thread=True,
        operation_id="analyticsCommunication",
    )
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
        section: CommunicationSection = None,
    ) -> Response[team_q.CommunicationReport]:
        """Messages in/out by channel and provider, calls by outcome, first-response median
        and p90, conversations waiting longer than `waiting_hours` for a reply."""
        chosen = COMMUNICATION.choose(section)
        headers = read_after(services, request, "analytics")
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(conn, ctx.organization_id, start, to, granularity, now)
            report = team_q.communication_report(
                conn, ctx.organization_id, period, waiting_hours, now
            )
        return respond(request, format, report, headers, COMMUNICATION, chosen)

    @post(
        "/custom-report",
        opt=READ | {"csv": CUSTOM},
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
        section: CustomSection = None,
    ) -> Response[custom.CustomReport]:
        """Whitelisted measures by whitelisted dimensions (see the README for both lists)."""
        chosen = CUSTOM.choose(section)
        headers = read_after(services, request, "analytics", "sla")  # SLA figures: their own model
        custom.validate(data)
        now = datetime.now(UTC)
        with services.reading(ctx.organization_id) as conn:
            period = q.resolve_period(
                conn, ctx.organization_id, data.start, data.end, data.granularity, now
            )
            report = custom.custom_report(conn, ctx.organization_id, period, data, own_member(ctx))
        return respond(request, format, report, headers, CUSTOM, chosen)
