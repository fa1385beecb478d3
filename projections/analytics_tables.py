"""Analytics read-model tables: per-fact log, daily roll-up, and the "now" state of leads.

Every fact an analytics question counts (a lead created, a stage entered, a message sent…) is
one row of `rm_analytics_facts` with its UTC instant in epoch microseconds, and is added to one
row of `rm_analytics_daily`, keyed (organization, local day in the organization's time zone,
kind, dimensions…). A one-year query reads at most 366 days × the dimension values present: a
small range scan of the daily primary key. The facts stay so that a time-zone change can
re-derive that organization's daily rows, and for medians (first response time).

Dimensions the fact does not carry hold a sentinel ('' or the nil UUID): primary keys cannot
hold NULL. Times are integers (epoch µs) and money integer cents, so sums are exact anywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.base import metadata

NIL = UUID(int=0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the dimension columns shared by facts and daily rows, in key order
DIMENSIONS = ("source", "member_id", "stage_id", "to_stage_id", "channel", "provider", "outcome")
MEASURES = ("count", "value_cents", "seconds")


def epoch_us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def local_day(us: int, timezone: str) -> date:
    return (EPOCH + timedelta(microseconds=us)).astimezone(ZoneInfo(timezone)).date()


def day_start_us(day: date, timezone: str) -> int:
    """The first instant of a local day, in epoch µs."""
    return epoch_us(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)))


def _dimensions() -> list[sa.Column[object]]:
    return [
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("member_id", sa.Uuid, nullable=False),
        sa.Column("stage_id", sa.Uuid, nullable=False),
        sa.Column("to_stage_id", sa.Uuid, nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
    ]


def _measures() -> list[sa.Column[object]]:
    return [
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("value_cents", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.BigInteger, nullable=False),
    ]


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
    sa.Column("occurred_us", sa.BigInteger, nullable=False),
    sa.Column("subject_id", sa.Uuid, nullable=False),
    *_dimensions(),
    *_measures(),
    sa.Index("ix_rm_analytics_facts_kind", "organization_id", "kind", "occurred_us"),
)

rm_analytics_daily = sa.Table(
    "rm_analytics_daily",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    *[sa.Column(c.name, c.type, primary_key=True) for c in _dimensions()],
    *_measures(),
    # each question asks for a few kinds over a range of days: kind before day
    sa.Index("ix_rm_analytics_daily_kind", "organization_id", "kind", "day"),
)

rm_analytics_leads = sa.Table(
    "rm_analytics_leads",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("lead_id", sa.Uuid, primary_key=True),
    sa.Column("stage_id", sa.Uuid, nullable=False),
    sa.Column("stage_entered_us", sa.BigInteger, nullable=False),
    sa.Column("captured_us", sa.BigInteger, nullable=False),
    sa.Column("closed_us", sa.BigInteger),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("value_cents", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("assignee_id", sa.Uuid, nullable=False),
    sa.Column("archived", sa.Boolean, nullable=False),
    sa.Index("ix_rm_analytics_leads_stage", "organization_id", "archived", "stage_id"),
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
    rm_analytics_daily,
    rm_analytics_leads,
    rm_analytics_threads,
)
