"""Task routes: the list ("my day": `?assignee=me&due=today`), one task, create, edit, and the
complete / reopen / cancel verbs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, patch, post
from litestar.di import Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from application.context import Written
from application.paging import Page
from application.permissions import Permission
from application.work import task_queries as queries
from application.work import tasks as cmds
from interfaces.http.common import answer, parse_time, read_after
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard

READ = {"permission": Permission.TASKS_READ}
# whose tasks a role may create or change is the use cases' rule (application.work.tasks)
WRITE = {"permission": Permission.TASKS_WRITE}


class TaskController(Controller):
    path = "/crm/tasks"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["tasks"]  # noqa: RUF012

    @get("/", opt=READ, sync_to_thread=True, operation_id="listTasks")
    def list(
        self,
        request: Request[Any, Any, Any],
        ctx: CtxDep,
        services: ServicesDep,
        assignee: Annotated[str | None, QueryParameter(max_length=36)] = None,
        lead_id: FromQuery[UUID | None] = None,
        status: Annotated[str | None, QueryParameter(max_length=20)] = None,
        due_after: FromQuery[str | None] = None,
        due_before: FromQuery[str | None] = None,
        due: Annotated[str | None, QueryParameter(max_length=20)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> Response[Page]:
        """Tasks by due time, earliest first, with keyset pagination.

        `assignee` is a member id or `me`; `due=today` is the caller's local day (their own
        time zone preference, else the organization's), `due=overdue` open tasks past due;
        `due_after` (inclusive) and `due_before` (exclusive) bound the due time.
        """
        zone = ZoneInfo("UTC")
        if due == "today":
            zone = queries.member_zone(services.app, services.users, ctx)
        where = queries.task_filter(
            ctx,
            now=datetime.now(UTC),
            zone=zone,
            assignee=assignee,
            lead_id=lead_id,
            status=status,
            due_after=parse_time("due_after", due_after),
            due_before=parse_time("due_before", due_before),
            due=due,
        )
        headers = read_after(services, request, "tasks")
        with services.reading(ctx.organization_id) as conn:
            page = queries.list_tasks(conn, ctx.organization_id, where, limit=limit, cursor=cursor)
        return answer(page, headers)

    @get("/{task_id:uuid}", opt=READ, sync_to_thread=True, operation_id="getTask")
    def detail(
        self,
        request: Request[Any, Any, Any],
        task_id: FromPath[UUID],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Response[queries.TaskView]:
        """One task of the caller's organization."""
        headers = read_after(services, request, "tasks")
        with services.reading(ctx.organization_id) as conn:
            return answer(queries.get_task(conn, ctx.organization_id, task_id), headers)

    @post("/", opt=WRITE, sync_to_thread=True, operation_id="createTask")
    def create(
        self, data: JSONBody[cmds.CreateTask], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Create a task (for the caller unless `assignee_id` names another member)."""
        return cmds.create_task(services.app, data, ctx)

    @patch("/{task_id:uuid}", opt=WRITE, sync_to_thread=True, operation_id="editTask")
    def edit(
        self,
        task_id: FromPath[UUID],
        data: JSONBody[cmds.EditTask],
        ctx: CtxDep,
        services: ServicesDep,
    ) -> Written:
        """Change some of an open task's fields or its assignee; `expected_version` guards
        against lost updates (409 with the current version)."""
        return cmds.edit_task(services.app, task_id, data, ctx)

    @post(
        "/{task_id:uuid}/complete",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="completeTask",
    )
    def complete(self, task_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Mark an open task done."""
        return cmds.complete_task(services.app, task_id, ctx)

    @post(
        "/{task_id:uuid}/reopen",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="reopenTask",
    )
    def reopen(self, task_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Open a completed or cancelled task again."""
        return cmds.reopen_task(services.app, task_id, ctx)

    @post(
        "/{task_id:uuid}/cancel",
        opt=WRITE,
        sync_to_thread=True,
        status_code=200,
        operation_id="cancelTask",
    )
    def cancel(self, task_id: FromPath[UUID], ctx: CtxDep, services: ServicesDep) -> Written:
        """Cancel an open task: it stays, as cancelled."""
        return cmds.cancel_task(services.app, task_id, ctx)
