"""The outbox: one row per recorded send (a WhatsApp message, an outbound call) to deliver.

Not a read model for people but the work queue of the outbox dispatcher
(application/conversations/outbox.py), fed by the projector in log order, so a send recorded as
an event is never lost: the row exists once the projector passed the event, whatever crashed in
between.

Row life: `pending` → claimed (`sending`, attempts + 1, a claim token, `next_attempt_at` moved to
the end of the claim's lease) → `done`, or back to `pending` with a later `next_attempt_at`, or
`failed`. A `sending` row whose lease ran out (its worker died) is due again like a pending one.
The projector also follows what happened to the item (a message's status changed, a call was
dialed or ended) and settles pending rows: a rebuild from zero re-creates rows for every send
ever recorded, and only those the log shows as still queued remain pending.

A person's erasure reaches their rows recorded until then: the payload's personal values read
`[erased]` as a rebuild reads them (message texts and template variables on
`Conversation.ContactErased`; a call's numbers on `Lead.PersonalDataErased`, the call's lead
read from the calls model, before this one in the registry), and a pending send is failed so
that no dispatcher delivers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.privacy import ERASED, erased
from projections.base import (
    Envelope,
    JSONType,
    Projector,
    UtcDateTime,
    bulk_insert,
    claim_due,
    jsonable,
    metadata,
)
from projections.calls import rm_calls

MESSAGE = "message"
CALL = "call"
PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"
ERASED_ERROR = "not sent: the contact's personal data was erased"

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("item_id", sa.Uuid, primary_key=True),  # message id or call id: the idempotency key
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("aggregate_id", sa.Uuid, nullable=False),
    sa.Column("provider_type", sa.String(40), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # pending: when to try (again); sending: when the claim's lease ends
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claim_token", sa.Uuid),
    # the provider accepted the item but recording that failed: record it, never send again
    sa.Column("provider_ref", sa.String(200)),
    sa.Column("last_error", sa.String(500)),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
)

Key = tuple[UUID, UUID]


class OutboxProjector(Projector):
    """Adds a pending row per recorded send; settles the pending rows the log shows as handled."""

    name = "outbox"
    tables = (outbox,)
    handles = frozenset(
        {
            "Conversation.MessageSent",
            "Conversation.MessageStatusChanged",
            "Conversation.ContactErased",
            "Call.Started",
            "Call.Dialed",
            "Call.Progressed",
            "Call.Ended",
            "Lead.PersonalDataErased",
        }
    )

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        # rows recorded in this batch change in memory, earlier ones in the table, in log order
        new: dict[Key, dict[str, Any]] = {}
        for envelope in batch:
            event = envelope.event
            name = envelope.type_name
            if name == "Conversation.MessageSent":
                row = _message_row(envelope)
                new[(row["organization_id"], row["item_id"])] = row
            elif name == "Call.Started":
                if event.direction == "outbound" and event.provider_call_id is None:
                    row = _call_row(envelope)
                    new[(row["organization_id"], row["item_id"])] = row
            elif name == "Conversation.MessageStatusChanged":
                failed = event.status == "failed"
                key = (event.organization_id, event.message_id)
                _settle(conn, new, key, *((FAILED, event.error) if failed else (DONE, None)))
            elif name == "Conversation.ContactErased":
                _erase_messages(conn, new, event.organization_id, event.originator_id)
            elif name == "Lead.PersonalDataErased":
                _erase_calls(conn, new, event.organization_id, event.originator_id)
            elif name == "Call.Ended" and event.outcome == "failed":
                key = (event.organization_id, event.originator_id)
                _settle(conn, new, key, FAILED, "call failed")
            else:  # dialed, ringing, answered or ended: the provider has the call
                _settle(conn, new, (event.organization_id, event.originator_id), DONE, None)
        bulk_insert(conn, outbox, list(new.values()))


def _settle(
    conn: Connection, new: dict[Key, dict[str, Any]], key: Key, status: str, error: str | None
) -> None:
    """Settle a pending row; a claimed row is settled by its worker, a settled one stays."""
    if key in new:  # recorded and handled within one batch (a rebuild)
        if new[key]["status"] == PENDING:
            new[key] |= {"status": status, "last_error": error}
        return
    org, item = key
    conn.execute(
        outbox.update()
        .where(outbox.c.organization_id == org, outbox.c.item_id == item)
        .where(outbox.c.status == PENDING)
        .values(status=status, last_error=error)
    )


def _erased_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    if kind == CALL:  # connect_to is the rep's phone, not the lead's
        return payload | {"from_number": ERASED, "to_number": ERASED}
    variables = payload.get("template_variables") or {}
    return payload | {
        "text": erased(payload.get("text")),
        "template_variables": {k: erased(v) for k, v in variables.items()},
    }


def _erase(
    conn: Connection, new: dict[Key, dict[str, Any]], org: UUID, kind: str, ids: Any
) -> None:
    """Erase the payloads of the organization's rows of `kind` for these aggregates (a
    conversation, a lead's calls) and fail those still pending: in this batch, then before."""
    wanted = set(ids)
    for row in new.values():
        if (row["organization_id"], row["kind"]) == (org, kind) and row["aggregate_id"] in wanted:
            row["payload"] = _erased_payload(kind, row["payload"])
            if row["status"] == PENDING:
                row.update(status=FAILED, last_error=ERASED_ERROR)
    c = outbox.c
    query = sa.select(c.item_id, c.payload, c.status).where(
        c.organization_id == org, c.kind == kind, c.aggregate_id.in_(sorted(wanted))
    )
    params = []
    for item, payload, status in conn.execute(query) if wanted else ():
        erased_payload = _erased_payload(kind, payload)
        if status == PENDING or erased_payload != payload:
            params.append({"k_org": org, "k_item": item, "v_payload": erased_payload})
    if params:
        # decided on the row as it is when updated: a worker may have claimed it meanwhile
        pending = c.status == PENDING
        conn.execute(
            outbox.update()
            .where(c.organization_id == sa.bindparam("k_org"), c.item_id == sa.bindparam("k_item"))
            .values(
                payload=sa.bindparam("v_payload"),
                status=sa.case((pending, FAILED), else_=c.status),
                last_error=sa.case((pending, ERASED_ERROR), else_=c.last_error),
            ),
            params,
        )


def _erase_messages(
    conn: Connection, new: dict[Key, dict[str, Any]], org: UUID, conversation_id: UUID
) -> None:
    _erase(conn, new, org, MESSAGE, [conversation_id])


def _erase_calls(
    conn: Connection, new: dict[Key, dict[str, Any]], org: UUID, lead_id: UUID
) -> None:
    # the calls model has this batch's calls already: it runs first
    k = rm_calls.c
    calls = sa.select(k.call_id).where(k.organization_id == org, k.lead_id == lead_id)
    _erase(conn, new, org, CALL, conn.execute(calls).scalars())


def _row(envelope: Envelope, kind: str, item_id: UUID, payload: dict[str, Any]) -> dict[str, Any]:
    event = envelope.event
    return {
        "organization_id": event.organization_id,
        "item_id": item_id,
        "kind": kind,
        "aggregate_id": event.originator_id,
        "provider_type": event.provider_type,
        "payload": payload,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": event.timestamp,
        "claim_token": None,
        "provider_ref": None,
        "last_error": None,
        "created_at": event.timestamp,
        "updated_at": event.timestamp,
        "position": envelope.position,
    }


def _message_row(envelope: Envelope) -> dict[str, Any]:
    e = envelope.event
    payload = {
        "text": e.text,
        "template_name": e.template_name,
        "template_language": e.template_language,
        "template_variables": jsonable(dict(e.template_variables or {})),
    }
    return _row(envelope, MESSAGE, e.message_id, payload)


def _call_row(envelope: Envelope) -> dict[str, Any]:
    e = envelope.event
    payload = {"from_number": e.from_number, "to_number": e.to_number}
    if getattr(e, "connect_to", None):
        payload["connect_to"] = e.connect_to
    return _row(envelope, CALL, e.originator_id, payload)


# the dispatcher's statements


@dataclass(frozen=True)
class OutboxItem:
    """A claimed row: deliver it, then settle it with its claim token."""

    organization_id: UUID
    item_id: UUID
    kind: str
    aggregate_id: UUID
    provider_type: str
    payload: dict[str, Any]
    attempts: int
    claim_token: UUID
    provider_ref: str | None
    last_error: str | None
    created_at: datetime


def claim_next(conn: Connection, now: datetime, lease: timedelta) -> OutboxItem | None:
    """Claim the most overdue row (pending and due, or sending with an expired lease); see
    `projections.base.claim_due`."""
    row = claim_due(conn, outbox, "item_id", SENDING, now, lease)
    if row is None:
        return None
    return OutboxItem(
        organization_id=row["organization_id"],
        item_id=row["item_id"],
        kind=row["kind"],
        aggregate_id=row["aggregate_id"],
        provider_type=row["provider_type"],
        payload=dict(row["payload"]),
        attempts=int(row["attempts"]),
        claim_token=row["claim_token"],
        provider_ref=row["provider_ref"],
        last_error=row["last_error"],
        created_at=row["created_at"],
    )


def settle(
    conn: Connection,
    item: OutboxItem,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
    provider_ref: str | None = None,
    attempts: int | None = None,
) -> bool:
    """End a claim: done, failed, or pending again at `retry_at`. False if the claim was lost
    (its lease ran out and another worker took the row)."""
    values: dict[str, Any] = {
        "status": status,
        "claim_token": None,
        "updated_at": now,
        "last_error": None if error is None else error[:500],
    }
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if provider_ref is not None:
        values["provider_ref"] = provider_ref
    if attempts is not None:
        values["attempts"] = attempts
    moved = conn.execute(
        outbox.update()
        .where(outbox.c.organization_id == item.organization_id, outbox.c.item_id == item.item_id)
        .where(outbox.c.claim_token == item.claim_token)
        .values(**values)
    )
    return moved.rowcount == 1


def counts(conn: Connection) -> dict[str, int]:
    """Rows by status (for `crm outbox status`)."""
    rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))
    return {str(status): int(n) for status, n in rows}
