"""Pipeline use cases: add, change, reorder and remove stages."""

from __future__ import annotations

from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.leads.queries import lead_ids_in_stage
from application.ports import ReadModels
from application.store import CrmApplication
from domain.errors import StageInUseError
from domain.lead import Lead
from domain.pipeline import Pipeline, default_pipeline_id
from domain.values import StageType


class AddStage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    color: str
    stage_type: StageType = StageType.OPEN
    position: int | None = None
    win_probability: int | None = None


class UpdateStage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Absent fields stay as they are; `win_probability: null` derives it from the place again."""

    name: str | None = None
    color: str | None = None
    win_probability: int | None | msgspec.UnsetType = msgspec.UNSET


class StageWritten(msgspec.Struct, frozen=True):
    id: UUID
    stage_id: UUID
    version: int
    position: int


def _pipeline(app: CrmApplication, ctx: Ctx) -> Pipeline:
    return app.load(Pipeline, default_pipeline_id(ctx.organization_id), ctx.organization_id)


def _written(app: CrmApplication, pipeline: Pipeline, stage_id: UUID) -> StageWritten:
    version = pipeline.version
    return StageWritten(pipeline.id, stage_id, version, app.commit(pipeline))


def add_stage(app: CrmApplication, cmd: AddStage, ctx: Ctx) -> StageWritten:
    pipeline = _pipeline(app, ctx)
    stage = pipeline.add_stage(
        name=cmd.name,
        color=cmd.color,
        stage_type=cmd.stage_type,
        position=cmd.position,
        win_probability=cmd.win_probability,
        actor=ctx.actor,
    )
    return _written(app, pipeline, stage.id)


def update_stage(app: CrmApplication, stage_id: UUID, cmd: UpdateStage, ctx: Ctx) -> StageWritten:
    pipeline = _pipeline(app, ctx)
    pipeline.stage(stage_id)
    if cmd.name is not None:
        pipeline.rename_stage(stage_id, cmd.name, actor=ctx.actor)
    if cmd.color is not None:
        pipeline.recolour_stage(stage_id, cmd.color, actor=ctx.actor)
    if not isinstance(cmd.win_probability, msgspec.UnsetType):
        pipeline.set_stage_win_probability(stage_id, cmd.win_probability, actor=ctx.actor)
    return _written(app, pipeline, stage_id)


def reorder_stages(app: CrmApplication, stage_ids: list[UUID], ctx: Ctx) -> Written:
    pipeline = _pipeline(app, ctx)
    pipeline.reorder(stage_ids, actor=ctx.actor)
    version = pipeline.version
    return Written(pipeline.id, version, app.commit(pipeline))


def remove_stage(
    app: CrmApplication,
    stage_id: UUID,
    move_leads_to: UUID | None,
    ctx: Ctx,
    read_models: ReadModels,
) -> StageWritten:
    """Remove a stage; its leads move to `move_leads_to` in the same transaction."""
    pipeline = _pipeline(app, ctx)
    pipeline.remove_stage(stage_id, leads_moved_to=move_leads_to, actor=ctx.actor)
    org = ctx.organization_id
    # the leads read model must have seen every event before it is trusted with who is where
    read_models.wait_for(["leads"], app.recorder.max_notification_id() or 0)
    with read_models.reading(org) as conn:
        lead_ids = lead_ids_in_stage(conn, org, stage_id)
    if lead_ids and move_leads_to is None:
        raise StageInUseError(f"stage {stage_id} holds {len(lead_ids)} leads: give move_leads_to")
    leads = [app.load(Lead, i, ctx.organization_id) for i in lead_ids]
    if move_leads_to is not None:
        target = pipeline.stage(move_leads_to).ref
        for lead in leads:
            if lead.stage_id == stage_id and not lead.archived:
                lead.move_to(target, actor=ctx.actor)
    version = pipeline.version
    return StageWritten(pipeline.id, stage_id, version, app.commit(pipeline, *leads))
