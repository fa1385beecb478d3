"""A fake clock for event timestamps, so that a test can write a history spanning days.

The eventsourcing library stamps every new event with `CanCreateTimestamp.create_timestamp`;
while `event_clock()` is open that returns the fake clock's time instead, for every thread (the
HTTP handlers of the test client included). Code that takes an explicit `now=`/`sent_at=` must
be given `clock.now` too, or the history contradicts itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from eventsourcing.domain import CanCreateTimestamp


class FakeClock:
    """Moves only forward, by the test's hand, and never past `ceiling` (the real time it began)."""

    def __init__(self, start: datetime, ceiling: datetime) -> None:
        self.ceiling = ceiling
        self.now = min(start, ceiling)

    def advance(self, by: timedelta) -> datetime:
        self.move_to(self.now + by)
        return self.now

    def move_to(self, at: datetime) -> datetime:
        """Go to `at` if it is later (and not past the ceiling); never back."""
        self.now = max(self.now, min(at, self.ceiling))
        return self.now


@contextmanager
def event_clock(start: datetime) -> Iterator[FakeClock]:
    """While open, new events are stamped with `clock.now`; the real clock is back on exit."""
    clock = FakeClock(start, datetime.now(UTC))
    original = CanCreateTimestamp.__dict__["create_timestamp"]
    CanCreateTimestamp.create_timestamp = staticmethod(lambda: clock.now)  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        CanCreateTimestamp.create_timestamp = original  # type: ignore[method-assign]
