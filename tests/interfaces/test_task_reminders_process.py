"""Task reminders from real processes: two `crm timers run` against one PostgreSQL database
record each due task's `Task.CameDue` exactly once, and a process killed (kill -9) and started
again neither loses a reminder nor repeats one."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from application.context import Ctx
from application.identity import accounts
from application.work import tasks
from domain.task import Task
from domain.values import Actor, Role
from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.services import Services, build_services
from interfaces.settings import load_settings
from tests.interfaces.test_process import Proc, child_env
from tests.support.databases import scratch_postgres

SECRET = "reminder-process-secret-key-of-at-least-32-chars"
pytestmark = pytest.mark.slow
TASKS = 150


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def reminders(services: Services, ids: list[UUID]) -> dict[UUID, list[datetime]]:
    return {
        i: [e.due_at for e in services.app.events.get(i) if isinstance(e, Task.CameDue)]
        for i in ids
    }


def test_two_timer_processes_and_a_killed_one_record_each_reminder_once(tmp_path: Path) -> None:
    with scratch_postgres("crm_test_reminders") as url:
        crm = {"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": SECRET, "CRM_OUTBOX": "off"}
        settings = load_settings(crm)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        services = build_services(settings)  # this process projects; the children only time
        services.start_projections()
        try:
            _run(services, crm, tmp_path)
        finally:
            services.close()


def _run(services: Services, crm: dict[str, str], cwd: Path) -> None:
    cmd = accounts.Register("owner@reminders.example", "long enough pw", "Owner", "Reminders")
    done = accounts.register(services.app, services.users, services.hasher, cmd)
    ctx = Ctx(done.organization_id, done.user_id, Role.ADMIN, Actor("user", str(done.user_id)))
    due = datetime.now(UTC) + timedelta(seconds=4)  # due while both processes are running
    ids = [
        tasks.create_task(services.app, tasks.CreateTask(title=f"T{i}", due_at=due), ctx).id
        for i in range(TASKS)
    ]
    timers = ["timers", "run", "--poll-interval", "0.2"]
    first, second = Proc(timers, child_env(**crm), cwd), Proc(timers, child_env(**crm), cwd)
    try:
        eventually(lambda: all(reminders(services, ids).values()), "every task came due")
        time.sleep(1.5)  # a second recording would show within a few polls
        assert all(r == [due] for r in reminders(services, ids).values())

        # kill -9 both while half the tasks get a new due time: a third process started
        # afterwards records exactly those, once
        first.kill()
        again = datetime.now(UTC) + timedelta(seconds=3)
        for task_id in ids[: TASKS // 2]:
            tasks.edit_task(services.app, task_id, tasks.EditTask(due_at=again), ctx)
        second.kill()
        third = Proc(timers, child_env(**crm), cwd)
        try:
            expected = {i: [due, again] if n < TASKS // 2 else [due] for n, i in enumerate(ids)}
            eventually(lambda: reminders(services, ids) == expected, "the moved tasks came due")
            time.sleep(1.5)
            assert reminders(services, ids) == expected
            assert third.stop() == 0, third.output()
        finally:
            third.kill()
        for proc in (first, second, third):
            assert "Traceback" not in proc.output(), proc.output()
    finally:
        first.kill()
        second.kill()
