"""Pipeline routes: stages (add, change, reorder, remove) and the Kanban board."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from application.context import Written
from application.leads import pipelines as cmds
from application.leads import queries
from application.permissions import Permission
from interfaces.http.common import answer, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.PIPELINE_READ}
WRITE = {"permission": Permission.PIPELINE_WRITE}


class ReorderBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    stage_ids: list[UUID]


class StageWrittenOut(msgspec.Struct, frozen=True):
    id: UUID
    pipeline_id: UUID
    version: int
    position: int


def _out(written: cmds.StageWritten) -> StageWrittenOut:
    return StageWrittenOut(written.stage_id, written.id, written.version, written.position)


class PipelineController(Controller):
    path = "/crm/pipeline"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["pipeline"]  # noqa: RUF012

    @get("/stages", opt=READ, sync_to_thread=True, operation_id="listStages")
    def stages(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Response[list[queries.StageView]]:
        headers = read_after(services, request, "leads")
        with services.reading(ctx.organization_id) as conn:
            return answer(queries.list_stages(conn, ctx.organization_id), headers)

    @post("/stages", opt=WRITE, sync_to_thread=True, operation_id="addStage")
    def add(
        self,
        data: JSONBody[cmds.AddStage],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> StageWrittenOut:
        return _out(cmds.add_stage(services.app, data, ctx))

    @put("/stages/order", opt=WRITE, sync_to_thread=True, operation_id="reorderStages")
    def reorder(
        self,
        data: JSONBody[ReorderBody],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        return cmds.reorder_stages(services.app, data.stage_ids, ctx)

    @put("/stages/{stage_id:uuid}", opt=WRITE, sync_to_thread=True, operation_id="updateStage")
    def update(
        self,
        stage_id: FromPath[UUID],
        data: JSONBody[cmds.UpdateStage],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> StageWrittenOut:
        """Rename, recolour and/or set the win probability of a stage.

        `win_probability` is a whole percent 0..100 (a won stage 100, a lost one 0); `null`
        derives it from the stage's place again, and leaving it out keeps it as it is.
        """
        return _out(cmds.update_stage(services.app, stage_id, data, ctx))

    @delete(
        "/stages/{stage_id:uuid}",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="removeStage",
    )
    def remove(
        self,
        stage_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
        move_leads_to: FromQuery[UUID | None] = None,
    ) -> StageWrittenOut:
        """Remove a stage; a stage holding leads needs `move_leads_to`."""
        return _out(cmds.remove_stage(services.app, stage_id, move_leads_to, ctx, services))

    @get("/board", opt=READ, sync_to_thread=True, operation_id="board")
    def board(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        cards_per_stage: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> Response[queries.Board]:
        """The Kanban board: stages in order with counts, value sums and their newest cards."""
        headers = read_after(services, request, "leads")
        with services.reading(ctx.organization_id) as conn:
            result = queries.board(conn, ctx.organization_id, cards_per_stage=cards_per_stage)
        return answer(result, headers)
