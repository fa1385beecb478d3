"""Tasks read model: one row per task, for lists ("my day") and for the reminder timer.

`remind_at` is the task's due time while its reminder is still to be recorded (open, and no
`Task.CameDue` for that due time yet), NULL otherwise: the timer reads only those rows, through
a partial index that holds nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.task import Task, TaskStatus, user_of
from projections.base import Envelope, Projector, UtcDateTime, metadata
from projections.conversations import BatchRows

rm_tasks = sa.Table(
    "rm_tasks",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("task_id", sa.Uuid, primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("notes", sa.Text),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("assignee_id", sa.Uuid, nullable=False),
    sa.Column("lead_id", sa.Uuid),
    sa.Column("priority", sa.String(10), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("created_by", sa.Uuid),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime),
    sa.Column("reminded_for", UtcDateTime),
    sa.Column("remind_at", UtcDateTime),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)
# the list's keyset order (due time, then id), for the whole organization and per assignee
sa.Index("ix_rm_tasks_due", rm_tasks.c.organization_id, rm_tasks.c.due_at, rm_tasks.c.task_id)
sa.Index(
    "ix_rm_tasks_assignee",
    rm_tasks.c.organization_id,
    rm_tasks.c.assignee_id,
    rm_tasks.c.due_at,
    rm_tasks.c.task_id,
)
sa.Index(
    "ix_rm_tasks_lead",
    rm_tasks.c.organization_id,
    rm_tasks.c.lead_id,
    rm_tasks.c.due_at,
    rm_tasks.c.task_id,
)
# reminders still to record, and only those
sa.Index(
    "ix_rm_tasks_remind",
    rm_tasks.c.organization_id,
    rm_tasks.c.remind_at,
    postgresql_where=rm_tasks.c.remind_at.isnot(None),
    sqlite_where=rm_tasks.c.remind_at.isnot(None),
)

TASK_EVENTS = frozenset(
    f"Task.{n}"
    for n in ("Created", "Edited", "Reassigned", "Completed", "Reopened", "Cancelled", "CameDue")
)


class TasksProjector(Projector):
    """Fills `rm_tasks`, one batch in memory and one write per kind."""

    name = "tasks"
    tables = (rm_tasks,)
    handles = TASK_EVENTS

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        tasks = BatchRows(rm_tasks, "task_id")
        tasks.load(
            conn,
            {
                (env.event.organization_id, env.event.originator_id)
                for env in batch
                if not isinstance(env.event, Task.Created)
            },
        )
        for env in batch:
            e = env.event
            if isinstance(e, Task.Created):
                tasks.add(_created(e, env.position))
                continue
            row = tasks.get(e.organization_id, e.originator_id)
            if row is None:  # defensive: a task whose creation this model never saw
                continue
            _apply(row, e)
            row.update(version=e.originator_version, updated_at=e.timestamp)
            row["remind_at"] = _remind_at(row)
            tasks.touch(row, env.position)
        tasks.flush(conn)


def _created(e: Task.Created, position: int) -> dict[str, Any]:
    return {
        "organization_id": e.organization_id,
        "task_id": e.originator_id,
        "title": e.title,
        "notes": e.notes,
        "due_at": e.due_at,
        "assignee_id": e.assignee_id,
        "lead_id": e.lead_id,
        "priority": e.priority,
        "kind": e.kind,
        "status": TaskStatus.OPEN.value,
        "created_by": user_of(e.actor),
        "created_at": e.timestamp,
        "updated_at": e.timestamp,
        "closed_at": None,
        "reminded_for": None,
        "remind_at": e.due_at,
        "version": e.originator_version,
        "position": position,
    }


def _apply(row: dict[str, Any], e: Any) -> None:
    if isinstance(e, Task.Edited):
        row.update(e.changes)
        if "due_at" in e.changes:
            row["reminded_for"] = None
    elif isinstance(e, Task.Reassigned):
        row["assignee_id"] = e.to_user_id
    elif isinstance(e, Task.Completed):
        row.update(status=TaskStatus.COMPLETED.value, closed_at=e.timestamp)
    elif isinstance(e, Task.Cancelled):
        row.update(status=TaskStatus.CANCELLED.value, closed_at=e.timestamp)
    elif isinstance(e, Task.Reopened):
        row.update(status=TaskStatus.OPEN.value, closed_at=None)
    elif isinstance(e, Task.CameDue):
        row["reminded_for"] = e.due_at


def _remind_at(row: dict[str, Any]) -> Any:
    if row["status"] != TaskStatus.OPEN.value or row["reminded_for"] == row["due_at"]:
        return None
    return row["due_at"]
