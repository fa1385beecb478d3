"""When a task comes due: the timer's policy, recording `Task.CameDue` once per due time.

The deadlines are the rows of `rm_tasks` whose `remind_at` is set (open, reminder not yet
recorded for the current due time). Each due task is loaded and asked to `come_due`: the
aggregate refuses a second recording, so a restart or a second process never doubles a
reminder, and a row the projector has not caught up with yet costs a load, nothing more.
Tasks are saved many to a commit; a commit that loses a race to another process is retried one
task at a time, the lost ones being someone else's work done.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from application.store import CrmApplication
from domain.errors import NotFoundError, VersionConflictError
from domain.task import Task
from domain.values import Actor
from projections.tasks import rm_tasks

log = logging.getLogger(__name__)

TIMERS = Actor("system", "timers")
#: due rows read per statement, and tasks saved per commit
READ_BATCH = 1000
COMMIT_BATCH = 200
LOADERS = 4

Due = tuple[UUID, UUID, datetime, int]  # organization, task, due time, the row's version

# PostgreSQL has no skip scan before 18: walk the organizations holding pending reminders (one
# probe each, organization first in the index) and take each one's due rows by due time
_DUE_POSTGRES = sa.text(
    """
    WITH RECURSIVE orgs(organization_id) AS (
        (SELECT organization_id FROM rm_tasks WHERE remind_at IS NOT NULL
         ORDER BY organization_id LIMIT 1)
        UNION ALL
        SELECT (SELECT t.organization_id FROM rm_tasks t
                WHERE t.remind_at IS NOT NULL AND t.organization_id > orgs.organization_id
                ORDER BY t.organization_id LIMIT 1)
        FROM orgs WHERE orgs.organization_id IS NOT NULL
    )
    SELECT d.organization_id, d.task_id, d.remind_at, d.version FROM orgs CROSS JOIN LATERAL (
        SELECT t.organization_id, t.task_id, t.remind_at, t.version FROM rm_tasks t
        WHERE t.organization_id = orgs.organization_id AND t.remind_at IS NOT NULL
          AND t.remind_at <= :now
          AND (t.remind_at, t.organization_id, t.task_id) > (:after_at, :after_org, :after_id)
        ORDER BY t.remind_at, t.task_id LIMIT :limit
    ) d
    ORDER BY d.remind_at, d.organization_id, d.task_id LIMIT :limit
    """
)
_START = (datetime.fromisoformat("0001-01-01T00:00:00+00:00"), UUID(int=0), UUID(int=0))


def due_reminders(
    conn: Connection, now: datetime, *, limit: int, after: Due | None = None
) -> list[Due]:
    """Open tasks due by `now` whose reminder is not recorded, by due time (every organization:
    this is the platform's read, on the owner's connection)."""
    at, org, task = _START if after is None else (after[2], after[0], after[1])
    if conn.dialect.name == "postgresql":
        params = {"now": now, "after_at": at, "after_org": org, "after_id": task, "limit": limit}
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(_DUE_POSTGRES, params)]
    c = rm_tasks.c
    query = (
        sa.select(c.organization_id, c.task_id, c.remind_at, c.version)
        .where(c.remind_at.isnot(None), c.remind_at <= now)
        .where(sa.tuple_(c.remind_at, c.organization_id, c.task_id) > sa.tuple_(at, org, task))
        .order_by(c.remind_at, c.organization_id, c.task_id)
        .limit(limit)
    )
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


class TaskReminders:
    """The timer job: `run(now)` records every reminder due by `now`, returns how many."""

    def __init__(
        self,
        app: CrmApplication,
        connect: Callable[[], AbstractContextManager[Connection]],
        *,
        read_batch: int = READ_BATCH,
        commit_batch: int = COMMIT_BATCH,
    ) -> None:
        self.app = app
        self.connect = connect
        self.read_batch = read_batch
        self.commit_batch = commit_batch
        # rows (task, version) this process settled lately: those the projector has not caught
        # up with are skipped without loading their task again (the aggregate stays the
        # authority; any change of the task makes a new version, read afresh)
        self._recent: OrderedDict[tuple[UUID, int], None] = OrderedDict()
        # loading a task is mostly waiting for the database: a few at once
        self._loads = ThreadPoolExecutor(LOADERS, thread_name_prefix="task-reminders")

    def run(self, now: datetime) -> int:
        recorded = 0
        after: Due | None = None
        while True:
            with self.connect() as conn:
                due = due_reminders(conn, now, limit=self.read_batch, after=after)
            if not due:
                return recorded
            after = due[-1]
            fresh = [d for d in due if (d[1], d[3]) not in self._recent]
            chunks = list(_chunks(fresh, self.commit_batch))
            # workers reading the same rows take their chunks in different orders, so two
            # processes mostly share the work rather than race for the same tasks
            random.shuffle(chunks)
            for chunk in chunks:
                recorded += self._record(chunk, now)
            if len(due) < self.read_batch:
                return recorded

    def _record(self, due: Sequence[Due], now: datetime) -> int:
        tasks: list[Task] = []
        versions: dict[UUID, int] = {}
        for (_, task_id, due_at, version), task in zip(
            due, self._loads.map(self._load, due), strict=True
        ):
            if task is None:
                self._remember(task_id, version)
            elif task.come_due(due_at, now=now, actor=TIMERS):
                tasks.append(task)
                versions[task_id] = version
            else:
                self._remember(task_id, version)
        if not tasks:
            return 0
        try:
            self.app.commit(*tasks)
            recorded = len(tasks)
        except VersionConflictError:  # another process was here: keep what is still ours
            recorded = sum(self._commit_alone(t, now=now) for t in tasks)
        for task_id, version in versions.items():  # settled, by us or by someone else
            self._remember(task_id, version)
        return recorded

    def _load(self, due: Due) -> Task | None:
        org, task_id, _, _ = due
        try:
            return self.app.load(Task, task_id, org)
        except NotFoundError:  # pragma: no cover - a row without its task
            log.warning("timers: task %s of %s not in the log", task_id, org)
            return None

    def _commit_alone(self, stale: Task, *, now: datetime) -> bool:
        task = self.app.load(Task, stale.id, stale.organization_id)
        if not task.come_due(stale.due_at, now=now, actor=TIMERS):
            return False
        try:
            self.app.commit(task)
        except VersionConflictError:
            return False
        return True

    def _remember(self, task_id: UUID, version: int) -> None:
        self._recent[(task_id, version)] = None
        while len(self._recent) > 100_000:
            self._recent.popitem(last=False)


def _chunks(items: Sequence[Due], size: int) -> Iterator[Sequence[Due]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
