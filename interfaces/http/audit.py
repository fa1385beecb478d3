"""Audit trail route: every event of the organization, newest first."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import FromQuery, QueryParameter

from application import queries
from application.permissions import Permission
from interfaces.http.common import answer, parse_time, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard


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
    ) -> Response[queries.Page]:
        """Who did what, when, from where, with the before/after of each changed field."""
        headers = read_after(services, request, "audit")
        with services.reading(ctx.organization_id) as conn:
            page = queries.audit_events(
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
