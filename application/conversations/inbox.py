"""Inbox and calls log queries: conversations, their messages, a lead's messages, calls.

Every query takes the organization first and filters by it; lists are newest first with keyset
cursors over (time, id), like the other lists of `application.leads.queries`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.paging import MAX_LIMIT, Page, decode_cursor, encode_cursor
from domain.errors import InvalidValueError, NotFoundError
from projections.calls import rm_calls
from projections.conversations import rm_conversations, rm_messages

CONVERSATION_STATUSES = ("open", "closed")
DIRECTIONS = ("inbound", "outbound")


class ConversationView(msgspec.Struct, frozen=True):
    id: UUID
    lead_id: UUID
    channel: str
    contact: str
    status: str
    handled_by: UUID | None
    assigned_to: UUID | None
    provider_type: str | None
    last_message_at: datetime | None
    last_message_preview: str | None
    last_message_direction: str | None
    unread_count: int
    waiting_since: datetime | None
    message_count: int
    started_at: datetime
    #: the latest analysed inbound message's sentiment (-1..1) and urgency (0..100)
    latest_sentiment: float | None = None
    latest_urgency: int | None = None
    #: the last analysed sentiments, oldest first
    sentiment_trend: list[float] = []


class MessageView(msgspec.Struct, frozen=True):
    id: UUID
    conversation_id: UUID
    lead_id: UUID
    direction: str
    provider_type: str
    provider_message_id: str | None
    text: str | None
    template_name: str | None
    template_variables: dict[str, Any]
    status: str
    error: str | None
    contact_name: str | None
    occurred_at: datetime
    status_changed_at: datetime
    #: an inbound message's analysis (None until analysed)
    sentiment: float | None = None
    urgency: int | None = None
    intent: str | None = None
    summary: str | None = None


class CallView(msgspec.Struct, frozen=True):
    id: UUID
    lead_id: UUID
    direction: str
    provider_type: str
    provider_call_id: str | None
    from_number: str
    to_number: str
    status: str
    outcome: str | None
    duration_seconds: int | None
    recording_urls: list[str]
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    placed_by: UUID | None


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValueError("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def _one_of(field: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidValueError(field, f"must be {' or '.join(allowed)}")
    return value


def _time_cursor(cursor: str) -> tuple[datetime, UUID]:
    raw_time, raw_id = decode_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(raw_time)
        if at.tzinfo is None:
            raise ValueError(raw_time)
        return at.astimezone(UTC), UUID(raw_id)
    except (ValueError, OverflowError):  # year 1 at +05:00 has no UTC equivalent
        raise InvalidValueError("cursor", "is not a cursor this list gave out") from None


def _page(
    conn: Connection,
    query: sa.Select[Any],
    key: tuple[sa.Column[Any], sa.Column[Any]],
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], str | None]:
    """Rows newest first by (time, id) after the cursor, and the cursor of the next page."""
    size = _limit(limit)
    if cursor:
        query = query.where(sa.tuple_(*key) < sa.tuple_(*_time_cursor(cursor)))
    ordered = query.order_by(key[0].desc(), key[1].desc()).limit(size + 1)
    rows = list(conn.execute(ordered).mappings())
    if len(rows) <= size:
        return rows, None
    last = rows[size - 1]
    return rows[:size], encode_cursor(last[key[0].name], last[key[1].name])


def _conversation(r: Any) -> ConversationView:
    return ConversationView(
        id=r["conversation_id"],
        lead_id=r["lead_id"],
        channel=r["channel"],
        contact=r["contact"],
        status=r["status"],
        handled_by=r["handled_by"],
        assigned_to=r["assigned_to"],
        provider_type=r["provider_type"],
        # the row sorts by its start time until a first message arrives
        last_message_at=r["last_message_at"] if r["message_count"] else None,
        last_message_preview=r["last_message_preview"],
        last_message_direction=r["last_message_direction"],
        unread_count=r["unread_count"],
        waiting_since=r["waiting_since"],
        message_count=r["message_count"],
        started_at=r["started_at"],
        latest_sentiment=r["latest_sentiment"],
        latest_urgency=r["latest_urgency"],
        sentiment_trend=list(r["sentiment_trend"] or []),
    )


def _message(r: Any) -> MessageView:
    fields = {k: v for k, v in r.items() if k not in ("organization_id", "message_id", "position")}
    return MessageView(id=r["message_id"], **fields)


def _call(r: Any) -> CallView:
    fields = {k: v for k, v in r.items() if k not in ("organization_id", "call_id", "position")}
    return CallView(id=r["call_id"], **fields)


def list_conversations(
    conn: Connection,
    organization_id: UUID,
    *,
    status: str | None = None,
    assigned_to: UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The inbox: conversations by their last message, newest first."""
    c = rm_conversations.c
    query = sa.select(rm_conversations).where(c.organization_id == organization_id)
    if _one_of("status", status, CONVERSATION_STATUSES) is not None:
        query = query.where(c.status == status)
    if assigned_to is not None:
        query = query.where(c.assigned_to == assigned_to)
    rows, next_cursor = _page(conn, query, (c.last_message_at, c.conversation_id), cursor, limit)
    return Page(items=[_conversation(r) for r in rows], next_cursor=next_cursor)


def get_conversation(
    conn: Connection, organization_id: UUID, conversation_id: UUID
) -> ConversationView:
    c = rm_conversations.c
    row = (
        conn.execute(
            sa.select(rm_conversations).where(
                c.organization_id == organization_id, c.conversation_id == conversation_id
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("conversation", conversation_id)
    return _conversation(row)


def conversation_messages(
    conn: Connection,
    organization_id: UUID,
    conversation_id: UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """A conversation's messages, newest first; not found outside the organization."""
    get_conversation(conn, organization_id, conversation_id)
    c = rm_messages.c
    query = sa.select(rm_messages).where(
        c.organization_id == organization_id, c.conversation_id == conversation_id
    )
    rows, next_cursor = _page(conn, query, (c.occurred_at, c.message_id), cursor, limit)
    return Page(items=[_message(r) for r in rows], next_cursor=next_cursor)


def lead_messages(
    conn: Connection,
    organization_id: UUID,
    lead_id: UUID,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """A lead's messages over all its conversations, newest first (callers check the lead)."""
    c = rm_messages.c
    query = sa.select(rm_messages).where(c.organization_id == organization_id, c.lead_id == lead_id)
    rows, next_cursor = _page(conn, query, (c.occurred_at, c.message_id), cursor, limit)
    return Page(items=[_message(r) for r in rows], next_cursor=next_cursor)


def list_calls(
    conn: Connection,
    organization_id: UUID,
    *,
    lead_id: UUID | None = None,
    direction: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The calls log, newest first, of the organization or of one lead."""
    c = rm_calls.c
    query = sa.select(rm_calls).where(c.organization_id == organization_id)
    if lead_id is not None:
        query = query.where(c.lead_id == lead_id)
    if _one_of("direction", direction, DIRECTIONS) is not None:
        query = query.where(c.direction == direction)
    rows, next_cursor = _page(conn, query, (c.started_at, c.call_id), cursor, limit)
    return Page(items=[_call(r) for r in rows], next_cursor=next_cursor)


def get_call(conn: Connection, organization_id: UUID, call_id: UUID) -> CallView:
    c = rm_calls.c
    row = (
        conn.execute(
            sa.select(rm_calls).where(c.organization_id == organization_id, c.call_id == call_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError("call", call_id)
    return _call(row)
