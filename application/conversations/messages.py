"""WhatsApp conversation use cases: inbound messages and statuses from webhooks, outbound sends.

A conversation is one organization's thread with one contact on one channel; its id is derived
from (organization, channel, E.164 number), so concurrent webhooks for a new contact converge
on one aggregate. An unknown number becomes a lead (source `whatsapp`) in the same save.
Sends are only *recorded* here (status `queued`); the outbox delivers them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.context import Ctx
from application.conversations.providers import InboundMessage, MessageStatusUpdate
from application.permissions import check_lead_owner
from application.ports import ReadModels
from application.store import CrmApplication
from application.work.assignment import route_new_lead
from domain.conversation import Conversation
from domain.errors import InvalidValueError, NotFoundError, RuleViolationError, VersionConflictError
from domain.integrations import VOIP, WHATSAPP, ProviderConfig
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline, default_pipeline_id
from domain.values import Actor, StageType
from projections.leads import rm_leads
from projections.phones import e164

CHANNEL = "whatsapp"
SETUP_NAMES = {WHATSAPP: "WhatsApp", VOIP: "VoIP"}
#: saves that lose a race (another webhook for the same contact) reload and try again
ATTEMPTS = 10

T = TypeVar("T")


class IntegrationMissingError(RuleViolationError):
    """The organization has no active provider of the kind a command needs."""


class SendMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Free text inside the 24-hour window, or an approved template with variables."""

    text: str | None = None
    template_name: str | None = None
    template_language: str | None = None
    template_variables: dict[str, str] | None = None


class MessageQueued(msgspec.Struct, frozen=True):
    message_id: UUID
    conversation_id: UUID
    lead_id: UUID
    status: str
    provider_type: str
    version: int
    position: int


class Received(msgspec.Struct, frozen=True):
    conversation_id: UUID
    message_id: UUID
    lead_id: UUID
    position: int
    new_lead: bool = False


def retrying(attempt: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run a load–change–save that may lose a race with a concurrent webhook for the same
    contact or call: reload and try again (with a little jitter), up to `attempts` times."""
    for tried in range(1, attempts + 1):
        try:
            return attempt()
        except VersionConflictError:
            if tried == attempts:
                raise
            time.sleep(random.uniform(0, 0.002 * tried))  # let the winner finish
    raise AssertionError("unreachable")  # pragma: no cover


def lead_by_phone(conn: Connection, organization_id: UUID, phone: str) -> UUID | None:
    """The organization's oldest unarchived lead with this E.164 phone (leads read model)."""
    c = rm_leads.c
    found = conn.execute(
        sa.select(c.lead_id)
        .where(c.organization_id == organization_id, c.phone_e164 == phone)
        .order_by(c.archived, c.created_at, c.lead_id)
        .limit(1)
    ).scalar()
    return found if isinstance(found, UUID) else None


def conversation_id(organization_id: UUID, channel: str, phone: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"crm:{organization_id}:conversation:{channel}:{phone}")


def contact_lead_id(organization_id: UUID, source: str, phone: str) -> UUID:
    """The id of the lead an unknown number creates: the same for concurrent first messages."""
    return uuid5(NAMESPACE_URL, f"crm:{organization_id}:lead:{source}:{phone}")


def provider_actor(provider_type: str, ip: str | None = None) -> Actor:
    return Actor(kind="provider", id=provider_type, ip=ip)


def _phone(raw: str, field: str) -> str:
    number = e164(raw)
    if number is None:
        raise InvalidValueError(field, "is not a phone number in international format")
    return number


def _existing(app: CrmApplication, cid: UUID, organization_id: UUID) -> Conversation | None:
    try:
        return app.load(Conversation, cid, organization_id)
    except NotFoundError:
        return None


def new_contact_lead(
    app: CrmApplication,
    organization_id: UUID,
    phone: str,
    *,
    source: str,
    name: str | None,
    actor: Actor,
    id: UUID | None = None,
) -> Lead:
    pipeline = app.view(Pipeline, default_pipeline_id(organization_id), organization_id)
    return Lead.capture(
        id=id or contact_lead_id(organization_id, source, phone),
        organization_id=organization_id,
        pipeline_id=pipeline.id,
        stage=pipeline.first_stage_of(StageType.OPEN).ref,
        details={"full_name": (name or phone)[:200], "phone": phone, "source": source},
        assignee_id=None,
        actor=actor,
    )


def _erased(app: CrmApplication, lead_id: UUID, organization_id: UUID) -> bool:
    try:
        return app.view(Lead, lead_id, organization_id).erased
    except NotFoundError:
        return True


def contact_lead(
    app: CrmApplication,
    read_models: ReadModels,
    organization_id: UUID,
    phone: str,
    *,
    source: str,
    name: str | None,
    actor: Actor,
) -> tuple[UUID, Lead | None]:
    """The lead a number belongs to, and a new lead to save with the caller's write if any.

    A lead of the organization with that number, else the number's own lead (an id derived from
    the number, so concurrent first webhooks converge). An erased person is never matched
    again: after an erasure the number's next lead id is derived from the erased one, so the
    same number starts a new subject (a new data key), again the same for concurrent webhooks.
    """
    with read_models.reading(organization_id) as conn:
        found = lead_by_phone(conn, organization_id, phone)
    if found is not None and not _erased(app, found, organization_id):
        return found, None
    lead_id = contact_lead_id(organization_id, source, phone)
    while True:
        try:
            lead = app.load(Lead, lead_id, organization_id)
        except NotFoundError:
            new = new_contact_lead(
                app, organization_id, phone, source=source, name=name, actor=actor, id=lead_id
            )
            return new.id, new
        if not lead.erased:
            return lead.id, None
        lead_id = uuid5(NAMESPACE_URL, f"crm:{organization_id}:lead-after-erasure:{lead_id}")


def receive_message(
    app: CrmApplication,
    read_models: ReadModels,
    organization_id: UUID,
    provider_type: str,
    message: InboundMessage,
    *,
    actor: Actor,
) -> Received:
    """Record an inbound message once (a retried webhook returns the first recording)."""
    phone = _phone(message.from_phone, "from")
    cid = conversation_id(organization_id, CHANNEL, phone)

    def attempt() -> Received:
        conversation = _existing(app, cid, organization_id)
        lead: Lead | None = None
        if conversation is None or conversation.erased:
            lead_id, lead = contact_lead(
                app,
                read_models,
                organization_id,
                phone,
                source="whatsapp",
                name=message.contact_name,
                actor=actor,
            )
            if conversation is None:
                conversation = Conversation.start(
                    id=cid,
                    organization_id=organization_id,
                    lead_id=lead_id,
                    channel=CHANNEL,
                    contact=phone,
                    actor=actor,
                )
            else:  # the number wrote again after its person's erasure: a new subject
                conversation.resume(lead_id=lead_id, contact=phone, actor=actor)
        message_id = conversation.receive(
            provider_message_id=message.provider_message_id,
            provider_type=provider_type,
            text=message.text,
            sent_at=message.sent_at,
            contact_name=message.contact_name,
            actor=actor,
        )
        # a new contact's lead goes through the assignment rules, in the same commit
        rules = route_new_lead(app, read_models, lead, actor=actor) if lead else None
        saved = [a for a in (lead, conversation, rules) if a is not None and a.pending_events]
        position = app.commit(*saved)
        return Received(
            conversation_id=cid,
            message_id=message_id,
            lead_id=conversation.lead_id,
            position=position,
            new_lead=lead is not None,
        )

    # a concurrent first message for this contact may win the race
    return retrying(attempt)


def record_status(
    app: CrmApplication,
    organization_id: UUID,
    update: MessageStatusUpdate,
    *,
    actor: Actor,
) -> int | None:
    """Move a sent message's status forward; None when the message is not ours.

    The message is found by the provider's id, or by our own id when the provider echoes it
    (a status can overtake the outbox recording the provider's id). A save that loses a race
    with another webhook for the same contact is reloaded and tried again.
    """
    phone = e164(update.recipient) if update.recipient else None
    if phone is None:
        return None
    cid = conversation_id(organization_id, CHANNEL, phone)

    def attempt() -> int | None:
        conversation = _existing(app, cid, organization_id)
        if conversation is None:
            return None
        message_id = conversation.provider_ids.get(update.provider_message_id) or _ours(
            conversation, update.our_message_id
        )
        if message_id is None:
            return None
        conversation.change_status(
            message_id,
            update.status,
            error=update.error,
            provider_message_id=update.provider_message_id,
            actor=actor,
        )
        return app.commit(conversation) if conversation.pending_events else 0

    return retrying(attempt)


def _ours(conversation: Conversation, echoed: str | None) -> UUID | None:
    if not echoed:
        return None
    try:
        message_id = UUID(echoed)
    except ValueError:
        return None
    status = conversation.statuses.get(message_id)
    return message_id if status not in (None, "received") else None


def reachable_lead(
    app: CrmApplication, lead_id: UUID, ctx: Ctx, kind: str, verb: str
) -> tuple[Lead, ProviderConfig, str]:
    """The lead, the organization's active provider of `kind`, and the lead's E.164 phone."""
    lead = app.load(Lead, lead_id, ctx.organization_id)  # another's lead: not found, first
    check_lead_owner(ctx, lead.assignee_id)
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    config = org.provider(kind)
    if config is None:
        raise IntegrationMissingError(
            f"{SETUP_NAMES[kind]} is not set up: POST /integrations/{kind}/setup"
        )
    phone = e164(lead.phone)
    if phone is None:
        raise InvalidValueError(
            "lead", f"has no phone number in international format (+country code) to {verb}"
        )
    return lead, config, phone


@dataclass(frozen=True)
class Outgoing:
    """A lead's conversation about to take an outbound message, with the provider carrying it."""

    lead: Lead
    config: ProviderConfig
    conversation: Conversation

    @property
    def window_rule(self) -> bool:
        """Whether the Business Platform's 24-hour rule applies (a Web bridge sends as a phone
        does, and has no templates)."""
        return self.config.provider_type == "business_api"

    def free_text_allowed(self, now: datetime) -> bool:
        return not self.window_rule or self.conversation.window_open(now)


def outgoing(app: CrmApplication, lead_id: UUID, ctx: Ctx) -> Outgoing:
    """The lead's WhatsApp conversation (started if new, not saved) and the active provider."""
    lead, config, phone = reachable_lead(app, lead_id, ctx, WHATSAPP, "message")
    cid = conversation_id(ctx.organization_id, CHANNEL, phone)
    conversation = _existing(app, cid, ctx.organization_id) or Conversation.start(
        id=cid,
        organization_id=ctx.organization_id,
        lead_id=lead.id,
        channel=CHANNEL,
        contact=phone,
        actor=ctx.actor,
    )
    return Outgoing(lead=lead, config=config, conversation=conversation)


def record_send(out: Outgoing, cmd: SendMessage, ctx: Ctx, *, now: datetime) -> UUID:
    """Record the message on the conversation (not saved: the caller commits it)."""
    if cmd.template_name is not None and not out.window_rule:
        raise InvalidValueError("template_name", "templates are sent through the Business API")
    variables: dict[str, Any] | None = dict(cmd.template_variables or {}) or None
    return out.conversation.send(
        provider_type=out.config.provider_type,
        now=now,
        text=cmd.text,
        template_name=cmd.template_name,
        template_language=cmd.template_language,
        template_variables=variables,
        window=out.window_rule,
        actor=ctx.actor,
    )


def queued(out: Outgoing, message_id: UUID, position: int) -> MessageQueued:
    return MessageQueued(
        message_id=message_id,
        conversation_id=out.conversation.id,
        lead_id=out.conversation.lead_id,
        status="queued",
        provider_type=out.config.provider_type,
        version=out.conversation.version,
        position=position,
    )


def send_message(
    app: CrmApplication, lead_id: UUID, cmd: SendMessage, ctx: Ctx, *, now: datetime
) -> MessageQueued:
    """Record an outbound message for the outbox; free text only inside the window."""
    out = outgoing(app, lead_id, ctx)
    message_id = record_send(out, cmd, ctx, now=now)
    return queued(out, message_id, app.commit(out.conversation))


def mark_sent(
    app: CrmApplication,
    organization_id: UUID,
    cid: UUID,
    message_id: UUID,
    provider_message_id: str,
    *,
    actor: Actor,
) -> int:
    """The provider accepted a queued message: record its id (statuses arrive by it)."""
    conversation = app.load(Conversation, cid, organization_id)
    conversation.change_status(
        message_id, "sent", provider_message_id=provider_message_id, actor=actor
    )
    return app.commit(conversation) if conversation.pending_events else 0


def mark_failed(
    app: CrmApplication,
    organization_id: UUID,
    cid: UUID,
    message_id: UUID,
    error: str,
    *,
    actor: Actor,
) -> int:
    conversation = app.load(Conversation, cid, organization_id)
    conversation.change_status(message_id, "failed", error=error[:500], actor=actor)
    return app.commit(conversation) if conversation.pending_events else 0


def _own_conversation(app: CrmApplication, conversation: UUID, ctx: Ctx) -> Conversation:
    """A conversation to act on: its lead's owner may (checked like a change of the lead)."""
    found = app.load(Conversation, conversation, ctx.organization_id)
    check_lead_owner(ctx, app.view(Lead, found.lead_id, ctx.organization_id).assignee_id)
    return found


def hand_off(
    app: CrmApplication, conversation: UUID, user_id: UUID | None, ctx: Ctx
) -> tuple[UUID, int, int]:
    """Give the conversation to a member (or back to the lead's owner with None)."""
    found = _own_conversation(app, conversation, ctx)
    if user_id is not None:
        org = app.view(Organization, ctx.organization_id, ctx.organization_id)
        if org.role_of(user_id) is None:
            raise NotFoundError("member", user_id)
    found.hand_off(user_id, actor=ctx.actor)
    return found.id, found.version, app.commit(found) if found.pending_events else 0


def close(app: CrmApplication, conversation: UUID, ctx: Ctx) -> tuple[UUID, int, int]:
    found = _own_conversation(app, conversation, ctx)
    found.close(actor=ctx.actor)
    return found.id, found.version, app.commit(found) if found.pending_events else 0
