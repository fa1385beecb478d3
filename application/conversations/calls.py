"""Call use cases: click-to-call (recorded, then placed by the outbox) and provider callbacks.

An inbound call's id is derived from (organization, provider, provider call id), so repeated
or concurrent callbacks converge on one aggregate; an outbound call's callbacks carry our own
call id in the callback URL we gave the provider. Unknown callers become leads (source `phone`).
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec

from application.context import Ctx
from application.conversations.messages import contact_lead, reachable_lead, retrying
from application.conversations.providers import CallUpdate
from application.ports import ReadModels
from application.store import CrmApplication
from application.work.assignment import route_new_lead
from domain.call import Call
from domain.errors import InvalidValueError, NotFoundError
from domain.integrations import VOIP
from domain.lead import Lead
from domain.values import Actor
from projections.phones import e164


class PlaceCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Click-to-call: optionally which of the organization's numbers calls out."""

    from_number: str | None = None
    #: the rep's own phone (+country code): Twilio connects it when the lead answers
    connect_to: str | None = None


class CallQueued(msgspec.Struct, frozen=True):
    call_id: UUID
    lead_id: UUID
    status: str
    provider_type: str
    from_number: str
    to_number: str
    version: int
    position: int


class CallRecorded(msgspec.Struct, frozen=True):
    call_id: UUID
    lead_id: UUID
    position: int


def inbound_call_id(organization_id: UUID, provider_type: str, provider_call_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"crm:{organization_id}:call:{provider_type}:{provider_call_id}")


def place_call(app: CrmApplication, lead_id: UUID, cmd: PlaceCall, ctx: Ctx) -> CallQueued:
    lead, config, to_number = reachable_lead(app, lead_id, ctx, VOIP, "call")
    numbers = [n for n in (e164(x) for x in config.numbers) if n is not None]
    from_number = numbers[0] if numbers else None
    if cmd.from_number is not None:
        from_number = e164(cmd.from_number)
        if from_number not in numbers:
            raise InvalidValueError("from_number", "must be one of the organization's numbers")
    if from_number is None:
        raise InvalidValueError("from_number", "the VoIP provider has no valid number")
    call = Call.start(
        organization_id=ctx.organization_id,
        lead_id=lead.id,
        direction="outbound",
        provider_type=config.provider_type,
        from_number=from_number,
        to_number=to_number,
        connect_to=_rep_phone(cmd.connect_to),
        actor=ctx.actor,
    )
    position = app.commit(call)
    return CallQueued(
        call_id=call.id,
        lead_id=lead.id,
        status=call.status,
        provider_type=config.provider_type,
        from_number=from_number,
        to_number=to_number,
        version=call.version,
        position=position,
    )


def _rep_phone(raw: str | None) -> str | None:
    if raw is None:
        return None
    phone = e164(raw)
    if phone is None:
        raise InvalidValueError("connect_to", "must be a phone number with its +country code")
    return phone


def record_call_update(
    app: CrmApplication,
    read_models: ReadModels,
    organization_id: UUID,
    provider_type: str,
    update: CallUpdate,
    *,
    actor: Actor,
    call_id: UUID | None = None,
) -> CallRecorded | None:
    """Apply a provider callback once. `call_id` is ours for calls we placed (from the
    callback URL); otherwise the call is inbound and created on its first callback."""

    def attempt() -> CallRecorded | None:
        call, lead = _call_for(
            app, read_models, organization_id, provider_type, update, call_id, actor
        )
        if call is None:
            return None
        _apply(call, update, actor)
        # a new caller's lead goes through the assignment rules, in the same commit
        rules = route_new_lead(app, read_models, lead, actor=actor) if lead else None
        saved = [a for a in (lead, call, rules) if a is not None and a.pending_events]
        position = app.commit(*saved) if saved else 0
        return CallRecorded(call_id=call.id, lead_id=call.lead_id, position=position)

    return retrying(attempt)


def _call_for(
    app: CrmApplication,
    read_models: ReadModels,
    organization_id: UUID,
    provider_type: str,
    update: CallUpdate,
    call_id: UUID | None,
    actor: Actor,
) -> tuple[Call | None, Lead | None]:
    if call_id is not None:
        call = app.load(Call, call_id, organization_id)
        if call.provider_call_id is None:
            call.dialed(update.provider_call_id, actor=actor)
        elif call.provider_call_id != update.provider_call_id:
            return None, None  # another leg (a transfer inherits the callback URL): not ours
        return call, None
    cid = inbound_call_id(organization_id, provider_type, update.provider_call_id)
    try:
        return app.load(Call, cid, organization_id), None
    except NotFoundError:
        pass
    if update.direction == "outbound":
        return None, None  # a call placed outside the CRM: not ours to log
    caller = e164(update.from_number)
    callee = e164(update.to_number)
    if caller is None or callee is None:
        raise InvalidValueError("from", "an inbound call needs the caller's and our numbers")
    lead_id, lead = contact_lead(
        app, read_models, organization_id, caller, source="phone", name=None, actor=actor
    )
    call = Call.start(
        id=cid,
        organization_id=organization_id,
        lead_id=lead_id,
        direction="inbound",
        provider_type=provider_type,
        from_number=caller,
        to_number=callee,
        provider_call_id=update.provider_call_id,
        actor=actor,
    )
    return call, lead if lead is not None and lead.pending_events else None


def _apply(call: Call, update: CallUpdate, actor: Actor) -> None:
    if update.status in ("ringing", "answered"):
        call.progress(update.status, provider_event_id=update.event_id, actor=actor)
    elif update.status == "ended":
        call.end(
            duration_seconds=max(0, update.duration_seconds or 0),
            outcome=update.outcome or "completed",
            provider_event_id=update.event_id,
            actor=actor,
        )
    if update.recording_url and call.status in ("answered", "ended"):
        call.attach_recording(
            update.recording_url, duration_seconds=update.recording_duration, actor=actor
        )


def mark_dialed(
    app: CrmApplication,
    organization_id: UUID,
    call_id: UUID,
    provider_call_id: str,
    *,
    actor: Actor,
) -> int:
    """The provider accepted the call we asked it to place."""
    call = app.load(Call, call_id, organization_id)
    call.dialed(provider_call_id, actor=actor)
    return app.commit(call) if call.pending_events else 0


def mark_call_failed(
    app: CrmApplication, organization_id: UUID, call_id: UUID, *, actor: Actor
) -> int:
    """The provider refused to place the call: it ends, failed, without ringing."""
    call = app.load(Call, call_id, organization_id)
    call.end(duration_seconds=0, outcome="failed", actor=actor)
    return app.commit(call) if call.pending_events else 0
