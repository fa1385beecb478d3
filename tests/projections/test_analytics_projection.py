"""The analytics projection: rebuilt from zero in any batch size it is identical (digest), a
time-zone change moves the organization's facts to their days in the new zone and re-derives
every roll-up from them, and a lead's closing counts once (a reopen or a later closing retracts
the earlier one, whichever batch it was in, whatever the memory kept)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.services import Services
from projections.analytics import AnalyticsProjector
from projections.analytics_tables import (
    ANALYTICS_TABLES,
    ROLLUP_TABLES,
    ROLLUPS,
    local_day,
    rm_analytics_facts,
)
from projections.base import Envelope
from projections.leads import LeadsProjector
from projections.runner import positions
from tests.projections.test_runner import fresh, runner_for, write_history  # noqa: F401

USER = Actor(kind="user", id=str(uuid4()))
PROVIDER = Actor(kind="provider", id="business_api")


def digest(services: Services) -> str:
    sha = hashlib.sha256()
    with services.engine.connect() as conn:
        for t in ANALYTICS_TABLES:
            for row in conn.execute(sa.select(t).order_by(*t.primary_key.columns)):
                sha.update(repr(tuple(row)).encode())
    return sha.hexdigest()


def empty(services: Services) -> None:
    with services.engine.begin() as conn:
        for t in ANALYTICS_TABLES:
            conn.execute(t.delete())
        conn.execute(positions.update().values(position=0))


def built_then_emptied(services: Services) -> str:
    """The digest of the tables built in one go; then empty again, for another way to build."""
    runner_for(services, [AnalyticsProjector()], batch=1000).catch_up()
    expected = digest(services)
    empty(services)
    return expected


def rebuild(services: Services, batch: int) -> str:
    empty(services)
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


def reopened_history(services: Services) -> dict[str, set[Any]]:
    """Leads won, reopened, won or lost again over separate commits (so that batches split them),
    one moved from won straight to lost, a time-zone change between wins and their reopens.

    Returns the leads won and lost at the end."""
    app = services.app
    org = Organization.register(name="Reopened", owner_user_id=uuid4(), actor=USER)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=USER)
    app.commit(org, pipeline)
    by_type = {t: [s.ref for s in pipeline.stages if s.stage_type is t] for t in StageType}
    opened, won, lost = (
        by_type[StageType.OPEN][0],
        by_type[StageType.WON][0],
        by_type[StageType.LOST][0],
    )
    leads = []
    for i in range(6):
        lead = Lead.capture(
            organization_id=org.id,
            pipeline_id=pipeline.id,
            stage=opened,
            details={"full_name": f"Lead {i}", "estimated_value": 100 * (i + 1)},
            assignee_id=None,
            actor=USER,
        )
        leads.append(lead)
        app.commit(lead)

    def each(steps: dict[int, list[tuple[str, Any]]]) -> None:
        for i, actions in steps.items():
            for action, stage in actions:
                if action == "value":
                    leads[i].change_details({"estimated_value": stage}, actor=USER)
                else:
                    getattr(leads[i], action)(stage, actor=USER)
            app.commit(leads[i])

    each({i: [("win", won)] for i in range(6)})
    each({i: [("reopen", opened)] for i in range(4)} | {4: [("move_to", lost)]})
    org.change_timezone("Asia/Kolkata", actor=USER)
    app.commit(org)
    each({0: [("value", 999), ("win", won)], 1: [("win", won)], 2: [("move_to", lost)]})
    each({0: [("reopen", opened), ("win", won)], 1: [("move_to", lost)]})
    each({5: [("reopen", opened), ("move_to", lost), ("reopen", opened), ("win", won)]})
    ids = [lead.id for lead in leads]
    return {"won": {ids[0], ids[5]}, "lost": {ids[1], ids[2], ids[4]}}


def assert_rollups_sum_the_facts(conn: Connection, org: Any = None) -> list[Any]:
    """Every roll-up row is the sum of its facts, and no row counts nothing; the facts back."""
    f = rm_analytics_facts.c
    chosen = sa.true() if org is None else f.organization_id == org
    facts = list(conn.execute(sa.select(rm_analytics_facts).where(chosen)))
    for name, dims in ROLLUPS.items():
        table = ROLLUP_TABLES[name]
        t = table.c
        got = {
            (r.organization_id, r.kind, r.grain, r.day, *[getattr(r, c) for c in dims]): (
                r.count,
                r.value_cents,
                r.seconds,
            )
            for r in conn.execute(
                sa.select(table).where(sa.true() if org is None else t.organization_id == org)
            )
        }
        expected: dict[tuple[Any, ...], list[int]] = {}
        for r in facts:
            for grain, day in (("day", r.day), ("month", r.month)):
                key = (r.organization_id, r.kind, grain, day, *[getattr(r, c) for c in dims])
                acc = expected.setdefault(key, [0, 0, 0])
                acc[0] += 1
                acc[1] += r.value_cents
                acc[2] += r.seconds
        assert got == {k: tuple(v) for k, v in expected.items()}, name
    return facts


def test_rebuilding_from_zero_in_any_batch_size_gives_identical_tables(
    fresh: Services,  # noqa: F811
) -> None:
    write_history(fresh)
    zoned_history(fresh)
    reopened_history(fresh)
    runner_for(fresh, [LeadsProjector(), AnalyticsProjector()], batch=7).catch_up()
    first = digest(fresh)
    assert rebuild(fresh, batch=1) == first
    assert rebuild(fresh, batch=1000) == first


def test_a_lead_counts_only_its_current_closing_however_the_batches_fell(
    fresh: Services,  # noqa: F811
) -> None:
    closed = reopened_history(fresh)
    for batch in (1, 4, 1000):
        rebuild(fresh, batch=batch)
        with fresh.engine.connect() as conn:
            facts = assert_rollups_sum_the_facts(conn)
        closings = [(r.kind, r.subject_id) for r in facts if r.kind in ("won", "lost")]
        assert sorted(closings, key=str) == sorted(
            [("won", lead) for lead in closed["won"]] + [("lost", lead) for lead in closed["lost"]],
            key=str,
        ), batch
        values = {r.subject_id: r.value_cents for r in facts if r.kind == "won"}
        assert sorted(values.values()) == [600_00, 999_00], batch  # the value at the latest win


def test_a_time_zone_change_rebuckets_the_organizations_days(
    fresh: Services,  # noqa: F811
) -> None:
    org = zoned_history(fresh)
    runner_for(fresh, [AnalyticsProjector()], batch=5).catch_up()
    f = rm_analytics_facts.c
    with fresh.engine.connect() as conn:
        facts = list(conn.execute(sa.select(f).where(f.organization_id == org.id)))
        assert facts and all(r.day == local_day(r.occurred_us, "Pacific/Kiritimati") for r in facts)
        assert all(r.month == r.day.replace(day=1) for r in facts)
        for name, dims in ROLLUPS.items():
            t = ROLLUP_TABLES[name].c
            got = {
                (r.kind, r.grain, r.day, *[getattr(r, c) for c in dims]): (r.count, r.seconds)
                for r in conn.execute(
                    sa.select(ROLLUP_TABLES[name]).where(t.organization_id == org.id)
                )
            }
            expected: dict[tuple[Any, ...], list[int]] = {}
            for r in facts:
                for grain, day in (("day", r.day), ("month", r.month)):
                    key = (r.kind, grain, day, *[getattr(r, c) for c in dims])
                    acc = expected.setdefault(key, [0, 0])
                    acc[0] += 1
                    acc[1] += r.seconds
            assert got == {k: tuple(v) for k, v in expected.items()}, name
    assert len(facts) == 6 + 6 + 2  # captures, moves, won/lost


class FailingFirstTime(AnalyticsProjector):
    """Applies each batch in memory and in the tables, then fails the first time it sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        super().process(conn, batch)
        if batch[0].position not in self.seen:
            self.seen.add(batch[0].position)
            raise RuntimeError("crash after applying the batch")


def chatty_history(services: Services) -> None:
    """Conversations whose replies are first responses: applying one twice would lose them."""
    app = services.app
    org = Organization.register(name="Chatty", owner_user_id=uuid4(), actor=USER)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=USER)
    app.commit(org, pipeline)
    for i in range(3):
        lead = Lead.capture(
            organization_id=org.id,
            pipeline_id=pipeline.id,
            stage=pipeline.stages[0].ref,
            details={"full_name": f"Lead {i}"},
            assignee_id=None,
            actor=USER,
        )
        chat = Conversation.start(
            organization_id=org.id,
            lead_id=lead.id,
            channel="whatsapp",
            contact=f"+5511987654{i:03d}",
            actor=USER,
        )
        app.commit(lead, chat)
        for _ in range(2):
            chat.receive(
                provider_message_id=uuid4().hex,
                provider_type="business_api",
                text="hi",
                sent_at=datetime.now(UTC),
                actor=PROVIDER,
            )
            app.commit(chat)
            chat.send(
                provider_type="business_api",
                now=datetime.now(UTC),
                text="hello",
                window=False,
                actor=USER,
            )
            app.commit(chat)


def test_state_kept_in_memory_never_outlives_a_batch_that_rolled_back(
    fresh: Services,  # noqa: F811
) -> None:
    write_history(fresh, orgs=1)
    chatty_history(fresh)
    reopened_history(fresh)
    expected = built_then_emptied(fresh)
    projector = FailingFirstTime()
    runner = runner_for(fresh, [projector], batch=4)
    failures = 0
    while True:  # the same instance goes on after each failure
        try:
            if not runner.run_once():
                break
        except RuntimeError:
            failures += 1
    assert failures > 5
    assert digest(fresh) == expected


def test_two_runners_taking_turns_on_one_projection_build_the_same_tables(
    fresh: Services,  # noqa: F811
) -> None:
    write_history(fresh)
    reopened_history(fresh)
    expected = built_then_emptied(fresh)
    # each runner's memory goes stale whenever the other one applies a batch
    turns = [runner_for(fresh, [AnalyticsProjector()], batch=3) for _ in range(2)]
    i = 0
    while turns[i % 2].run_once():
        i += 1
    assert i > 4
    assert digest(fresh) == expected


def test_a_small_memory_bound_evicts_state_without_changing_the_tables(
    fresh: Services,  # noqa: F811
) -> None:
    write_history(fresh)
    chatty_history(fresh)
    reopened_history(fresh)
    expected = built_then_emptied(fresh)
    projector = AnalyticsProjector(cached_rows=4)
    runner_for(fresh, [projector], batch=5).catch_up()
    assert len(projector.leads.rows) <= 4 + 5  # trimmed after each batch
    assert digest(fresh) == expected
