"""Lead routes: capture, change, move, assign, notes, won/lost/reopen, archive, reads."""

from __future__ import annotations

import builtins
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from application.audit import history
from application.context import Written
from application.leads import commands as cmds
from application.leads import queries
from application.paging import Page
from application.permissions import Permission
from domain.lead import Lead
from interfaces.http.common import answer, parse_time, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.LEADS_READ}
# which leads a role may change or capture for is the use cases' rule (application.permissions)
WRITE = {"permission": Permission.LEADS_WRITE}


class MoveBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stage_id: UUID
    expected_version: int | None = None


class AssignBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: UUID | None


class NoteBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: str


class LostBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: str | None = None


class ReopenBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stage_id: UUID | None = None


class LeadAsOf(msgspec.Struct, frozen=True):
    id: UUID
    version: int
    as_of: str
    state: dict[str, Any]


class LeadController(Controller):
    path = "/crm/leads"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["leads"]  # noqa: RUF012

    @post("/", opt=WRITE, sync_to_thread=True, operation_id="captureLead")
    def capture(
        self,
        data: JSONBody[cmds.CaptureLead],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Capture a new lead into an open stage (the first one by default). Without
        `assigned_to` (from an admin, a manager or a key) the assignment rules may assign it."""
        return cmds.capture_lead(services.app, data, ctx, read_models=services)

    @get("/", opt=READ, sync_to_thread=True, operation_id="listLeads")
    def list(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        stage_id: FromQuery[UUID | None] = None,
        assigned_to: FromQuery[UUID | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        status: FromQuery[str | None] = None,
        include_archived: FromQuery[bool] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> Response[Page]:
        """List leads, newest first, with keyset pagination."""
        headers = read_after(services, request, "leads")
        with services.reading(ctx.organization_id) as conn:
            page = queries.list_leads(
                conn,
                ctx.organization_id,
                stage_id=stage_id,
                assigned_to=assigned_to,
                q=q,
                status=status,
                include_archived=include_archived,
                limit=limit,
                cursor=cursor,
            )
        return answer(page, headers)

    @get("/{lead_id:uuid}", opt=READ, sync_to_thread=True, operation_id="getLead")
    def detail(
        self,
        request: Request[Any, Any, Any],
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Response[queries.LeadView]:
        headers = read_after(services, request, "leads")
        with services.reading(ctx.organization_id) as conn:
            return answer(queries.get_lead(conn, ctx.organization_id, lead_id), headers)

    @put("/{lead_id:uuid}", opt=WRITE, sync_to_thread=True, operation_id="changeLead")
    def change(
        self,
        lead_id: FromPath[UUID],
        data: JSONBody[cmds.ChangeLeadDetails],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Change some of a lead's details; `expected_version` guards against lost updates."""
        return cmds.change_lead_details(services.app, lead_id, data, ctx)

    @delete(
        "/{lead_id:uuid}",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="archiveLead",
    )
    def archive(
        self,
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Archive a lead: it leaves the board and lists; its history is kept."""
        return cmds.archive_lead(services.app, lead_id, ctx)

    @patch("/{lead_id:uuid}/stage", opt=WRITE, sync_to_thread=True, operation_id="moveLead")
    def move(
        self,
        lead_id: FromPath[UUID],
        data: JSONBody[MoveBody],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Move a lead to a stage; 409 with the current version if someone moved it first."""
        return cmds.move_lead_to_stage(
            services.app, lead_id, data.stage_id, data.expected_version, ctx
        )

    @put("/{lead_id:uuid}/assign", opt=WRITE, sync_to_thread=True, operation_id="assignLead")
    def assign(
        self,
        lead_id: FromPath[UUID],
        data: JSONBody[AssignBody],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        return cmds.assign_lead(services.app, lead_id, data.user_id, ctx)

    @post("/{lead_id:uuid}/notes", opt=WRITE, sync_to_thread=True, operation_id="addNote")
    def note(
        self,
        lead_id: FromPath[UUID],
        data: JSONBody[NoteBody],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        return cmds.add_note(services.app, lead_id, data.text, ctx)

    @post(
        "/{lead_id:uuid}/won",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="winLead",
    )
    def won(
        self,
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        return cmds.win_lead(services.app, lead_id, ctx)

    @post(
        "/{lead_id:uuid}/lost",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="loseLead",
    )
    def lost(
        self,
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        data: JSONBody[LostBody | None] = None,
    ) -> Written:
        return cmds.lose_lead(services.app, lead_id, data.reason if data else None, ctx)

    @post(
        "/{lead_id:uuid}/reopen",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="reopenLead",
    )
    def reopen(
        self,
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        data: JSONBody[ReopenBody | None] = None,
    ) -> Written:
        return cmds.reopen_lead(services.app, lead_id, data.stage_id if data else None, ctx)

    @get("/{lead_id:uuid}/activities", opt=READ, sync_to_thread=True, operation_id="leadTimeline")
    def activities(
        self,
        request: Request[Any, Any, Any],
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 100,
        cursor: FromQuery[str | None] = None,
    ) -> Response[Page]:
        """The lead's timeline, newest first."""
        headers = read_after(services, request, "timeline", "leads")
        with services.reading(ctx.organization_id) as conn:
            queries.get_lead(conn, ctx.organization_id, lead_id)
            page = queries.timeline(conn, ctx.organization_id, lead_id, limit=limit, cursor=cursor)
        return answer(page, headers)

    @get("/{lead_id:uuid}/history", opt=READ, sync_to_thread=True, operation_id="leadHistory")
    def history(
        self,
        lead_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        at: FromQuery[str | None] = None,
    ) -> builtins.list[history.ProducingEvent] | LeadAsOf:
        """The lead's stored events, or with `?at=` the lead as it was at that time."""
        moment = parse_time("at", at)
        org = ctx.organization_id
        if moment is None:
            return history.aggregate_history(services.app, org, lead_id, kind=Lead)
        lead = history.aggregate_as_of(services.app, org, lead_id, at=moment, kind=Lead)
        return LeadAsOf(
            id=lead_id, version=lead.version, as_of=moment.isoformat(), state=lead.state
        )
