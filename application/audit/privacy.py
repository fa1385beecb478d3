"""A person's rights over their data (LGPD arts. 18, GDPR arts. 15 and 17): export and erasure.

A person is found by a lead id, an email or a phone number; every lead of the organization that
matches is theirs (the same person may have been captured twice). Their conversations and calls
are found through the leads.

Erasure is crypto-shredding: each lead is its own subject (`domain.privacy`), so destroying the
lead's data key makes every personal value ever stored about them unreadable - in the lead's
events, its conversations' messages and its calls - without touching the append-only log. The
key is destroyed first and the erasure recorded after (`Lead.PersonalDataErased`, with who,
when and the legal basis; `Conversation.ContactErased` on each thread): if the recording fails,
a retry finds the key gone and records what is missing, never the reverse (a recorded erasure
whose data still opens).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.context import Ctx
from application.conversations.messages import CHANNEL, conversation_id
from application.ports import ReadModels
from application.store import CrmApplication
from domain.audit import PersonalDataExport
from domain.conversation import Conversation
from domain.errors import InvalidValueError, NotFoundError
from domain.lead import Lead
from domain.values import email as clean_email
from projections.analytics_tables import rm_analytics_leads
from projections.audit import rm_audit_events
from projections.base import event_data, jsonable
from projections.calls import rm_calls
from projections.conversations import rm_conversations, rm_messages
from projections.leads import rm_leads
from projections.outbox import outbox
from projections.phones import e164
from projections.timeline import rm_lead_timeline, rm_timeline_sources


class PersonQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Exactly one of: a lead id, an email, a phone number (international format)."""

    lead_id: UUID | None = None
    email: str | None = None
    phone: str | None = None


class EraseCommand(PersonQuery, frozen=True, forbid_unknown_fields=True):
    #: why the data may be erased, as the data controller records it (e.g. "LGPD art. 18, VI")
    legal_basis: str = ""


class Erased(msgspec.Struct, frozen=True):
    lead_ids: list[UUID]
    #: leads erased by this request (a retry answers the others as already erased)
    newly_erased: list[UUID]
    position: int


def _matched_by(query: PersonQuery) -> str:
    given = [
        name for name in ("lead_id", "email", "phone") if getattr(query, name) not in (None, "")
    ]
    if len(given) != 1:
        raise InvalidValueError("lead_id", "give exactly one of lead_id, email or phone")
    return given[0]


def find_person(
    app: CrmApplication, conn: Connection, ctx: Ctx, query: PersonQuery
) -> tuple[str, list[UUID]]:
    """How the person was matched and their leads in this organization (404 if none)."""
    matched_by = _matched_by(query)
    org = ctx.organization_id
    if query.lead_id is not None:
        app.load(Lead, query.lead_id, org)  # another organization's lead is 'not found'
        return matched_by, [query.lead_id]
    c = rm_leads.c
    if query.email is not None:
        address = clean_email(query.email)
        assert address is not None
        found = conn.execute(
            sa.select(c.lead_id).where(c.organization_id == org, c.email == address)
        ).scalars()
    else:
        assert query.phone is not None
        number = e164(query.phone)
        if number is None:
            raise InvalidValueError("phone", "is not a phone number in international format")
        by_lead = sa.select(c.lead_id).where(c.organization_id == org, c.phone_e164 == number)
        v = rm_conversations.c
        by_thread = sa.select(v.lead_id).where(v.organization_id == org, v.contact == number)
        found = conn.execute(sa.union(by_lead, by_thread)).scalars()
    leads = sorted(set(found), key=str)
    if not leads:
        raise NotFoundError("person", matched_by)
    return matched_by, leads


def _threads(conn: Connection, org: UUID, leads: list[UUID]) -> tuple[list[UUID], list[UUID]]:
    v = rm_conversations.c
    conversations = conn.execute(
        sa.select(v.conversation_id).where(v.organization_id == org, v.lead_id.in_(leads))
    ).scalars()
    k = rm_calls.c
    calls = conn.execute(
        sa.select(k.call_id).where(k.organization_id == org, k.lead_id.in_(leads))
    ).scalars()
    return sorted(set(conversations), key=str), sorted(set(calls), key=str)


def erase_person(
    app: CrmApplication,
    read_models: ReadModels,
    ctx: Ctx,
    cmd: EraseCommand,
) -> Erased:
    """Destroy each matching lead's data key, then record the erasure (see the module doc)."""
    legal_basis = cmd.legal_basis.strip()
    if not legal_basis:
        raise InvalidValueError("legal_basis", "is required: why this data may be erased")
    if len(legal_basis) > 500:
        raise InvalidValueError("legal_basis", "must be at most 500 characters")
    org = ctx.organization_id
    with read_models.reading(ctx.organization_id) as conn:
        _, leads = find_person(app, conn, ctx, cmd)
        conversations, _calls = _threads(conn, org, leads)
    cipher = app.personal_data.get()
    newly: list[UUID] = []
    position = 0
    for lead_id in leads:
        # the thread of the lead's number may not be in the inbox model yet
        number = e164(app.load(Lead, lead_id, org).phone or "")
        ids = set(conversations) | ({conversation_id(org, CHANNEL, number)} if number else set())
        cipher.erase(org, lead_id)
        lead = app.load(Lead, lead_id, org)
        threads = [_conversation(app, cid, org) for cid in sorted(ids, key=str)]
        changed: list[Any] = []
        if lead.erase_personal_data(legal_basis=legal_basis, actor=ctx.actor):
            newly.append(lead_id)
            changed.append(lead)
        for thread in threads:
            if thread is not None and thread.lead_id == lead_id:
                thread.erase_contact(actor=ctx.actor)
                if thread.pending_events:
                    changed.append(thread)
        if changed:
            position = max(position, app.commit(*changed))
    return Erased(lead_ids=leads, newly_erased=newly, position=position)


def _conversation(app: CrmApplication, cid: UUID, org: UUID) -> Conversation | None:
    try:
        return app.load(Conversation, cid, org)
    except NotFoundError:
        return None


# --------------------------------------------------------------------------- export


def _event(aggregate_type: str, event: Any) -> dict[str, Any]:
    return {
        "aggregate_type": aggregate_type,
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "type": type(event).__qualname__,
        "time": event.timestamp.astimezone(UTC).isoformat(),
        "actor": jsonable(getattr(event, "actor", None)),
        "data": jsonable(event_data(event)),
    }


#: the read models that hold rows about a person (the analytics facts hold only ids and counts)
PERSON_TABLES = (
    rm_leads,
    rm_lead_timeline,
    rm_timeline_sources,
    rm_conversations,
    rm_messages,
    rm_calls,
    rm_audit_events,
    rm_analytics_leads,
)
#: the outbox is the dispatcher's own table (no tenant policy, not granted to the readers' role)
INTERNAL_TABLES = (outbox,)


def _rows(
    conn: Connection, org: UUID, ids: dict[str, set[UUID]], tables: Iterable[sa.Table]
) -> dict[str, list[Any]]:
    """Every row of `tables` about the person: by lead, conversation, call or resource id."""
    out: dict[str, list[Any]] = {}
    everything = ids["lead_id"] | ids["conversation_id"] | ids["call_id"]
    for table in tables:
        conditions = [
            table.c[name].in_(sorted(values, key=str))
            for name, values in ids.items()
            if name in table.c and values
        ]
        if table is rm_audit_events:
            conditions.append(table.c.resource_id.in_(sorted(everything, key=str)))
        if "aggregate_id" in table.c:
            conditions.append(table.c.aggregate_id.in_(sorted(everything, key=str)))
        if not conditions:
            continue
        rows = conn.execute(
            sa.select(table).where(table.c.organization_id == org, sa.or_(*conditions))
        ).mappings()
        found = [jsonable(dict(row)) for row in rows]
        if found:
            out[table.name] = found
    return out


def export_person(
    app: CrmApplication,
    read_models: ReadModels,
    ctx: Ctx,
    query: PersonQuery,
    *,
    now: datetime,
) -> dict[str, Any]:
    """One document of everything the organization holds about the person; the export is
    recorded first (who asked, how the person was matched, which leads)."""
    org = ctx.organization_id
    with read_models.reading(ctx.organization_id) as conn:
        matched_by, leads = find_person(app, conn, ctx, query)
        conversations, calls = _threads(conn, org, leads)
        found = {
            "lead_id": set(leads),
            "conversation_id": set(conversations),
            "call_id": set(calls),
        }
        rows = _rows(conn, org, found, PERSON_TABLES)
    with read_models.internal(org) as conn:
        rows |= _rows(conn, org, found, INTERNAL_TABLES)
    export = PersonalDataExport.make(
        organization_id=org, matched_by=matched_by, lead_ids=leads, actor=ctx.actor
    )
    position = app.commit(export)
    events: list[dict[str, Any]] = []
    for kind, ids in (("Lead", leads), ("Conversation", conversations), ("Call", calls)):
        events.extend(_events_of(app, kind, ids))
    events.sort(key=lambda e: (e["time"], e["aggregate_id"], e["version"]))
    return {
        "organization_id": str(org),
        "generated_at": now.astimezone(UTC).isoformat(),
        "export_id": str(export.id),
        "position": position,
        "matched_by": matched_by,
        "lead_ids": [str(i) for i in leads],
        "leads": [_state(app.load(Lead, i, org)) for i in leads],
        "events": events,
        "read_models": rows,
    }


def _events_of(app: CrmApplication, kind: str, ids: Iterable[UUID]) -> list[dict[str, Any]]:
    return [_event(kind, e) for aggregate_id in ids for e in app.events.get(aggregate_id)]


def _state(lead: Lead) -> dict[str, Any]:
    state = {k: val for k, val in vars(lead).items() if not k.startswith("_")}
    state["id"] = lead.id
    state["version"] = lead.version
    result: dict[str, Any] = jsonable(state)
    return result
