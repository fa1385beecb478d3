"""Audit routes: the trail (every event of the organization, newest first, from its read
model), the hash-chained export of the whole history, and any aggregate as it was at a version
or a time; the last two read the event log itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from application.audit import export as audit
from application.audit import history as audit_history
from application.audit import trail
from application.paging import Page
from application.permissions import Permission
from interfaces.http.common import answer, parse_time, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

NDJSON = "application/x-ndjson"


class AuditController(Controller):
    path = "/audit"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["audit"]  # noqa: RUF012

    @get(
        "/events",
        opt={"permission": Permission.AUDIT_READ},
        sync_to_thread=True,
        operation_id="auditEvents",
    )
    def events(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        resource_id: FromQuery[UUID | None] = None,
        event_type: Annotated[str | None, QueryParameter(max_length=100)] = None,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 100,
        cursor: FromQuery[str | None] = None,
    ) -> Response[Page]:
        """Who did what, when, from where, with the before/after of each changed field."""
        headers = read_after(services, request, "audit")
        with services.reading(ctx.organization_id) as conn:
            page = trail.audit_events(
                conn,
                ctx.organization_id,
                resource_id=resource_id,
                event_type=event_type,
                since=parse_time("since", since),
                until=parse_time("until", until),
                limit=limit,
                cursor=cursor,
            )
        return answer(page, headers)

    @get(
        "/export",
        opt={"permission": Permission.AUDIT_EXPORT},
        sync_to_thread=True,
        operation_id="auditExport",
        media_type=NDJSON,
        response_description="One JSON object per line: the events in log order, then a trailer",
    )
    def export(
        self,
        ctx: CtxDep,
        services: ServicesDep,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        types: FromQuery[str | None] = None,
    ) -> Stream:
        """The organization's whole history, hash-chained, as NDJSON: one line per stored event
        in log order, then a trailer with the count and the final hash. `since` (inclusive) and
        `until` (exclusive) filter by event time, `types` by comma-separated event type names
        (`Lead.MovedToStage`). `crm audit verify FILE` checks a saved export offline; the format
        is defined in `application/audit/chain.py`. Every export is recorded in the audit
        trail (`HistoryExport.Made`)."""
        filters = audit.parse_filters(since, until, types)
        export = audit.start_export(
            services.app, ctx.organization_id, filters, ctx.actor, channel="http"
        )
        name = f"history-{ctx.organization_id}-{export.up_to}.ndjson"
        return Stream(
            _off_the_loop(iter(audit.ExportLines(services.app, export))),
            media_type=NDJSON,
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Export-Position": str(export.position),
            },
        )

    @get(
        "/aggregates/{aggregate_id:uuid}",
        opt={"permission": Permission.AUDIT_EXPORT},
        sync_to_thread=True,
        operation_id="auditAggregateAsOf",
    )
    def aggregate(
        self,
        aggregate_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        version: Annotated[int | None, QueryParameter(ge=1)] = None,
        at: FromQuery[str | None] = None,
    ) -> audit_history.AggregateAsOf:
        """Any aggregate of the organization (lead, pipeline, organization, conversation, call,
        …) rebuilt from its stored events: at `version`, or as it was at time `at` (ISO 8601,
        naive means UTC), or now if neither is given; with the stored event that produced
        that version. 404 for an id the organization does not own; 422 for both parameters, a
        version beyond the current one, or a time before the aggregate existed. Same audience
        as the export: admins, and API keys with `audit:read`."""
        return audit_history.aggregate_as_of(
            services.app,
            ctx.organization_id,
            aggregate_id,
            version=version,
            at=parse_time("at", at),
        )


async def _off_the_loop(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Read each chunk on the thread pool. A failure ends the response abruptly (no trailer, so
    the cut file never verifies): Litestar's own wrapper would end a sync stream cleanly on a
    ValueError."""
    loop = asyncio.get_running_loop()
    while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
        yield chunk
