"""Business-hours clock arithmetic across days, weekends, holidays and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.business_hours import BusinessHours
from domain.errors import InvalidValueError

ZONES = ("America/Sao_Paulo", "America/New_York", "Europe/Lisbon", "Australia/Sydney", "UTC")
WEEK = {day: [["09:00", "18:00"]] for day in ("monday", "tuesday", "wednesday", "thursday")}
WEEK |= {"friday": [["09:00", "12:00"], ["13:00", "17:30"]]}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_default_week_is_monday_to_friday_nine_to_six() -> None:
    hours = BusinessHours.default("America/Sao_Paulo")  # UTC-3, no DST since 2019
    assert hours.contains(utc(2026, 12, 7, 12, 0))  # Monday 09:00 local
    assert not hours.contains(utc(2026, 12, 7, 11, 59))
    assert not hours.contains(utc(2026, 12, 7, 21, 0))  # Monday 18:00 local: closed
    assert not hours.contains(utc(2026, 12, 5, 15, 0))  # Saturday


def test_minutes_left_on_friday_evening_continue_on_monday_morning() -> None:
    hours = BusinessHours.default("America/Sao_Paulo")
    friday_five_pm = utc(2026, 12, 4, 20, 0)
    assert hours.add(friday_five_pm, 120) == utc(2026, 12, 7, 13, 0)  # Monday 10:00 local


def test_a_holiday_is_skipped() -> None:
    hours = BusinessHours.parse("America/Sao_Paulo", WEEK, ["2026-12-07"])
    friday_after_close = utc(2026, 12, 4, 21, 0)
    assert hours.next_open(friday_after_close) == utc(2026, 12, 8, 12, 0)  # Tuesday 09:00
    assert not hours.contains(utc(2026, 12, 7, 13, 0))


def test_a_lunch_break_is_not_counted() -> None:
    hours = BusinessHours.parse("UTC", WEEK)
    friday_eleven = utc(2026, 12, 4, 11, 0)
    assert hours.add(friday_eleven, 90) == utc(2026, 12, 4, 13, 30)


def test_a_period_keeps_its_local_times_on_a_daylight_saving_day() -> None:
    # New York springs forward on Sunday 2026-03-08 and falls back on Sunday 2026-11-01
    hours = BusinessHours.parse("America/New_York", {"monday": [["09:00", "17:00"]]})
    assert list(hours.open_periods(date(2026, 3, 2))) == [
        (utc(2026, 3, 2, 14), utc(2026, 3, 2, 22))
    ]
    assert list(hours.open_periods(date(2026, 3, 9))) == [
        (utc(2026, 3, 9, 13), utc(2026, 3, 9, 21))
    ]
    assert list(hours.open_periods(date(2026, 11, 2))) == [
        (utc(2026, 11, 2, 14), utc(2026, 11, 2, 22))
    ]


def test_a_period_in_the_skipped_hour_starts_when_the_clock_jumps() -> None:
    hours = BusinessHours.parse("America/New_York", {"sunday": [["02:30", "04:00"]]})
    [(begins, ends)] = hours.open_periods(date(2026, 3, 8))
    assert (begins, ends) == (utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0))  # 03:00–04:00 EDT


def test_the_long_night_of_a_fall_back_day_lasts_its_real_length() -> None:
    hours = BusinessHours.parse("America/New_York", {"sunday": [["00:00", "24:00"]]})
    [(begins, ends)] = hours.open_periods(date(2026, 11, 1))
    assert ends - begins == timedelta(hours=25)


@pytest.mark.parametrize(
    ("weekly", "field"),
    [
        ({"monday": [["18:00", "09:00"]]}, "weekly.monday[0]"),
        ({"monday": [["09:00", "12:00"], ["11:00", "13:00"]]}, "weekly.monday"),
        ({"monday": [["9:00", "12:00"]]}, "weekly.monday[0]"),
        ({"monday": [["09:00", "24:30"]]}, "weekly.monday[0]"),
        ({"funday": [["09:00", "12:00"]]}, "weekly"),
        ({}, "weekly"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(weekly: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValueError) as refused:
        BusinessHours.parse("UTC", weekly)
    assert refused.value.field == field


def test_an_unknown_time_zone_and_a_bad_holiday_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="IANA"):
        BusinessHours.parse("Mars/Olympus", WEEK)
    with pytest.raises(InvalidValueError) as refused:
        BusinessHours.parse("UTC", WEEK, ["2026-02-30"])
    assert refused.value.field == "holidays[0]"


def _quarter(n: int) -> str:
    return f"{n * 15 // 60:02d}:{n * 15 % 60:02d}"


@st.composite
def schedules(draw: st.DrawFn) -> BusinessHours:
    zone = draw(st.sampled_from(ZONES))
    weekly: dict[str, list[list[str]]] = {}
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"):
        cuts = sorted(set(draw(st.lists(st.integers(0, 96), max_size=4))))
        if len(cuts) % 2:
            cuts = cuts[:-1]
        pairs = list(zip(cuts[::2], cuts[1::2], strict=True))
        periods = [[_quarter(a), _quarter(b)] for a, b in pairs if b > a]
        if periods:
            weekly[day] = periods
    assume(weekly)
    holidays = draw(st.lists(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=5))
    return BusinessHours.parse(zone, weekly, [d.isoformat() for d in holidays])


instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC, microsecond=0)
)


@settings(max_examples=150, deadline=None)
@given(schedules(), instants, st.integers(0, 5_000))
def test_adding_n_business_minutes_covers_exactly_n_minutes_of_open_time(
    hours: BusinessHours, start: datetime, minutes: int
) -> None:
    end = hours.add(start, minutes)
    assert end >= start
    assert hours.open_between(start, end) == timedelta(minutes=minutes)
    if minutes:
        # the deadline falls inside open time (or at the very end of a period)
        assert hours.contains(end - timedelta(seconds=1))


@settings(max_examples=100, deadline=None)
@given(schedules(), instants, st.integers(1, 3_000), st.integers(1, 3_000))
def test_adding_in_two_steps_equals_adding_at_once(
    hours: BusinessHours, start: datetime, first: int, second: int
) -> None:
    assert hours.add(hours.add(start, first), second) == hours.add(start, first + second)


@settings(max_examples=100, deadline=None)
@given(schedules(), instants)
def test_the_next_opening_is_open_and_nothing_before_it_is(
    hours: BusinessHours, at: datetime
) -> None:
    opening = hours.next_open(at)
    assert opening >= at
    assert hours.contains(opening)
    assert hours.open_between(at, opening) == timedelta(0)


@settings(max_examples=100, deadline=None)
@given(schedules(), instants)
def test_no_holiday_is_ever_open(hours: BusinessHours, at: datetime) -> None:
    local_day = at.astimezone(hours.zone).date()
    if local_day in hours.holidays:
        assert not hours.contains(at)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ZONES), instants, st.integers(0, 3_000))
def test_around_the_clock_hours_add_real_minutes(zone: str, start: datetime, minutes: int) -> None:
    always = {d: [["00:00", "24:00"]] for d in ("monday", "tuesday", "wednesday", "thursday")}
    always |= {d: [["00:00", "24:00"]] for d in ("friday", "saturday", "sunday")}
    hours = BusinessHours.parse(zone, always)
    assert hours.add(start, minutes) == start + timedelta(minutes=minutes)
