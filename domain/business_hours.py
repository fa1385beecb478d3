"""Business hours: an organization's weekly opening periods in its time zone, minus holidays,
and the clock arithmetic over them (is it open now, when does N business minutes from now end,
when does the next business day open).

Periods are local wall-clock times of each weekday (`09:00`–`18:00`, `24:00` closes at
midnight); a period never crosses midnight (an overnight shift is two periods). Durations are
real elapsed time: on a daylight-saving day a 09:00–18:00 period still lasts 9 hours, and a
period whose local times fall in the skipped hour starts or ends where the clock jumps to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidValueError

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: how far the arithmetic looks for open time before deciding there is none
HORIZON_DAYS = 800
MAX_HOLIDAYS = 500
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")

Period = tuple[int, int]  # minutes since local midnight: [start, end)


def _minutes(field: str, text: object) -> int:
    match = _CLOCK.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidValueError(field, "must be a time of day as HH:MM (24:00 for midnight)")
    value = int(match[1]) * 60 + int(match[2])
    if value > 24 * 60:
        raise InvalidValueError(field, "must be at most 24:00")
    return value


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _periods(day: str, raw: object) -> tuple[Period, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise InvalidValueError(f"weekly.{day}", "must be a list of [start, end] periods")
    periods: list[Period] = []
    for i, item in enumerate(raw):
        field = f"weekly.{day}[{i}]"
        if not isinstance(item, Sequence) or isinstance(item, str) or len(item) != 2:
            raise InvalidValueError(field, "must be a [start, end] pair such as ['09:00', '18:00']")
        start, end = _minutes(field, item[0]), _minutes(field, item[1])
        if end <= start:
            raise InvalidValueError(field, "must end after it starts (split overnight periods)")
        periods.append((start, end))
    periods.sort()
    for (_, end), (start, _) in pairwise(periods):
        if start < end:
            raise InvalidValueError(f"weekly.{day}", "periods must not overlap")
    return tuple(periods)


def _timezone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidValueError(
            "timezone", "must be an IANA time zone name, e.g. America/Sao_Paulo"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValueError(
            "timezone", "must be an IANA time zone name, e.g. America/Sao_Paulo"
        ) from None


@dataclass(frozen=True)
class BusinessHours:
    """A weekly schedule (Monday first) in a time zone, with holidays (local dates)."""

    timezone: str
    weekly: tuple[tuple[Period, ...], ...]
    holidays: frozenset[date]

    @classmethod
    def parse(
        cls,
        timezone: str,
        weekly: Mapping[str, object],
        holidays: Sequence[str] = (),
    ) -> BusinessHours:
        """Validate a schedule given as `{"monday": [["09:00", "18:00"]], …}` (a day left out
        is closed) and holidays as ISO dates; at least one period must be open."""
        _timezone(timezone)
        unknown = sorted(set(weekly) - set(DAYS))
        if unknown:
            raise InvalidValueError("weekly", f"unknown day {unknown[0]!r}; use {', '.join(DAYS)}")
        days = tuple(_periods(day, weekly.get(day, ())) for day in DAYS)
        if not any(days):
            raise InvalidValueError("weekly", "at least one day needs an open period")
        if len(holidays) > MAX_HOLIDAYS:
            raise InvalidValueError("holidays", f"at most {MAX_HOLIDAYS} dates")
        parsed: set[date] = set()
        for i, text in enumerate(holidays):
            try:
                parsed.add(date.fromisoformat(str(text)))
            except ValueError:
                raise InvalidValueError(f"holidays[{i}]", "must be a date as YYYY-MM-DD") from None
        return cls(timezone=timezone, weekly=days, holidays=frozenset(parsed))

    @classmethod
    def default(cls, timezone: str) -> BusinessHours:
        """Monday to Friday, 09:00 to 18:00: what an organization has until it sets its own."""
        week = {day: [["09:00", "18:00"]] for day in DAYS[:5]}
        return cls.parse(timezone, week)

    def as_dict(self) -> dict[str, list[list[str]]]:
        return {
            day: [[_clock(s), _clock(e)] for s, e in periods]
            for day, periods in zip(DAYS, self.weekly, strict=True)
        }

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def open_periods(self, local_day: date) -> Iterator[tuple[datetime, datetime]]:
        """The day's open periods as UTC instants (none on a holiday)."""
        if local_day in self.holidays:
            return
        zone = self.zone
        midnight = datetime.combine(local_day, time(0), tzinfo=zone)
        for start, end in self.weekly[local_day.weekday()]:
            begins = _instant(midnight, start, zone)
            ends = _instant(midnight, end, zone)
            if ends > begins:
                yield begins, ends

    def _periods_from(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open periods that end after `at`, in order, for up to HORIZON_DAYS."""
        day = at.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(HORIZON_DAYS):
            for begins, ends in self.open_periods(day + timedelta(days=offset)):
                if ends > at:
                    yield begins, ends

    def contains(self, at: datetime) -> bool:
        """Whether `at` falls inside an open period."""
        return any(begins <= at < ends for begins, ends in self._around(at))

    def _around(self, at: datetime) -> Iterator[tuple[datetime, datetime]]:
        day = at.astimezone(self.zone).date()
        for offset in (-1, 0, 1):
            yield from self.open_periods(day + timedelta(days=offset))

    def next_open(self, at: datetime) -> datetime:
        """`at` itself if open, else when the next open period begins."""
        for begins, _ in self._periods_from(at):
            return max(begins, at)
        raise InvalidValueError("business_hours", "no open period ahead (all holidays?)")

    def add(self, start: datetime, minutes: float) -> datetime:
        """The instant at which `minutes` of open time have passed since `start`."""
        if minutes < 0:
            raise InvalidValueError("minutes", "must not be negative")
        remaining = timedelta(minutes=minutes)
        if not remaining:
            return start
        for begins, ends in self._periods_from(start):
            since = max(begins, start)
            if remaining <= ends - since:
                return since + remaining
            remaining -= ends - since
        raise InvalidValueError("business_hours", "no open period ahead (all holidays?)")

    def open_between(self, start: datetime, end: datetime) -> timedelta:
        """How much open time lies between two instants."""
        total = timedelta(0)
        if end <= start:
            return total
        for begins, ends in self._periods_from(start):
            if begins >= end:
                break
            total += min(ends, end) - max(begins, start)
        return total


def _instant(midnight: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """Local `minutes` after midnight of that day, as a UTC instant.

    Built from the local wall clock, not by adding to midnight, so a DST day keeps its
    periods at their local times; a time inside a skipped hour maps to where the clock jumped.
    """
    if minutes >= 24 * 60:
        next_day = midnight.date() + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=zone).astimezone(UTC)
    local = datetime.combine(midnight.date(), time(minutes // 60, minutes % 60), tzinfo=zone)
    instant = local.astimezone(UTC)
    wall = local.replace(tzinfo=None)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    # a skipped local time (the DST gap): the first instant whose wall clock reads at least
    # `local`, i.e. the moment the clock jumps; it lies between the two readings of `local`
    low, high = local.replace(fold=1).astimezone(UTC), instant
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)
