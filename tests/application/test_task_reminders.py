"""The task reminder timer: each due task comes due once — across restarts, beside a second
worker, after its due time changes — and never when it is closed or not due yet."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

from application.context import Ctx
from application.work import tasks
from application.work.reminders import TaskReminders
from domain.task import Task
from interfaces.services import Services
from tests.application.test_handlers import owner_of

NOW = datetime.now(UTC).replace(microsecond=0)


def worker(services: Services, **kw: int) -> TaskReminders:
    return TaskReminders(services.app, services.engine.connect, **kw)


def create(services: Services, ctx: Ctx, due_at: datetime, title: str = "Call") -> UUID:
    written = tasks.create_task(services.app, tasks.CreateTask(title=title, due_at=due_at), ctx)
    assert services.wait_for(["tasks"], written.position, timeout=10)
    return written.id


def came_due(services: Services, task_id: UUID) -> list[Task.CameDue]:
    events = services.app.events.get(task_id)
    return [e for e in events if isinstance(e, Task.CameDue)]


def settle(services: Services) -> None:
    head = services.app.recorder.max_notification_id() or 0
    assert services.wait_for(["tasks"], head, timeout=10)


def test_a_task_due_now_comes_due_once_across_a_restart(services: Services) -> None:
    ctx = owner_of(services)
    due, later = create(services, ctx, NOW), create(services, ctx, NOW + timedelta(minutes=5))

    first = worker(services)
    assert first.run(NOW) == 1
    assert first.run(NOW) == 0  # before the projector caught up: the aggregate refuses
    settle(services)
    assert worker(services).run(NOW + timedelta(seconds=30)) == 0  # a restarted process
    [event] = came_due(services, due)
    assert (event.due_at, event.assignee_id, event.title) == (NOW, ctx.user_id, "Call")
    assert (event.actor.kind, event.actor.id) == ("system", "timers")
    assert came_due(services, later) == []
    assert worker(services).run(NOW + timedelta(minutes=5)) == 1


def test_two_workers_at_once_record_each_reminder_once(services: Services) -> None:
    ctx = owner_of(services)
    ids = [create(services, ctx, NOW - timedelta(seconds=i)) for i in range(60)]
    counts: list[int] = []
    start = threading.Barrier(2)

    def run(w: TaskReminders) -> None:
        start.wait()
        counts.append(w.run(NOW))

    threads = [
        threading.Thread(target=run, args=(worker(services, read_batch=25, commit_batch=10),))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 60
    assert all(len(came_due(services, i)) == 1 for i in ids)


def test_a_new_due_time_is_reminded_again_and_a_closed_task_never(services: Services) -> None:
    ctx = owner_of(services)
    moved, done = create(services, ctx, NOW), create(services, ctx, NOW)
    tasks.complete_task(services.app, done, ctx)
    settle(services)
    assert worker(services).run(NOW) == 1
    later = NOW + timedelta(hours=1)
    tasks.edit_task(services.app, moved, tasks.EditTask(due_at=later), ctx)
    settle(services)
    w = worker(services)
    assert w.run(NOW + timedelta(minutes=59)) == 0
    assert w.run(later) == 1
    assert [e.due_at for e in came_due(services, moved)] == [NOW, later]
    assert came_due(services, done) == []
