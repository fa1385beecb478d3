"""A period is read from whole-month roll-up rows plus day rows for its partial months: the
segments must cover each of its days exactly once, and month rows only whole months."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from application.analytics.queries import Period, segments


def days_of(grain: str, first: date, last: date) -> list[date]:
    out = []
    day = first
    while day <= last:
        if grain == "month":  # a month row stands for every day of its month
            assert day.day == 1
            month = day
            while month.month == day.month:
                out.append(month)
                month += timedelta(days=1)
            day = month
        else:
            out.append(day)
            day += timedelta(days=1)
    return out


@given(
    start=st.dates(min_value=date(2023, 1, 1), max_value=date(2027, 12, 31)),
    span=st.integers(0, 800),
    granularity=st.sampled_from(["day", "week", "month"]),
    by_day=st.booleans(),
)
def test_segments_cover_every_day_of_the_period_exactly_once(
    start: date, span: int, granularity: str, by_day: bool
) -> None:
    period = Period(start, start + timedelta(days=span), granularity)
    counted = Counter(d for seg in segments(period, by_day) for d in days_of(*seg))
    wanted = {start + timedelta(days=i) for i in range(span + 1)}
    assert set(counted) == wanted
    assert set(counted.values()) == {1}


def test_a_year_reads_whole_months_from_month_rows_unless_days_are_asked_for() -> None:
    year = Period(date(2026, 1, 15), date(2027, 1, 14), "day")
    assert segments(year, by_day=False) == [
        ("month", date(2026, 2, 1), date(2026, 12, 31)),
        ("day", date(2026, 1, 15), date(2026, 1, 31)),
        ("day", date(2027, 1, 1), date(2027, 1, 14)),
    ]
    assert segments(year, by_day=True) == [("day", date(2026, 1, 15), date(2027, 1, 14))]
    monthly = Period(date(2026, 1, 1), date(2026, 3, 31), "month")
    assert segments(monthly, by_day=True) == [("month", date(2026, 1, 1), date(2026, 3, 31))]
