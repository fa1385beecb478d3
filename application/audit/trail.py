"""The audit trail: every event of the organization, newest first, from its read model."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.paging import Page, encode_cursor, limit_of, number_cursor
from domain.errors import InvalidValueError
from projections.audit import rm_audit_events


class AuditEvent(msgspec.Struct, frozen=True):
    position: int
    aggregate_type: str
    resource_id: UUID
    version: int
    event_type: str
    actor_kind: str
    actor_id: str
    ip: str | None
    user_agent: str | None
    occurred_at: datetime
    changes: dict[str, Any]


def audit_events(
    conn: Connection,
    org: UUID,
    *,
    resource_id: UUID | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page:
    c = rm_audit_events.c
    query = sa.select(rm_audit_events).where(c.organization_id == org)
    if resource_id is not None:
        query = query.where(c.resource_id == resource_id)
    if event_type:
        query = query.where(c.event_type == event_type)
    if since is not None:
        query = query.where(c.occurred_at >= since)
    if until is not None:
        query = query.where(c.occurred_at < until)
    if since is not None and until is not None and since > until:
        raise InvalidValueError("since", "must not be after until")
    if cursor:
        query = query.where(c.position < number_cursor(cursor))
    size = limit_of(limit)
    rows = conn.execute(query.order_by(c.position.desc()).limit(size + 1)).mappings()
    items = [AuditEvent(**{k: v for k, v in r.items() if k != "organization_id"}) for r in rows]
    next_cursor = None
    if len(items) > size:
        items = items[:size]
        next_cursor = encode_cursor(items[-1].position)
    return Page(items=items, next_cursor=next_cursor)
