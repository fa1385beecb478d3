"""Projectors apply each event exactly once: stopped, crashed or raced, they equal a rebuild."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.services import Services, build_services
from projections.base import Envelope, Projector
from projections.registry import all_projectors
from projections.runner import PositionConflictError, ProjectionRunner, positions, read_positions
from projections.timeline import TimelineProjector, rm_lead_timeline
from tests.conftest import settings_for
from tests.support.databases import scratch_postgres

ACTOR = Actor(kind="user", id="tester", ip="10.0.0.1", user_agent="pytest")


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Services]:
    """Services on a database of their own (rebuilds empty whole tables), no background runner."""
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(scratch_postgres("crm_test_proj"))
        else:
            url = f"sqlite:///{tmp_path}/crm.db"
        settings = settings_for(url)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        services = build_services(settings, with_runner=False)
        stack.callback(services.close)
        yield services


def write_history(services: Services, orgs: int = 3, leads: int = 8, seed: int = 7) -> int:
    """A varied history: organizations, stage changes, leads moved, won, lost, archived."""
    rnd = random.Random(seed)
    app = services.app
    for o in range(orgs):
        org = Organization.register(name=f"Org {o}", owner_user_id=uuid4(), actor=ACTOR)
        pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
        pipeline.add_stage(name="Demo", color="#abcdef", stage_type=StageType.OPEN, actor=ACTOR)
        app.commit(org, pipeline)
        for i in range(leads):
            lead = Lead.capture(
                organization_id=org.id,
                pipeline_id=pipeline.id,
                stage=pipeline.stages[0].ref,
                details={"full_name": f"Lead {o}-{i}", "estimated_value": rnd.randint(0, 9999)},
                assignee_id=None,
                actor=ACTOR,
            )
            for _ in range(rnd.randint(0, 6)):
                if lead.archived:
                    break
                step = rnd.choice(["move", "note", "details", "archive", "move", "move"])
                if step == "move":
                    lead.move_to(rnd.choice(pipeline.stages).ref, actor=ACTOR)
                elif step == "note":
                    lead.add_note("called", actor=ACTOR)
                elif step == "details":
                    lead.change_details({"estimated_value": rnd.randint(0, 9999)}, actor=ACTOR)
                else:
                    lead.archive(actor=ACTOR)
            app.commit(lead)
        pipeline.rename_stage(pipeline.stages[1].id, "Talking", actor=ACTOR)
        pipeline.reorder(list(reversed([s.id for s in pipeline.stages])), actor=ACTOR)
        app.commit(pipeline)
    return app.recorder.max_notification_id() or 0


def dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = [t for p in all_projectors() for t in p.tables]
    return {
        t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
        for t in tables
    }


def rebuild_all(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    with services.engine.begin() as conn:
        for p in all_projectors():
            for t in p.tables:
                conn.execute(t.delete())
        conn.execute(positions.update().values(position=0))
    runner = ProjectionRunner(
        services.engine, services.app.recorder, services.app.mapper, all_projectors()
    )
    runner.catch_up()
    with services.engine.connect() as conn:
        return dump(conn)


def runner_for(
    services: Services, projectors: Sequence[Projector] | None = None, batch: int = 1000
) -> ProjectionRunner:
    return ProjectionRunner(
        services.engine,
        services.app.recorder,
        services.app.mapper,
        list(projectors or all_projectors()),
        batch_size=batch,
    )


def test_a_projector_stopped_mid_stream_and_restarted_equals_a_full_rebuild(
    fresh: Services,
) -> None:
    head = write_history(fresh)
    first = runner_for(fresh, batch=7)
    for _ in range(3):
        first.run_once()
    assert 0 < first.positions["timeline"] < head
    restarted = runner_for(fresh, batch=5)
    restarted.catch_up()
    with fresh.engine.connect() as conn:
        live = dump(conn)
    assert live == rebuild_all(fresh)
    lead_events = sum(
        1
        for n in fresh.app.recorder.select_notifications(start=1, limit=100_000)
        if n.topic.startswith("domain.lead:")
    )
    assert len(live["rm_lead_timeline"]) == lead_events
    assert len(live["rm_audit_events"]) == head


class ExplodingTimeline(TimelineProjector):
    """Writes its rows, then fails: the transaction must roll back rows and position together."""

    def __init__(self) -> None:
        self.armed = True

    def process(self, conn: Connection, batch: Sequence[Envelope]) -> None:
        super().process(conn, batch)
        if self.armed:
            self.armed = False
            raise RuntimeError("crash after writing rows")


def test_a_batch_that_fails_halfway_leaves_no_rows_and_no_position(fresh: Services) -> None:
    write_history(fresh, orgs=1)
    projector = ExplodingTimeline()
    runner = runner_for(fresh, [projector], batch=10)
    with pytest.raises(RuntimeError):
        runner.run_once()
    with fresh.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(rm_lead_timeline)).scalar_one() == 0
        )
        position = conn.execute(
            sa.select(positions.c.position).where(positions.c.projection_name == "timeline")
        ).scalar_one()
    assert position == 0
    runner.catch_up()
    with fresh.engine.connect() as conn:
        assert dump(conn)["rm_lead_timeline"] == rebuild_all(fresh)["rm_lead_timeline"]


def test_two_runners_racing_on_one_projection_apply_each_batch_once(fresh: Services) -> None:
    write_history(fresh)
    one = runner_for(fresh, [TimelineProjector()], batch=4)
    two = runner_for(fresh, [TimelineProjector()], batch=4)
    start_one, batch_one = one.read(one.projectors[0])
    start_two, batch_two = two.read(two.projectors[0])
    assert start_one == start_two == 0
    one.apply(one.projectors[0], start_one, batch_one)
    with pytest.raises(PositionConflictError):
        two.apply(two.projectors[0], start_two, batch_two)
    two.catch_up()
    with fresh.engine.connect() as conn:
        assert dump(conn)["rm_lead_timeline"] == rebuild_all(fresh)["rm_lead_timeline"]


def test_waiting_for_a_position_returns_once_it_is_projected_or_times_out(fresh: Services) -> None:
    head = write_history(fresh, orgs=1)
    runner = runner_for(fresh)
    assert runner.wait_for(["leads"], head, timeout=0.05) is False
    runner.start(poll_interval=0.01)
    try:
        assert runner.wait_for(["leads", "timeline", "audit"], head, timeout=10) is True
        assert runner.wait_for(["leads"], head + 1000, timeout=0.05) is False
    finally:
        runner.stop()


def test_the_after_round_listener_sees_each_round_once_every_projector_applied_it(
    fresh: Services,
) -> None:
    head = write_history(fresh, orgs=2, leads=4)
    runner = runner_for(fresh, batch=9)
    rounds: list[tuple[list[int], dict[str, int]]] = []

    def listener(notifications: Sequence[Any]) -> None:
        with fresh.engine.connect() as conn:
            rounds.append(([n.id for n in notifications], read_positions(conn)))
        raise RuntimeError("a failing listener undoes nothing")

    runner.after_round = listener
    runner.catch_up()
    assert [i for ids, _ in rounds for i in ids] == list(range(1, head + 1))
    assert rounds[-1][0] == []  # the last round found nothing new
    for ids, reached in rounds:  # each round: every projector had committed all of it
        assert len(ids) <= 9
        assert all(reached[p.name] >= max(ids, default=0) for p in runner.projectors)
    assert all(p == head for p in runner.positions.values())
