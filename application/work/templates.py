"""Message template use cases: create, change, delete, and use one for a lead (render, send).

A use renders the template's next A/B variant for the lead, with the caller's name and the
organization's, and — when asked — sends it through the conversation's ordinary path: inside
the 24-hour window as free text; outside it as the linked approved WhatsApp template (its
variables in order of appearance), or refused like any free text. The use and the message
are saved together, so a use that loses a race on the template's version (another use took
that variant) is retried whole, with the next variant, and nothing is sent twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.conversations.messages import (
    MessageQueued,
    SendMessage,
    outgoing,
    queued,
    record_send,
    retrying,
)
from application.permissions import check_lead_owner
from application.ports import UserRepository
from application.store import CrmApplication
from domain.errors import StageNotInPipelineError, VersionConflictError
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline, default_pipeline_id
from domain.privacy import PersonalDataErasedError
from domain.template import EDITABLE, Template, render, variables_of

UNSET: Any = msgspec.UNSET
USE_ATTEMPTS = 50


class CreateTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`body` is variant A; each of `variants` is one more (B, C, …) that uses alternate with."""

    name: str
    body: str
    category: str | None = None
    stage_ids: list[UUID] = msgspec.field(default_factory=list)
    variants: list[str] = msgspec.field(default_factory=list)
    whatsapp_template_name: str | None = None
    whatsapp_template_language: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)

    def details(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in EDITABLE}


class ChangeTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields given change; `expected_version` guards against lost updates."""

    expected_version: int | None = None
    name: str | msgspec.UnsetType = msgspec.UNSET
    body: str | msgspec.UnsetType = msgspec.UNSET
    category: str | None | msgspec.UnsetType = msgspec.UNSET
    stage_ids: list[UUID] | msgspec.UnsetType = msgspec.UNSET
    variants: list[str] | msgspec.UnsetType = msgspec.UNSET
    whatsapp_template_name: str | None | msgspec.UnsetType = msgspec.UNSET
    whatsapp_template_language: str | None | msgspec.UnsetType = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET

    def details(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in EDITABLE if getattr(self, f) is not msgspec.UNSET}


class UseTemplate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lead_id: UUID
    send: bool = False


class TemplateUsed(msgspec.Struct, frozen=True):
    """The rendered text (answered, never stored in clear) and, if sent, the queued message."""

    template_id: UUID
    lead_id: UUID
    variant: str
    text: str
    sent_as: str | None
    message: MessageQueued | None
    version: int
    position: int


def _template(
    app: CrmApplication, template_id: UUID, ctx: Ctx, expected: int | None = None
) -> Template:
    template = app.load(Template, template_id, ctx.organization_id)
    if expected is not None and template.version != expected:
        raise VersionConflictError(template.id, template.version, expected)
    return template


def _check_stages(app: CrmApplication, stage_ids: list[UUID] | Any, ctx: Ctx) -> None:
    if not isinstance(stage_ids, list) or not stage_ids:
        return
    pipeline = app.view(Pipeline, default_pipeline_id(ctx.organization_id), ctx.organization_id)
    ours = {s.id for s in pipeline.stages}
    for stage_id in stage_ids:
        if stage_id not in ours:
            raise StageNotInPipelineError(stage_id)


def _written(app: CrmApplication, template: Template) -> Written:
    return Written(id=template.id, version=template.version, position=app.commit(template))


def create_template(app: CrmApplication, cmd: CreateTemplate, ctx: Ctx) -> Written:
    _check_stages(app, cmd.stage_ids, ctx)
    template = Template.create(
        organization_id=ctx.organization_id, details=cmd.details(), actor=ctx.actor
    )
    return _written(app, template)


def change_template(
    app: CrmApplication, template_id: UUID, cmd: ChangeTemplate, ctx: Ctx
) -> Written:
    template = _template(app, template_id, ctx, cmd.expected_version)
    _check_stages(app, cmd.stage_ids, ctx)
    template.change(cmd.details(), actor=ctx.actor)
    return _written(app, template)


def delete_template(app: CrmApplication, template_id: UUID, ctx: Ctx) -> Written:
    template = _template(app, template_id, ctx)
    template.delete(actor=ctx.actor)
    return _written(app, template)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def values_for(lead: Lead, user_name: str, organization_name: str) -> dict[str, str]:
    """Every variable's value for this lead, as text (a missing one renders empty)."""
    values = {
        "lead.full_name": _text(lead.full_name),
        "lead.company": _text(lead.company),
        "user.full_name": user_name,
        "organization.name": organization_name,
    }
    for key, value in (lead.custom_fields or {}).items():
        values[f"lead.custom.{key}"] = _text(value)
    return values


def use_template(
    app: CrmApplication,
    users: UserRepository,
    template_id: UUID,
    cmd: UseTemplate,
    ctx: Ctx,
    *,
    now: datetime,
) -> TemplateUsed:
    """Render the template's next variant for the lead; send it when `cmd.send`."""
    user = users.by_id(ctx.user_id) if ctx.actor.kind == "user" else None
    user_name = user.full_name if user is not None else ""

    def attempt() -> TemplateUsed:
        template = _template(app, template_id, ctx)
        lead = app.load(Lead, cmd.lead_id, ctx.organization_id)  # another's: not found
        check_lead_owner(ctx, lead.assignee_id)  # using may send: the lead's owner's act
        if lead.erased:
            raise PersonalDataErasedError(f"lead {lead.id}: the person's data was erased")
        org = app.view(Organization, ctx.organization_id, ctx.organization_id)
        label, body = template.next_variant()
        values = values_for(lead, user_name, org.name)
        text = render(body, values)
        if not cmd.send:
            template.record_use(lead_id=lead.id, actor=ctx.actor)
            position = app.commit(template)
            return TemplateUsed(
                template.id, lead.id, label, text, None, None, template.version, position
            )
        out = outgoing(app, lead.id, ctx)
        message, sent_as = SendMessage(text=text), "text"
        if not out.free_text_allowed(now) and template.whatsapp_template_name is not None:
            variables = {str(i): values.get(n, "") for i, n in enumerate(variables_of(body), 1)}
            message = SendMessage(
                template_name=template.whatsapp_template_name,
                template_language=template.whatsapp_template_language,
                template_variables=variables,
            )
            sent_as = "whatsapp_template"
        # outside the window without a linked template: refused here, as free text would be
        message_id = record_send(out, message, ctx, now=now)
        template.record_use(
            lead_id=lead.id,
            sent_as=sent_as,
            conversation_id=out.conversation.id,
            message_id=message_id,
            actor=ctx.actor,
        )
        position = app.commit(template, out.conversation)
        return TemplateUsed(
            template.id,
            lead.id,
            label,
            text,
            sent_as,
            queued(out, message_id, position),
            template.version,
            position,
        )

    # every use of a template races every other use of it: more patience than for a contact
    return retrying(attempt, attempts=USE_ATTEMPTS)
