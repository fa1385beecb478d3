"""Runs projectors over the event log in batches, exactly once, on SQLite and PostgreSQL.

The library's ProjectionRunner needs PostgreSQL subscriptions and commits once per event; this
runner polls the log (woken at once by in-process saves), decodes only what a projector wants,
and commits one transaction per batch that includes its position (compare-and-set).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from sqlalchemy.engine import Connection, Engine

from projections.base import Envelope, Projector, positions

log = logging.getLogger(__name__)


#: told (projection, {organization: its last position in the batch}, {organization: its events
#: in the batch, in log order}) after each commit; events without an organization are left out
AfterBatch = Callable[[str, Mapping[UUID, int], Mapping[UUID, Sequence[Envelope]]], None]
#: told, after a round in which every projector of the runner applied the same notifications (and
#: after idle rounds, with none), what they were: e.g. to act once all read models reflect them
AfterRound = Callable[[Sequence[Notification]], None]


class PositionConflictError(Exception):
    """Another runner moved this projection first; this batch was rolled back."""


def read_positions(conn: Connection) -> dict[str, int]:
    rows = conn.execute(sa.select(positions.c.projection_name, positions.c.position))
    return {str(name): int(pos) for name, pos in rows}


def ensure_position_rows(engine: Engine, names: Iterable[str]) -> None:
    with engine.begin() as conn:
        have = read_positions(conn)
        now = datetime.now(UTC)
        for name in names:
            if name not in have:
                conn.execute(
                    positions.insert().values(projection_name=name, position=0, updated_at=now)
                )


def announce(listener: AfterBatch, name: str, batch: Sequence[Envelope]) -> None:
    """Tell the listener what the committed batch changed, organization by organization."""
    changes: dict[UUID, list[Envelope]] = {}
    for e in batch:
        org = getattr(e.event, "organization_id", None)
        if org is not None:
            changes.setdefault(org, []).append(e)
    orgs = {org: events[-1].position for org, events in changes.items()}
    try:
        listener(name, orgs, changes)
    except Exception:  # the batch is committed: a lost notification must not undo it
        log.exception("after-batch notification failed")


class ProjectionRunner:
    """Keeps each projector's tables up to date with the event log."""

    def __init__(
        self,
        engine: Engine,
        recorder: ApplicationRecorder,
        mapper: Mapper[Any],
        projectors: Sequence[Projector],
        *,
        batch_size: int = 1000,
        before_batch: Callable[[Connection], None] | None = None,
        after_batch: AfterBatch | None = None,
        after_round: AfterRound | None = None,
    ) -> None:
        self.engine = engine
        self.recorder = recorder
        self.mapper = mapper
        self.projectors = list(projectors)
        self.batch_size = batch_size
        self.before_batch = before_batch
        self.after_batch = after_batch
        self.after_round = after_round
        #: told of each failed batch (e.g. to report it), after it was logged
        self.on_error: Callable[[Exception], None] | None = None
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self.positions: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        ensure_position_rows(engine, [p.name for p in self.projectors])
        with engine.connect() as conn:
            self.positions = read_positions(conn)

    def wake(self) -> None:
        """Called after a save in this process: new events to read."""
        self._wake.set()

    def run_once(self) -> int:
        """Process one batch for every projector; return how many notifications were applied.

        The log is read and decoded once for all projectors, from the one furthest behind.
        """
        with self.engine.connect() as conn:
            current = read_positions(conn)
        starts = {p.name: current.get(p.name, 0) for p in self.projectors}
        notifications = list(
            self.recorder.select_notifications(
                start=min(starts.values(), default=0) + 1,
                limit=self.batch_size,
                inclusive_of_start=True,
            )
        )
        decoded: dict[int, Any] = {}
        total = 0
        for projector in self.projectors:
            start = starts[projector.name]
            mine = [n for n in notifications if n.id > start]
            total += self.apply(projector, start, mine, decoded)
        if self.after_round is not None:
            try:
                self.after_round(notifications)
            except Exception:  # the batches are committed: the listener's failure is its own
                log.exception("after-round listener failed")
        return total

    def step(self, projector: Projector) -> int:
        """Read the next batch after the projector's position and apply it."""
        start, notifications = self.read(projector)
        return self.apply(projector, start, notifications)

    def read(self, projector: Projector) -> tuple[int, list[Notification]]:
        with self.engine.connect() as conn:
            start = read_positions(conn).get(projector.name, 0)
        notifications = self.recorder.select_notifications(
            start=start + 1, limit=self.batch_size, inclusive_of_start=True
        )
        return start, list(notifications)

    def apply(
        self,
        projector: Projector,
        start: int,
        notifications: list[Notification],
        decoded: dict[int, Any] | None = None,
    ) -> int:
        """Apply a batch read from `start`; refused if the position moved meanwhile."""
        if not notifications:
            self._publish(projector.name, start)
            return 0
        cache: dict[int, Any] = {} if decoded is None else decoded
        prefetch = getattr(self.mapper, "prefetch", None)  # e.g. the keys of sealed values
        if prefetch is not None:
            prefetch([n for n in notifications if n.id not in cache and projector.wants(n.topic)])
        batch = []
        for n in notifications:
            if projector.wants(n.topic):
                if n.id not in cache:
                    cache[n.id] = self.mapper.to_domain_event(n)
                batch.append(Envelope(n.id, n.topic, cache[n.id]))
        last = notifications[-1].id
        projector.starting(start)
        try:
            with self.engine.begin() as conn:
                if self.before_batch is not None:
                    self.before_batch(conn)
                # compare-and-set first: a concurrent runner blocks here, then finds it moved
                moved = conn.execute(
                    positions.update()
                    .where(positions.c.projection_name == projector.name)
                    .where(positions.c.position == start)
                    .values(position=last, updated_at=datetime.now(UTC))
                )
                if moved.rowcount != 1:
                    raise PositionConflictError(projector.name)
                if batch:
                    projector.process(conn, batch)
        except BaseException:
            projector.discarded()
            raise
        projector.committed(last)
        self._publish(projector.name, last)
        if batch and self.after_batch is not None:
            announce(self.after_batch, projector.name, batch)
        return len(notifications)

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Run until every projector has read the whole log (as of now)."""
        done = 0
        while (n := self.run_once()) > 0:
            done += n
            if progress is not None:
                progress(n)
        return done

    def rebuild(self, name: str, progress: Callable[[int], None] | None = None) -> int:
        """Empty one projector's tables and position in one transaction, then read the whole
        log again; answers the rows it holds afterwards.

        A live runner elsewhere may take some of the batches meanwhile: the positions are
        compared-and-set, so either runner's batch is exact and the loser retries.
        """
        projector = next(p for p in self.projectors if p.name == name)
        with self.engine.begin() as conn:
            for table in projector.tables:
                conn.execute(table.delete())
            conn.execute(
                positions.update().where(positions.c.projection_name == name).values(position=0)
            )
        projector.discarded()
        self.positions[name] = 0
        while True:
            try:
                self.catch_up(progress=progress)
                break
            except PositionConflictError:
                time.sleep(0.05)
        with self.engine.connect() as conn:
            return sum(
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in projector.tables
            )

    def wait_for(self, names: Iterable[str], position: int, timeout: float) -> bool:
        """Block until the named projections reached `position` or the timeout passed."""
        deadline = time.monotonic() + timeout
        wanted = list(names)
        with self._progress:
            while any(self.positions.get(n, 0) < position for n in wanted):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(left)
        return True

    def _tell(self, error: Exception) -> None:
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # a failing reporter must not stop the projections
                log.exception("reporting a failed batch failed")

    def _publish(self, name: str, position: int) -> None:
        with self._progress:
            self.positions[name] = position
            self._progress.notify_all()

    def start(self, poll_interval: float = 0.5) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run_forever,
            args=(poll_interval,),
            name="projections",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run_forever(self, poll_interval: float = 0.5) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.run_once() > 0
                failures = 0
            except Exception as error:
                log.exception("projection batch failed; retrying")
                self._tell(error)
                failures += 1
                busy = False
                time.sleep(min(5.0, 0.1 * 2**failures))
            if not busy:
                self._wake.wait(poll_interval)
