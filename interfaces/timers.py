"""Timers: jobs driven by the clock over deadlines kept in read models (a task coming due, a
response SLA running out), run by one background thread per process.

A job is `run(now) -> handled`: it reads what is due from its read model and records the fact
through the application, where the aggregate refuses a second recording. So a restart loses
nothing (the deadline is still in the table until the fact is projected) and two processes
running the same job record each fact once (the slower one meets a version conflict or a no-op).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from application.work.reminders import TaskReminders
from application.work.sla import ResponseSlaTimer
from interfaces.observability import report_exception

if TYPE_CHECKING:
    from interfaces.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One kind of deadline: `run(now)` records what came due by `now`, returns how many."""

    name: str
    run: Callable[[datetime], int]


def jobs_for(services: Services) -> list[Job]:
    """Every timer job of the system, bound to this process's services."""
    reminders = TaskReminders(services.app, services.engine.connect)
    return [
        Job("task_reminders", reminders.run),
        Job("response_sla", ResponseSlaTimer(services.app, services.engine).run),
        notification_emails_job(services),
        *message_analysis_jobs(services),
    ]


def message_analysis_jobs(services: Services) -> list[Job]:
    """Analyse inbound messages (`when_message_received_analyse`) when there is an analyzer.

    A timer job rather than a thread of its own: the queue's rows wait in a table as the
    deadlines do, a round a second is soon enough for an analysis that is never in the
    webhook's request, and the timers' loop already survives restarts and failing rounds.
    """
    if services.analyzer is None:
        return []
    from application.ai.analysis import MessageAnalysisPolicy
    from application.ai.models import analyzer_for
    from application.ai.ports import MessageAnalyzer
    from application.ai.settings import setting

    def analyzer_of(organization_id: UUID) -> MessageAnalyzer | None:
        """The organization's model (its key, else the platform's, else offline), if on."""
        if not setting(services.app, organization_id, "analysis_enabled"):
            return None
        return analyzer_for(services.app, services.secret_box, services.models, organization_id)

    policy = MessageAnalysisPolicy(
        services.app, services.engine, services.analyzer, analyzer_of=analyzer_of
    )
    return [Job("message_analysis", policy.run)]


def notification_emails_job(services: Services) -> Job:
    """Mail the notifications their members want by email (a queue with retry times: the
    clock decides when a row is due again, so it runs with the timers)."""
    from application.work.notification_emails import NotificationEmailDispatcher

    dispatcher = NotificationEmailDispatcher(
        services.engine, services.users, services.mailer, services.email.public_url
    )
    return Job("notification_emails", dispatcher.run)


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimerWorker:
    """Runs every job each `poll_interval` seconds (at once again while a job is busy)."""

    def __init__(
        self,
        jobs: list[Job],
        *,
        poll_interval: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.jobs = jobs
        self.poll_interval = poll_interval
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="timers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def run_once(self) -> int:
        """Run each job once; a failing job is logged and does not stop the others."""
        handled = 0
        for job in self.jobs:
            try:
                handled += job.run(self.clock())
            except Exception as error:  # the database is away: the next round tries again
                log.exception("timers: job %s failed", job.name)
                report_exception(error, component=f"timers.{job.name}")
        return handled

    def run_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            started = time.monotonic()
            self.run_once()
            if time.monotonic() - started < self.poll_interval:
                self._wake.wait(self.poll_interval)
