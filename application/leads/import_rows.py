"""One CSV row of a lead import as a capture: its command, its lead id, and its errors named
by the column at fault (the header the user wrote, not the field behind it).

A row's lead id follows from the organization and the row's key: `uuid5(organization,
"external_id:" + id)`, else `uuid5(organization, "contact:" + email + "|" + phone digits)`.
An external id that is the id of one of the organization's own leads (what the export writes)
is that lead.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from application.context import Ctx
from application.leads.commands import CaptureLead, _check_member, _stage_of
from application.leads.spreadsheet import CUSTOM, Layout, Row, RowError, decimal_of, uuid_of
from application.permissions import NotPermittedError, capture_assignee
from application.store import CrmApplication
from domain import values as v
from domain.errors import InvalidValueError, NotFoundError, StageNotInPipelineError
from domain.lead import Lead
from domain.pipeline import Pipeline
from domain.values import StageType


def check_capture(
    app: CrmApplication, ctx: Ctx, pipeline: Pipeline, cmd: CaptureLead, lead_id: UUID
) -> None:
    """What capture_lead checks, without saving (a dry run): assignee, stage, details."""
    assignee = capture_assignee(ctx, cmd.assigned_to)
    stage = (
        pipeline.first_stage_of(StageType.OPEN).ref
        if cmd.stage_id is None
        else _stage_of(pipeline, cmd.stage_id)
    )
    _check_member(app, assignee, ctx)
    details = {
        f: getattr(cmd, f)
        for f in ("full_name", "email", "phone", "company", "source", "estimated_value")
    }
    Lead.capture(
        organization_id=ctx.organization_id,
        pipeline_id=pipeline.id,
        stage=stage,
        details=details | {"custom_fields": cmd.custom_fields},
        assignee_id=assignee,
        actor=ctx.actor,
        id=lead_id,
    )


class RowPlanner:
    """Turns rows into (command, lead id) and failures into (column, message)."""

    def __init__(self, app: CrmApplication, ctx: Ctx, lay: Layout, pipeline: Pipeline) -> None:
        self.app, self.ctx, self.lay = app, ctx, lay
        self.stages = {s.name.strip().lower(): s.id for s in pipeline.stages}

    def column(self, name: str) -> str | None:
        if name == "custom_fields":
            return next((c for f, c in self.lay.column_of.items() if f.startswith(CUSTOM)), None)
        return self.lay.column_of.get({"stage_id": "stage"}.get(name, name))

    def explain(self, error: Exception) -> tuple[str | None, str]:
        if isinstance(error, InvalidValueError):
            return self.column(error.field), error.message
        if isinstance(error, StageNotInPipelineError):
            return self.column("stage"), "is not a stage of this organization's pipeline"
        if isinstance(error, NotFoundError) and error.kind == "member":
            return self.column("assigned_to"), "is not a member of this organization"
        if isinstance(error, NotPermittedError):
            return self.column("assigned_to"), error.reason
        return None, str(error)

    def command(self, row: Row) -> tuple[CaptureLead, UUID]:
        full_name = row.get("full_name")
        if full_name is None:
            raise RowError(self.column("full_name"), "is required")
        command = CaptureLead(
            full_name=full_name,
            email=row.get("email"),
            phone=row.get("phone"),
            company=row.get("company"),
            source=row.get("source"),
            estimated_value=self._money(row.get("estimated_value")),
            custom_fields=row.custom(),
            stage_id=self._stage(row.get("stage")),
            assigned_to=self._member(row.get("assigned_to")),
        )
        return command, self._lead_id(row)

    def _money(self, text: str | None) -> Any:
        if text is None:
            return None
        try:
            return decimal_of(text)
        except ValueError:
            raise RowError(self.column("estimated_value"), "is not a number") from None

    def _stage(self, text: str | None) -> UUID | None:
        if text is None:
            return None
        found = self.stages.get(text.strip().lower()) or uuid_of(text)
        if found is None:
            raise RowError(self.column("stage"), f"no stage is named {text!r}")
        return found

    def _member(self, text: str | None) -> UUID | None:
        if text is None:
            return None
        found = uuid_of(text)
        if found is None:
            raise RowError(self.column("assigned_to"), "is not a member id")
        return found

    def _lead_id(self, row: Row) -> UUID:
        """The row's lead id: the same row in any upload to this organization names the same
        lead (an external id that is already one of its leads' ids is that lead)."""
        org = self.ctx.organization_id
        external = row.get("external_id")
        if external is not None:
            if len(external) > 200:
                raise RowError(self.column("external_id"), "must be at most 200 characters")
            own = uuid_of(external)
            if own is not None and self.app.organization_of(own) == org:
                return own  # exported from this organization: the lead it came from
            return uuid5(org, "external_id:" + external)
        try:
            email = v.email(row.get("email"))
            phone = v.phone(row.get("phone"))
        except InvalidValueError as error:
            raise RowError(self.column(error.field), error.message) from None
        if email is None and phone is None:
            raise RowError(
                None, "needs an external_id, an email or a phone (what makes a re-upload skip it)"
            )
        digits = "".join(c for c in phone or "" if c.isdigit())
        return uuid5(org, f"contact:{email or ''}|{digits}")
