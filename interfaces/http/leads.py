"""Lead routes: capture, change, move, assign, notes, won/lost/reopen, archive, reads."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from application import leads as cmds
from application import queries
from application.context import Ctx, Written
from application.permissions import Permission
from domain.errors import InvalidValueError
from domain.lead import Lead
from interfaces.http.common import answer, parse_time, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard
from interfaces.services import Services

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


class HistoryEvent(msgspec.Struct, frozen=True):
    type: str
    version: int
    time: str
    actor: dict[str, Any]
    data: dict[str, Any]


class LeadAsOf(msgspec.Struct, frozen=True):
    id: UUID
    version: int
    as_of: str
    state: dict[str, Any]


def _jsonable(value: Any) -> Any:
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


def _history(services: Services, ctx: Ctx, lead_id: UUID) -> list[HistoryEvent]:
    services.app.load(Lead, lead_id, ctx.organization_id)
    out = []
    for e in services.app.events.get(lead_id):
        data = {k: v for k, v in vars(e).items() if not k.startswith("originator_")}
        actor = data.pop("actor", None)
        for k in ("timestamp", "organization_id"):
            data.pop(k, None)
        out.append(
            HistoryEvent(
                type=type(e).__qualname__,
                version=e.originator_version,
                time=e.timestamp.isoformat(),
                actor=_jsonable(actor) or {},
                data=_jsonable(data),
            )
        )
    return out


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
        """Capture a new lead into an open stage (the first one by default)."""
        return cmds.capture_lead(services.app, data, ctx)

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
    ) -> Response[queries.Page]:
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
    ) -> Response[queries.Page]:
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
    ) -> list[HistoryEvent] | LeadAsOf:
        """The lead's stored events, or with `?at=` the lead as it was at that time."""
        moment = parse_time("at", at)
        if moment is None:
            return _history(services, ctx, lead_id)
        services.app.load(Lead, lead_id, ctx.organization_id)
        version = 0
        for e in services.app.events.get(lead_id):
            if e.timestamp <= moment:
                version = e.originator_version
        if version == 0:
            raise InvalidValueError("at", "the lead did not exist yet at that time")
        lead = services.app.load_as_of(lead_id, version=version)
        assert lead is not None
        state = {k: v for k, v in vars(lead).items() if not k.startswith("_")}
        return LeadAsOf(
            id=lead_id, version=version, as_of=moment.isoformat(), state=_jsonable(state)
        )
