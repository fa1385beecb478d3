"""(j) Tasks: reminders of 10k tasks due at once, and GET /crm/tasks with 100k tasks in one
organization among 1,000.

Reminders: 10k tasks are written through the aggregate path (many per `app.commit`), spread over
100 organizations, projected into rm_tasks by this process's runner, then recorded as
`Task.CameDue` (1) by one in-process `TaskReminders.run(now)`, all due already, and (2) by two
`crm timers run` processes started before a fresh 10k come due at the same second: the figure
is the time from that second until the log holds all 10k reminders (each exactly once).

List: the big organization is registered for real (HTTP); its 100k tasks and the 999 others'
are written straight into rm_tasks by COPY, mimicking the tasks projector (100k through the
aggregate path would take minutes). GET /crm/tasks is then timed through the server: the first
page, "my day" (`assignee=me&due=today`), one member's open tasks, and a page deep in the list.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID, uuid4

import httpx
import psycopg

from application.work.reminders import TaskReminders
from bench.common import Results, Scale, dsn, latency_line, ms, pct, say, scratch_db, settings_for
from bench.server import HttpConnection, _crm, crm_server, register, server_env
from domain.organization import Organization
from domain.task import Task
from domain.values import Actor
from interfaces.services import Services, build_services

ACTOR = Actor(kind="user", id=str(uuid4()))
CAME_DUE = "domain.task:Task.CameDue"
TASK_COLUMNS = (
    "organization_id",
    "task_id",
    "title",
    "notes",
    "due_at",
    "assignee_id",
    "lead_id",
    "priority",
    "kind",
    "status",
    "created_by",
    "created_at",
    "updated_at",
    "closed_at",
    "reminded_for",
    "remind_at",
    "version",
    "position",
)


def bench_tasks(scale: Scale, results: Results) -> None:
    n = 1_000 if scale.quick else 10_000
    _reminders(n, results)
    _list(scale, results)


# --------------------------------------------------------------------------- reminders


def _organizations(services: Services, n: int) -> list[tuple[UUID, UUID]]:
    """Organizations with their owner: a reminder notifies a member, so assignees must be."""
    orgs = [
        Organization.register(name=f"Bench {i}", owner_user_id=uuid4(), actor=ACTOR)
        for i in range(n)
    ]
    services.app.commit(*orgs)
    return [(org.id, next(iter(org.members))) for org in orgs]


def _write_tasks(services: Services, n: int, due: datetime, orgs: list[tuple[UUID, UUID]]) -> int:
    tasks = [
        Task.create(
            organization_id=orgs[i % len(orgs)][0],
            title=f"Call {i}",
            due_at=due,
            assignee_id=orgs[i % len(orgs)][1],
            actor=ACTOR,
        )
        for i in range(n)
    ]
    for start in range(0, n, 1000):
        services.app.commit(*tasks[start : start + 1000])
    head = services.app.recorder.max_notification_id() or 0
    if not services.wait_for(["tasks"], head, timeout=120):
        raise RuntimeError("the tasks projector did not catch up")
    return head


def _came_due(db: str) -> tuple[int, int]:
    """Reminders in the log: (events, distinct tasks)."""
    with psycopg.connect(dsn(db)) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT originator_id) FROM crm_events WHERE topic = %s",
            (CAME_DUE,),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _notified(db: str) -> int:
    """Task-due notifications made so far."""
    with psycopg.connect(dsn(db)) as conn:
        row = conn.execute("SELECT count(*) FROM rm_notifications WHERE kind = 'task_due'")
        found = row.fetchone()
    return int(found[0]) if found else 0


def _reminders(n: int, results: Results) -> None:
    name = "j_tasks"
    with scratch_db("crm_bench_j") as db:
        services = build_services(settings_for(db, CRM_OUTBOX="off"))
        services.start_projections()
        try:
            orgs = _organizations(services, 100)
            now = datetime.now(UTC)
            t0 = time.perf_counter()
            _write_tasks(services, n, now - timedelta(seconds=1), orgs)
            say(
                f"  {n:,} tasks over 100 organizations written and projected in "
                f"{time.perf_counter() - t0:.1f} s"
            )
            job = TaskReminders(services.app, services.engine.connect)
            t0 = time.perf_counter()
            recorded = job.run(datetime.now(UTC))
            one = time.perf_counter() - t0
            say(
                f"  (1) one in-process worker recorded {recorded:,} reminders in {one:.2f} s "
                f"({recorded / one:,.0f}/s)"
            )
            results.add(
                name,
                f"{n // 1000}k reminders, one worker",
                one,
                "s",
                bar="< 60 s",
                meets=one < 60 and recorded == n,
            )

            due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=40)
            _write_tasks(services, n, due, orgs)
            env = server_env(db, CRM_OUTBOX="off")
            args = [_crm(), "timers", "run", "--poll-interval", "1"]
            procs = [
                subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for _ in range(2)
            ]
            try:
                while datetime.now(UTC) < due:
                    time.sleep(0.05)
                t0 = time.perf_counter()
                deadline = t0 + 120
                while _came_due(db)[1] < 2 * n and time.perf_counter() < deadline:
                    time.sleep(0.1)
                two = time.perf_counter() - t0
                while _notified(db) < 2 * n and time.perf_counter() < deadline:
                    time.sleep(0.1)
                notified_after = time.perf_counter() - t0
                time.sleep(2)  # a doubled reminder would show within a poll or two
                events, tasks = _came_due(db)
                notified = _notified(db)
            finally:
                for p in procs:
                    p.terminate()
                    p.wait(timeout=30)
            say(
                f"  (2) two `crm timers run` processes: {n:,} tasks due at the same second "
                f"all reminded {two:.2f} s after it; {events - n:,} reminder events for "
                f"{tasks - n:,} tasks (each once: {events == tasks == 2 * n})"
            )
            results.add(
                name,
                f"{n // 1000}k due at once, two processes",
                two,
                "s",
                bar="< 60 s",
                meets=two < 60 and events == tasks == 2 * n,
            )
            say(
                f"  (3) their assignees notified {notified_after:.2f} s after the due time "
                f"({notified - n:,} task-due notifications for {n:,} tasks)"
            )
            results.add(
                name,
                f"{n // 1000}k due at once, all notified",
                notified_after,
                "s",
                bar="< 60 s",
                meets=notified_after < 60 and notified == 2 * n,
            )
        finally:
            services.close()


# --------------------------------------------------------------------------- list


def _task_rows(rng: random.Random, org: UUID, members: list[UUID], n: int, now: datetime) -> Any:
    for i in range(n):
        due = now + timedelta(seconds=rng.randint(-180 * 86400, 180 * 86400))
        status = rng.choices(("open", "completed", "cancelled"), (80, 15, 5))[0]
        created = due - timedelta(days=rng.randint(1, 30))
        closed = None if status == "open" else created + timedelta(hours=1)
        remind = due if status == "open" and due > now else None
        reminded = due if status == "open" and due <= now else None
        yield (
            org,
            uuid4(),
            f"Task {i}",
            None,
            due,
            rng.choice(members),
            None,
            "normal",
            "call",
            status,
            members[0],
            created,
            created,
            closed,
            reminded,
            remind,
            1,
            i + 1,
        )


def _populate(db: str, big_org: UUID, owner: UUID, big: int, others: int, per: int) -> None:
    rng = random.Random(14)
    now = datetime.now(UTC)
    members = [owner, *(uuid4() for _ in range(19))]
    cols = ", ".join(TASK_COLUMNS)
    with psycopg.connect(dsn(db)) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY rm_tasks ({cols}) FROM STDIN") as copy:
            for row in _task_rows(rng, big_org, members, big, now):
                copy.write_row(row)
            for _ in range(others):
                for row in _task_rows(rng, uuid4(), [uuid4() for _ in range(3)], per, now):
                    copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE rm_tasks")


def _list(scale: Scale, results: Results) -> None:
    name = "j_tasks"
    big = scale.board_leads
    with scratch_db("crm_bench_j2") as db, crm_server(db) as server:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            tenant = register(client, "Big org")
        t0 = time.perf_counter()
        _populate(
            db, UUID(tenant.organization_id), UUID(tenant.user_id), big, scale.board_orgs - 1, 50
        )
        say(
            f"  rm_tasks populated by COPY (not through events): {big:,} tasks in the big org + "
            f"{scale.board_orgs - 1} other orgs x 50, in {time.perf_counter() - t0:.1f} s"
        )
        results.note(
            name,
            f"rm_tasks populated directly by COPY: {big:,} tasks in one org, "
            f"{scale.board_orgs} orgs",
        )
        queries = {
            "first page": {"limit": 50},
            "my day": {"assignee": "me", "due": "today"},
            "one member's open tasks": {"assignee": tenant.user_id, "status": "open"},
        }
        pages = max(1, big // 400)  # half-way down the big organization's list
        cursor = asyncio.run(_deep_cursor(server.port, tenant.headers, pages))
        queries[f"page after {pages * 200 // 1000}k"] = {"limit": 50, "cursor": cursor}
        for label, params in queries.items():
            path = "/crm/tasks?" + urlencode(params)
            latencies, count = asyncio.run(
                _http(server.port, tenant.headers, path, scale.board_iterations)
            )
            p95 = ms(pct(latencies, 95))
            say(f"  GET /crm/tasks {label} ({count} items): {latency_line(latencies)}")
            results.add(
                name, f"GET /crm/tasks {label} p95", p95, "ms", bar="< 50 ms", meets=p95 < 50
            )


async def _deep_cursor(port: int, headers: dict[str, str], pages: int) -> str:
    conn = HttpConnection("127.0.0.1", port)
    cursor = ""
    try:
        for _ in range(pages):  # pages of 200
            query = urlencode({"limit": 200} | ({"cursor": cursor} if cursor else {}))
            status, _, body = await conn.request("GET", "/crm/tasks?" + query, headers)
            if status != 200:
                raise RuntimeError(f"GET /crm/tasks answered {status}: {body[:300]!r}")
            cursor = json.loads(body)["next_cursor"]
    finally:
        await conn.close()
    return cursor


async def _http(
    port: int, headers: dict[str, str], path: str, iterations: int
) -> tuple[list[float], int]:
    conn = HttpConnection("127.0.0.1", port)
    latencies = []
    count = 0
    try:
        for i in range(iterations + 5):
            t0 = time.perf_counter()
            status, _, body = await conn.request("GET", path, headers)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
            if i >= 5:
                latencies.append(time.perf_counter() - t0)
            count = len(json.loads(body)["items"])
    finally:
        await conn.close()
    return latencies, count
