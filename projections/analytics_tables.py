"""Analytics read-model tables: facts, narrow daily roll-ups, and the "now" state of leads.

Every fact an analytics question counts (a lead created, a stage move, a message sent…) is one
row of `rm_analytics_facts`, stamped with its UTC instant (epoch µs) and its local day (and
month) in the organization's time zone. It is also added to two rows of each roll-up in
`ROLLUPS` (its day's and its month's): tables keyed (organization, kind, grain, day, a few
dimensions), one per family of questions, so that a one-year question reads a few hundred month
rows and at most two partial months of day rows of one narrow table. A custom
report whose dimensions no roll-up holds reads the facts themselves (same day column).

A lead's closing is one fact while it stands: a reopen, or a later win or loss, deletes the
earlier won/lost fact and subtracts it from the roll-ups (`rm_analytics_leads.closing_position`
finds it), so closing figures count each lead's current closing once, in the period it happened.
A time-zone change recomputes the organization's fact days and re-derives its roll-ups from them.
Dimensions a fact does not carry hold a sentinel ('' or the nil UUID): primary keys cannot hold
NULL. Times are integers (epoch µs) and money integer cents, so sums are exact anywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from uuid import UUID
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.base import metadata

NIL = UUID(int=0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: every dimension a fact carries, in column order
DIMENSIONS = ("source", "member_id", "stage_id", "to_stage_id", "channel", "provider", "outcome")
MEASURES = ("count", "value_cents", "seconds")
#: roll-up name → the dimensions it keeps (kind and day are always kept)
ROLLUPS: dict[str, tuple[str, ...]] = {
    "stage": ("stage_id", "to_stage_id"),
    "source": ("source",),
    "member": ("member_id", "channel"),
    "channel": ("channel", "provider", "outcome"),
}
FIRST_RESPONSE = "kind = 'first_response'"
#: a roll-up row sums one local day, or one month (dated its first day): a long period reads
#: its whole months from month rows and only its partial months from day rows
GRAINS = ("day", "month")
#: time-zone offsets are whole quarter hours: one local day per UTC quarter hour and zone
QUARTER_US = 900_000_000


def response_bin(seconds: int) -> int:
    """The histogram bin of a first-response time: exact below 16 s, then eight bins per doubling.

    Monotone in `seconds`, so the bin holding the k-th smallest time is found from the counts
    alone, and only that bin's facts are read to find the exact value.
    """
    if seconds < 16:
        return max(0, seconds)
    n = seconds.bit_length()
    return 16 + (n - 5) * 8 + ((seconds >> (n - 4)) & 7)


def bin_bounds(b: int) -> tuple[int, int]:
    """The smallest and largest seconds of a bin."""
    if b < 16:
        return b, b
    n, sub = (b - 16) // 8 + 5, (b - 16) % 8
    low = (8 + sub) << (n - 4)
    return low, low + (1 << (n - 4)) - 1


def epoch_us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


@lru_cache(maxsize=65_536)
def _quarter_day(quarter: int, timezone: str) -> date:
    return (
        (EPOCH + timedelta(microseconds=quarter * QUARTER_US)).astimezone(ZoneInfo(timezone)).date()
    )


def local_day(us: int, timezone: str) -> date:
    """The organization's calendar day of an instant (cached per quarter hour and zone)."""
    return _quarter_day(us // QUARTER_US, timezone)


def day_start_us(day: date, timezone: str) -> int:
    """The first instant of a local day, in epoch µs."""
    return epoch_us(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)))


def dimension_column(name: str, key: bool = False) -> sa.Column[object]:
    if name.endswith("_id"):
        return sa.Column(name, sa.Uuid, nullable=False, primary_key=key)
    size = {"source": 100, "provider": 40}.get(name, 20)
    return sa.Column(name, sa.String(size), nullable=False, primary_key=key)


def _measures() -> list[sa.Column[object]]:
    return [sa.Column(m, sa.BigInteger, nullable=False) for m in MEASURES]


rm_analytics_orgs = sa.Table(
    "rm_analytics_orgs",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("timezone", sa.String(64), nullable=False),
)

rm_analytics_facts = sa.Table(
    "rm_analytics_facts",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("seq", sa.SmallInteger, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("month", sa.Date, nullable=False),  # the first day of the day's month
    sa.Column("occurred_us", sa.BigInteger, nullable=False),
    sa.Column("subject_id", sa.Uuid, nullable=False),
    *[dimension_column(d) for d in DIMENSIONS],
    *_measures(),
    # first responses: response_bin(seconds); -1 for every other fact
    sa.Column("bin", sa.SmallInteger, nullable=False),
    sa.Index("ix_rm_analytics_facts_kind_day", "organization_id", "kind", "day"),
    # the exact value of a median or percentile is read in seconds order inside one bin
    sa.Index(
        "ix_rm_analytics_facts_responses",
        "organization_id",
        "seconds",
        "day",
        postgresql_where=sa.text(FIRST_RESPONSE),
        sqlite_where=sa.text(FIRST_RESPONSE),
    ),
    sa.Index(
        "ix_rm_analytics_facts_member_responses",
        "organization_id",
        "member_id",
        "seconds",
        "day",
        postgresql_where=sa.text(FIRST_RESPONSE),
        sqlite_where=sa.text(FIRST_RESPONSE),
    ),
)

#: first-response times counted per day or month, responder and bin (see `response_bin`)
rm_analytics_responses = sa.Table(
    "rm_analytics_responses",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("grain", sa.String(5), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("member_id", sa.Uuid, primary_key=True),
    sa.Column("bin", sa.SmallInteger, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)


def _rollup(name: str, dims: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        f"rm_analytics_by_{name}",
        metadata,
        sa.Column("organization_id", sa.Uuid, primary_key=True),
        # each question asks for a few kinds over a range of days: kind before day
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("grain", sa.String(5), primary_key=True),  # GRAINS
        sa.Column("day", sa.Date, primary_key=True),
        *[dimension_column(d, key=True) for d in dims],
        *_measures(),
    )


ROLLUP_TABLES: dict[str, sa.Table] = {name: _rollup(name, dims) for name, dims in ROLLUPS.items()}

rm_analytics_leads = sa.Table(
    "rm_analytics_leads",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("stage_id", sa.Uuid, nullable=False),
    sa.Column("stage_entered_us", sa.BigInteger, nullable=False),
    sa.Column("captured_us", sa.BigInteger, nullable=False),
    sa.Column("closed_us", sa.BigInteger),
    # the log position of the lead's current closing (its one won or lost fact), retracted from
    # the facts and roll-ups when the lead is reopened or closed again; NULL while open
    sa.Column("closing_position", sa.BigInteger),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("value_cents", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("assignee_id", sa.Uuid, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False),
    sa.Index("ix_rm_analytics_leads_stage", "organization_id", "archived", "stage_id"),
)

#: the unarchived leads in each stage now: how many, their value, the sum of their entry times
#: (whole epoch seconds), so that "now" figures read one row per stage, never every lead
rm_analytics_stage_totals = sa.Table(
    "rm_analytics_stage_totals",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("stage_id", sa.Uuid, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("value_cents", sa.BigInteger, nullable=False),
    sa.Column("entered_seconds", sa.BigInteger, nullable=False),
)

#: conversations and calls: what their later events need to know (channel, provider, caller)
rm_analytics_threads = sa.Table(
    "rm_analytics_threads",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("thread_id", sa.Uuid, primary_key=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("member_id", sa.Uuid, nullable=False),
    sa.Column("waiting_since_us", sa.BigInteger),
    sa.Index("ix_rm_analytics_threads_waiting", "organization_id", "waiting_since_us"),
)

ANALYTICS_TABLES = (
    rm_analytics_orgs,
    rm_analytics_facts,
    *ROLLUP_TABLES.values(),
    rm_analytics_responses,
    rm_analytics_leads,
    rm_analytics_stage_totals,
    rm_analytics_threads,
)
