"""Task use cases: create, edit, reassign, complete, reopen, cancel.

Rules beside the aggregate's: the assignee is a member of the caller's organization and the
lead one of its leads (another organization's is not found, and audited by the edge); a member
limited to their own work (sales) creates tasks only for themselves and changes only tasks
assigned to them or created by them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.permissions import NotPermittedError, Permission, own_leads_only
from application.store import CrmApplication
from domain.errors import InvalidValueError, NotFoundError, VersionConflictError
from domain.lead import Lead
from domain.organization import Organization
from domain.task import EDITABLE_FIELDS, Task, TaskKind, TaskPriority

UNSET: Any = msgspec.UNSET


class CreateTask(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    title: str
    due_at: datetime
    notes: str | None = None
    #: None: the caller (a person) takes it
    assignee_id: UUID | None = None
    lead_id: UUID | None = None
    priority: str = TaskPriority.NORMAL.value
    kind: str = TaskKind.OTHER.value


class EditTask(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A partial change: absent fields stay; `assignee_id` reassigns."""

    expected_version: int | None = None
    title: str | msgspec.UnsetType = msgspec.UNSET
    notes: str | None | msgspec.UnsetType = msgspec.UNSET
    due_at: datetime | msgspec.UnsetType = msgspec.UNSET
    priority: str | msgspec.UnsetType = msgspec.UNSET
    kind: str | msgspec.UnsetType = msgspec.UNSET
    lead_id: UUID | None | msgspec.UnsetType = msgspec.UNSET
    assignee_id: UUID | msgspec.UnsetType = msgspec.UNSET

    def fields(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in EDITABLE_FIELDS if getattr(self, n) is not UNSET}


def check_member(app: CrmApplication, user_id: UUID, ctx: Ctx) -> None:
    """A task's assignee belongs to the caller's organization (whoever they are elsewhere)."""
    org = app.view(Organization, ctx.organization_id, ctx.organization_id)
    if org.role_of(user_id) is None:
        raise NotFoundError("member", user_id)


def check_lead(app: CrmApplication, lead_id: UUID | None, ctx: Ctx) -> None:
    """A task's lead is one of the caller's organization (another's: ForeignAggregateError)."""
    if lead_id is not None:
        app.load(Lead, lead_id, ctx.organization_id)


def _assignee(ctx: Ctx, wanted: UUID | None) -> UUID:
    """Who a new task is for: as asked, else the calling person; sales only for themselves."""
    if own_leads_only(ctx) and wanted not in (None, ctx.user_id):
        raise NotPermittedError(
            Permission.TASKS_WRITE, f"{ctx.role} members create tasks only for themselves"
        )
    if wanted is not None:
        return wanted
    if ctx.actor.kind != "user":
        raise InvalidValueError("assignee_id", "is required when the caller is not a person")
    return ctx.user_id


def _task(app: CrmApplication, task_id: UUID, ctx: Ctx, expected: int | None = None) -> Task:
    """The caller's task to change: another organization's is not found; a member limited to
    their own work may change it only if it is theirs (before any version check)."""
    task = app.load(Task, task_id, ctx.organization_id)
    if own_leads_only(ctx) and ctx.user_id not in (task.assignee_id, task.created_by):
        raise NotPermittedError(
            Permission.TASKS_WRITE,
            f"{ctx.role} members change only tasks assigned to them or created by them",
        )
    if expected is not None and task.version != expected:
        raise VersionConflictError(task.id, task.version, expected)
    return task


def _written(app: CrmApplication, task: Task) -> Written:
    return Written(id=task.id, version=task.version, position=app.commit(task))


def create_task(app: CrmApplication, cmd: CreateTask, ctx: Ctx) -> Written:
    assignee = _assignee(ctx, cmd.assignee_id)
    # validate the values before looking anything up: bad input is 422 whatever the ids
    task = Task.create(
        organization_id=ctx.organization_id,
        title=cmd.title,
        due_at=cmd.due_at,
        assignee_id=assignee,
        notes=cmd.notes,
        lead_id=cmd.lead_id,
        priority=cmd.priority,
        kind=cmd.kind,
        actor=ctx.actor,
    )
    check_member(app, assignee, ctx)
    check_lead(app, cmd.lead_id, ctx)
    return _written(app, task)


def edit_task(app: CrmApplication, task_id: UUID, cmd: EditTask, ctx: Ctx) -> Written:
    task = _task(app, task_id, ctx, cmd.expected_version)
    fields = cmd.fields()
    task.edit(fields, actor=ctx.actor)
    if fields.get("lead_id") is not None:
        check_lead(app, fields["lead_id"], ctx)
    if isinstance(cmd.assignee_id, UUID):
        if own_leads_only(ctx) and cmd.assignee_id != ctx.user_id:
            raise NotPermittedError(
                Permission.TASKS_WRITE, f"{ctx.role} members assign tasks only to themselves"
            )
        check_member(app, cmd.assignee_id, ctx)
        task.reassign(cmd.assignee_id, actor=ctx.actor)
    return _written(app, task)


def complete_task(app: CrmApplication, task_id: UUID, ctx: Ctx) -> Written:
    task = _task(app, task_id, ctx)
    task.complete(actor=ctx.actor)
    return _written(app, task)


def reopen_task(app: CrmApplication, task_id: UUID, ctx: Ctx) -> Written:
    task = _task(app, task_id, ctx)
    task.reopen(actor=ctx.actor)
    return _written(app, task)


def cancel_task(app: CrmApplication, task_id: UUID, ctx: Ctx) -> Written:
    task = _task(app, task_id, ctx)
    task.cancel(actor=ctx.actor)
    return _written(app, task)
