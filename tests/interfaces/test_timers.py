"""The timers worker runs every job each round; a failing job does not stop the others."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from interfaces.timers import Job, TimerWorker

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_each_job_runs_with_the_workers_clock_and_a_failure_is_contained() -> None:
    seen: list[tuple[str, datetime]] = []

    def broken(now: datetime) -> int:
        raise RuntimeError("the database is away")

    def counting(now: datetime) -> int:
        seen.append(("counting", now))
        return 3

    worker = TimerWorker([Job("broken", broken), Job("counting", counting)], clock=lambda: NOW)
    assert worker.run_once() == 3
    assert seen == [("counting", NOW)]


def test_the_background_thread_runs_rounds_until_stopped() -> None:
    rounds = threading.Semaphore(0)

    def tick(now: datetime) -> int:
        rounds.release()
        return 0

    worker = TimerWorker([Job("tick", tick)], poll_interval=0.01)
    worker.start()
    try:
        assert all(rounds.acquire(timeout=5) for _ in range(3))
    finally:
        worker.stop()
    assert worker._thread is None
