"""The analytics projection: rebuilt from zero in any batch size it is identical (digest), and a
time-zone change re-derives the organization's daily rows in its new zone."""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any
from uuid import uuid4

import sqlalchemy as sa

from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor
from interfaces.services import Services
from projections.analytics import AnalyticsProjector
from projections.analytics_tables import (
    ANALYTICS_TABLES,
    DIMENSIONS,
    local_day,
    rm_analytics_daily,
    rm_analytics_facts,
)
from projections.leads import LeadsProjector
from projections.runner import positions
from tests.projections.test_runner import fresh, runner_for, write_history  # noqa: F401

USER = Actor(kind="user", id=str(uuid4()))


def digest(services: Services) -> str:
    sha = hashlib.sha256()
    with services.engine.connect() as conn:
        for t in ANALYTICS_TABLES:
            for row in conn.execute(sa.select(t).order_by(*t.primary_key.columns)):
                sha.update(repr(tuple(row)).encode())
    return sha.hexdigest()


def rebuild(services: Services, batch: int) -> str:
    with services.engine.begin() as conn:
        for t in ANALYTICS_TABLES:
            conn.execute(t.delete())
        conn.execute(positions.update().values(position=0))
    runner_for(services, [AnalyticsProjector()], batch=batch).catch_up()
    return digest(services)


def zoned_history(services: Services) -> Organization:
    """Leads captured, moved, won and lost, then the organization moves to UTC+14."""
    app = services.app
    org = Organization.register(name="Zoned", owner_user_id=uuid4(), actor=USER)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=USER)
    app.commit(org, pipeline)
    for i in range(6):
        lead = Lead.capture(
            organization_id=org.id,
            pipeline_id=pipeline.id,
            stage=pipeline.stages[0].ref,
            details={"full_name": f"Lead {i}", "source": ["web", "ads"][i % 2]},
            assignee_id=None,
            actor=USER,
        )
        lead.move_to(pipeline.stages[1 + i % 5].ref, actor=USER)
        app.commit(lead)
    org.change_timezone("Pacific/Kiritimati", actor=USER)
    app.commit(org)
    return org


def test_rebuilding_from_zero_in_any_batch_size_gives_identical_tables(
    fresh: Services,  # noqa: F811
) -> None:
    write_history(fresh)
    zoned_history(fresh)
    runner_for(fresh, [LeadsProjector(), AnalyticsProjector()], batch=7).catch_up()
    first = digest(fresh)
    assert rebuild(fresh, batch=1) == first
    assert rebuild(fresh, batch=1000) == first


def test_a_time_zone_change_rebuckets_the_organizations_days(
    fresh: Services,  # noqa: F811
) -> None:
    org = zoned_history(fresh)
    runner_for(fresh, [AnalyticsProjector()], batch=5).catch_up()
    f, d = rm_analytics_facts.c, rm_analytics_daily.c
    with fresh.engine.connect() as conn:
        facts = list(conn.execute(sa.select(f).where(f.organization_id == org.id)))
        daily = list(conn.execute(sa.select(d).where(d.organization_id == org.id)))
    expected: Counter[tuple[Any, ...]] = Counter()
    for r in facts:
        day = local_day(r.occurred_us, "Pacific/Kiritimati")
        expected[(day, r.kind, *[getattr(r, c) for c in DIMENSIONS])] += 1
    got = {(r.day, r.kind, *[getattr(r, c) for c in DIMENSIONS]): r.count for r in daily}
    assert got == dict(expected)
    assert sum(got.values()) == len(facts) == 6 * 2 + 6 * 3 + 2  # captures, moves, won/lost
