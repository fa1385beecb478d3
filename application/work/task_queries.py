"""Task queries over `rm_tasks`: one task, and the list (with "my day") in due-time order.

Every query takes the organization first and filters by it. "Today" is the member's own day:
their time zone preference if they set one, else their organization's time zone.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.context import Ctx
from application.paging import Page, decode_cursor, encode_cursor, limit_of
from application.ports import UserRepository
from application.store import CrmApplication
from domain.errors import InvalidValueError
from domain.organization import Organization
from domain.task import TaskNotFoundError, TaskStatus
from projections.tasks import rm_tasks

DUE_WINDOWS = ("today", "overdue")


class TaskView(msgspec.Struct, frozen=True):
    id: UUID
    title: str
    notes: str | None
    due_at: datetime
    assignee_id: UUID
    lead_id: UUID | None
    priority: str
    kind: str
    status: str
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    #: the due time whose reminder was recorded (null: none yet for the current due time)
    reminded_for: datetime | None
    version: int


class TaskFilter(msgspec.Struct, frozen=True):
    """What the list shows; every field narrows it."""

    assignee_id: UUID | None = None
    lead_id: UUID | None = None
    status: str | None = None
    due_after: datetime | None = None  # inclusive
    due_before: datetime | None = None  # exclusive


def _view(r: Any) -> TaskView:
    return TaskView(
        id=r["task_id"],
        title=r["title"],
        notes=r["notes"],
        due_at=r["due_at"],
        assignee_id=r["assignee_id"],
        lead_id=r["lead_id"],
        priority=r["priority"],
        kind=r["kind"],
        status=r["status"],
        created_by=r["created_by"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        closed_at=r["closed_at"],
        reminded_for=r["reminded_for"],
        version=r["version"],
    )


def member_zone(app: CrmApplication, users: UserRepository, ctx: Ctx) -> ZoneInfo:
    """The caller's time zone: their own preference, else their organization's."""
    name = users.preferences(ctx.user_id).get("timezone") if ctx.actor.kind == "user" else None
    if not isinstance(name, str):
        name = app.view(Organization, ctx.organization_id, ctx.organization_id).timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_of(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local day holding `moment` in `zone`, as [start, end) instants (23 or 25 hours on
    the days clocks change)."""
    local = moment.astimezone(zone).date()
    start = datetime.combine(local, time(), zone)
    end = datetime.combine(local + timedelta(days=1), time(), zone)
    return start, end


def task_filter(
    ctx: Ctx,
    *,
    now: datetime,
    zone: ZoneInfo,
    assignee: str | None = None,
    lead_id: UUID | None = None,
    status: str | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
    due: str | None = None,
) -> TaskFilter:
    """The list's filter from a request's parameters: `assignee=me` is the caller, `due=today`
    the caller's local day, `due=overdue` open tasks due before now."""
    assignee_id: UUID | None = None
    if assignee == "me":
        if ctx.actor.kind != "user":
            raise InvalidValueError("assignee", "'me' names a person; a key has no tasks")
        assignee_id = ctx.user_id
    elif assignee is not None:
        try:
            assignee_id = UUID(assignee)
        except ValueError:
            raise InvalidValueError("assignee", "must be a member id or 'me'") from None
    if status is not None and status not in {s.value for s in TaskStatus}:
        raise InvalidValueError("status", "must be open, completed or cancelled")
    for name, value in (("due_after", due_after), ("due_before", due_before)):
        if value is not None and value.tzinfo is None:
            raise InvalidValueError(name, "must be a date-time with a time zone offset")
    if due == "today":
        start, end = day_of(now, zone)
        due_after = max(due_after, start) if due_after else start
        due_before = min(due_before, end) if due_before else end
    elif due == "overdue":
        due_before = min(due_before, now) if due_before else now
        if status is None:
            status = TaskStatus.OPEN.value
    elif due is not None:
        raise InvalidValueError("due", f"must be one of {', '.join(DUE_WINDOWS)}")
    return TaskFilter(assignee_id, lead_id, status, due_after, due_before)


def get_task(conn: Connection, org: UUID, task_id: UUID) -> TaskView:
    c = rm_tasks.c
    row = (
        conn.execute(sa.select(rm_tasks).where(c.organization_id == org, c.task_id == task_id))
        .mappings()
        .first()
    )
    if row is None:
        raise TaskNotFoundError(task_id)
    return _view(row)


def list_tasks(
    conn: Connection, org: UUID, where: TaskFilter, *, limit: int = 50, cursor: str | None = None
) -> Page:
    """Tasks by due time, earliest first (then by id), with keyset pagination."""
    c = rm_tasks.c
    query = sa.select(rm_tasks).where(c.organization_id == org)
    if where.assignee_id is not None:
        query = query.where(c.assignee_id == where.assignee_id)
    if where.lead_id is not None:
        query = query.where(c.lead_id == where.lead_id)
    if where.status is not None:
        query = query.where(c.status == where.status)
    if where.due_after is not None:
        query = query.where(c.due_at >= where.due_after)
    if where.due_before is not None:
        query = query.where(c.due_at < where.due_before)
    if cursor:
        due_at, task_id = decode_cursor(cursor, 2)
        try:
            key = (datetime.fromisoformat(due_at), UUID(task_id))
        except ValueError:
            raise InvalidValueError("cursor", "is not a cursor this list gave out") from None
        if key[0].tzinfo is None:
            raise InvalidValueError("cursor", "is not a cursor this list gave out")
        query = query.where(sa.tuple_(c.due_at, c.task_id) > sa.tuple_(*key))
    size = limit_of(limit)
    rows = conn.execute(query.order_by(c.due_at, c.task_id).limit(size + 1)).mappings()
    items = [_view(r) for r in rows]
    next_cursor = None
    if len(items) > size:
        items = items[:size]
        next_cursor = encode_cursor(items[-1].due_at, items[-1].id)
    return Page(items=items, next_cursor=next_cursor)
