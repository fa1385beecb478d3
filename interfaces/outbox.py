"""The outbox worker: a thread running the dispatcher, woken when the outbox projector added
rows and polling (every second by default) for retries that came due.

Several workers — threads, or `crm outbox run` processes — may run at once: each row is claimed
by one of them (see projections/outbox.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from application.conversations.outbox import Dispatcher
from interfaces.observability import report_exception
from projections.base import Envelope
from projections.outbox import OutboxProjector
from projections.runner import AfterBatch

if TYPE_CHECKING:
    from interfaces.services import Services

log = logging.getLogger(__name__)


class OutboxWorker:
    """Runs `Dispatcher.run_once` in a background thread until stopped."""

    def __init__(self, dispatcher: Dispatcher, *, poll_interval: float = 1.0, batch: int = 20):
        self.dispatcher = dispatcher
        self.poll_interval = poll_interval
        self.batch = batch
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_services(cls, services: Services, *, poll_interval: float = 1.0) -> OutboxWorker:
        dispatcher = Dispatcher(
            services.app,
            services.engine,
            services.secret_box,
            services.providers,
            services.settings.public_url,
        )
        return cls(dispatcher, poll_interval=poll_interval)

    def wake(self) -> None:
        """New rows may exist (the outbox projector committed a batch)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the delivery in progress finish (adapters time out after ~10 s), then return."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def run_forever(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.dispatcher.run_once(self.batch) >= self.batch
                failures = 0
            except Exception as error:  # the database is away: try again, more slowly each time
                log.exception("outbox: dispatch failed; retrying")
                report_exception(error, component="outbox")
                failures += 1
                busy = False
                time.sleep(min(30.0, 0.5 * 2**failures))
            if not busy:
                self._wake.wait(self.poll_interval)


def waking(listener: AfterBatch | None, worker: OutboxWorker) -> AfterBatch:
    """A projector listener that also wakes the worker when the outbox projector committed."""

    def after_batch(
        name: str, orgs: Mapping[UUID, int], changes: Mapping[UUID, Sequence[Envelope]]
    ) -> None:
        if name == OutboxProjector.name:
            worker.wake()
        if listener is not None:
            listener(name, orgs, changes)

    return after_batch
