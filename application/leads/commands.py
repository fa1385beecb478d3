"""Lead use cases: one command struct and one handler per change a user can make."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.permissions import capture_assignee, check_lead_owner
from application.ports import ReadModels
from application.store import CrmApplication
from application.work.assignment import capture_routed
from domain.errors import (
    InvalidValueError,
    NotFoundError,
    StageNotInPipelineError,
    VersionConflictError,
)
from domain.lead import EDITABLE_FIELDS, Lead
from domain.mentions import mentioned_ids
from domain.organization import Organization
from domain.pipeline import Pipeline, default_pipeline_id
from domain.values import StageType

UNSET: Any = msgspec.UNSET


class CaptureLead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    full_name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    source: str | None = None
    estimated_value: Decimal | None = None
    custom_fields: dict[str, Any] | None = None
    stage_id: UUID | None = None
    assigned_to: UUID | None = None


class ChangeLeadDetails(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    expected_version: int | None = None
    full_name: str | msgspec.UnsetType = msgspec.UNSET
    email: str | None | msgspec.UnsetType = msgspec.UNSET
    phone: str | None | msgspec.UnsetType = msgspec.UNSET
    company: str | None | msgspec.UnsetType = msgspec.UNSET
    source: str | None | msgspec.UnsetType = msgspec.UNSET
    estimated_value: Decimal | None | msgspec.UnsetType = msgspec.UNSET
    custom_fields: dict[str, Any] | None | msgspec.UnsetType = msgspec.UNSET

    def details(self) -> dict[str, Any]:
        names = EDITABLE_FIELDS
        return {n: getattr(self, n) for n in names if getattr(self, n) is not msgspec.UNSET}


def _pipeline(app: CrmApplication, ctx: Ctx) -> Pipeline:
    # lead commands only read the pipeline's stages
    return app.view(Pipeline, default_pipeline_id(ctx.organization_id), ctx.organization_id)


def _lead(app: CrmApplication, lead_id: UUID, ctx: Ctx, expected: int | None = None) -> Lead:
    """The caller's lead to change: another organization's is not found, someone else's is
    refused to a member limited to their own leads (before any version check)."""
    lead = app.load(Lead, lead_id, ctx.organization_id)
    check_lead_owner(ctx, lead.assignee_id)
    if expected is not None and lead.version != expected:
        raise VersionConflictError(lead.id, lead.version, expected)
    return lead


def _check_member(app: CrmApplication, user_id: UUID | None, ctx: Ctx) -> None:
    # an assignee must belong to the lead's own organization
    if user_id is None:
        return
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    if org.role_of(user_id) is None:  # whoever they are elsewhere, not found here
        raise NotFoundError("member", user_id)


def _stage_of(pipeline: Pipeline, stage_id: UUID) -> Any:
    if all(s.id != stage_id for s in pipeline.stages):
        raise StageNotInPipelineError(stage_id)
    return pipeline.stage(stage_id).ref


def _written(app: CrmApplication, lead: Lead) -> Written:
    return Written(id=lead.id, version=lead.version, position=app.commit(lead))


def capture_lead(
    app: CrmApplication,
    cmd: CaptureLead,
    ctx: Ctx,
    *,
    lead_id: UUID | None = None,
    read_models: ReadModels | None = None,
) -> Written:
    """Capture a lead; `lead_id` (an import's deterministic id) makes a second capture of the
    same row a version conflict instead of a duplicate. A lead arriving without an assignee
    goes through the organization's assignment rules (least-open counts need `read_models`)."""
    assignee = capture_assignee(ctx, cmd.assigned_to)
    pipeline = _pipeline(app, ctx)
    if cmd.stage_id is None:
        stage = pipeline.first_stage_of(StageType.OPEN).ref
    else:
        stage = _stage_of(pipeline, cmd.stage_id)
    _check_member(app, assignee, ctx)
    details = {
        f: getattr(cmd, f)
        for f in ("full_name", "email", "phone", "company", "source", "estimated_value")
    }
    details["custom_fields"] = cmd.custom_fields
    lead = Lead.capture(
        organization_id=ctx.organization_id,
        pipeline_id=pipeline.id,
        stage=stage,
        details=details,
        assignee_id=assignee,
        actor=ctx.actor,
        id=lead_id,
    )
    if assignee is None:  # the assignment rules may assign it, in the same commit
        lead, position = capture_routed(app, read_models, lead, actor=ctx.actor)
        return Written(id=lead.id, version=lead.version, position=position)
    return _written(app, lead)


def change_lead_details(
    app: CrmApplication, lead_id: UUID, cmd: ChangeLeadDetails, ctx: Ctx
) -> Written:
    lead = _lead(app, lead_id, ctx, cmd.expected_version)
    lead.change_details(cmd.details(), actor=ctx.actor)
    return _written(app, lead)


def move_lead_to_stage(
    app: CrmApplication,
    lead_id: UUID,
    stage_id: UUID,
    expected_version: int | None,
    ctx: Ctx,
) -> Written:
    lead = _lead(app, lead_id, ctx, expected_version)
    stage = _stage_of(_pipeline(app, ctx), stage_id)
    lead.move_to(stage, actor=ctx.actor)
    return _written(app, lead)


def assign_lead(app: CrmApplication, lead_id: UUID, user_id: UUID | None, ctx: Ctx) -> Written:
    lead = _lead(app, lead_id, ctx)
    _check_member(app, user_id, ctx)
    lead.assign(user_id, actor=ctx.actor)
    return _written(app, lead)


def add_note(app: CrmApplication, lead_id: UUID, text: str, ctx: Ctx) -> Written:
    """Add a note; its `@[Name](member-id)` mentions of members of the organization are
    recorded (and notified). Any other id, a member of another organization's included, stays
    plain text: nothing tells the author whether it exists elsewhere."""
    lead = _lead(app, lead_id, ctx)
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    mentions = [m for m in mentioned_ids(text) if org.role_of(m) is not None]
    lead.add_note(text, actor=ctx.actor, mentions=mentions)
    return _written(app, lead)


def win_lead(app: CrmApplication, lead_id: UUID, ctx: Ctx) -> Written:
    lead = _lead(app, lead_id, ctx)
    lead.win(_pipeline(app, ctx).first_stage_of(StageType.WON).ref, actor=ctx.actor)
    return _written(app, lead)


def lose_lead(app: CrmApplication, lead_id: UUID, reason: str | None, ctx: Ctx) -> Written:
    lead = _lead(app, lead_id, ctx)
    stage = _pipeline(app, ctx).first_stage_of(StageType.LOST).ref
    lead.lose(stage, reason=reason, actor=ctx.actor)
    return _written(app, lead)


def reopen_lead(app: CrmApplication, lead_id: UUID, stage_id: UUID | None, ctx: Ctx) -> Written:
    lead = _lead(app, lead_id, ctx)
    pipeline = _pipeline(app, ctx)
    if stage_id is None:
        stage = pipeline.first_stage_of(StageType.OPEN).ref
    else:
        stage = _stage_of(pipeline, stage_id)
        if stage.stage_type is not StageType.OPEN:
            raise InvalidValueError("stage_id", "a lead is reopened into an open stage")
    lead.reopen(stage, actor=ctx.actor)
    return _written(app, lead)


def archive_lead(app: CrmApplication, lead_id: UUID, ctx: Ctx) -> Written:
    lead = _lead(app, lead_id, ctx)
    lead.archive(actor=ctx.actor)
    return _written(app, lead)
