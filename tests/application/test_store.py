"""The event store application: tenant column, optimistic concurrency, group commit."""

from __future__ import annotations

import threading
from uuid import UUID, uuid4

import pytest

from application.store import CrmApplication
from domain.errors import VersionConflictError
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.services import Services

ACTOR = Actor(kind="user", id="tester")


def new_org(app: CrmApplication) -> tuple[Organization, Pipeline]:
    org = Organization.register(name="Org", owner_user_id=uuid4(), actor=ACTOR)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
    app.commit(org, pipeline)
    return org, pipeline


def new_lead(app: CrmApplication, pipeline: Pipeline, name: str = "Ann") -> Lead:
    lead = Lead.capture(
        organization_id=pipeline.organization_id,
        pipeline_id=pipeline.id,
        stage=pipeline.stages[0].ref,
        details={"full_name": name},
        assignee_id=None,
        actor=ACTOR,
    )
    app.commit(lead)
    return lead


def test_every_stored_event_is_tagged_with_its_organization(services: Services) -> None:
    app = services.app
    _, pipeline_a = new_org(app)
    _, pipeline_b = new_org(app)
    leads_a = [new_lead(app, pipeline_a) for _ in range(3)]
    new_lead(app, pipeline_b)
    notes = app.recorder.select_organization_notifications(pipeline_a.organization_id, limit=100)  # type: ignore[attr-defined]
    ids = {n.originator_id for n in notes}
    assert ids == {pipeline_a.organization_id, pipeline_a.id} | {lead.id for lead in leads_a}
    assert [n.id for n in notes] == sorted(n.id for n in notes)


def test_a_save_that_lost_the_race_is_a_conflict_with_the_current_version(
    services: Services,
) -> None:
    app = services.app
    _, pipeline = new_org(app)
    lead = new_lead(app, pipeline)
    first = app.load(Lead, lead.id, pipeline.organization_id)
    second = app.load(Lead, lead.id, pipeline.organization_id)
    first.move_to(pipeline.stages[1].ref, actor=ACTOR)
    app.commit(first)
    second.move_to(pipeline.stages[2].ref, actor=ACTOR)
    with pytest.raises(VersionConflictError) as raised:
        app.commit(second)
    assert raised.value.current_version == 2
    assert app.load(Lead, lead.id, pipeline.organization_id).stage_id == pipeline.stages[1].id


def test_a_failed_multi_aggregate_save_writes_nothing(services: Services) -> None:
    app = services.app
    _, pipeline = new_org(app)
    lead = new_lead(app, pipeline)
    stale = app.load(Lead, lead.id, pipeline.organization_id)
    fresh = app.load(Lead, lead.id, pipeline.organization_id)
    fresh.add_note("first", actor=ACTOR)
    app.commit(fresh)
    head = app.recorder.max_notification_id()
    loaded = app.load(Pipeline, pipeline.id, pipeline.organization_id)
    loaded.add_stage(name="Extra", color="#123456", stage_type=StageType.OPEN, actor=ACTOR)
    stale.add_note("second", actor=ACTOR)
    with pytest.raises(VersionConflictError) as raised:
        app.commit(loaded, stale)
    assert raised.value.aggregate_id == lead.id  # the one that lost the race, not the pipeline
    assert raised.value.current_version == 2
    assert app.recorder.max_notification_id() == head
    assert len(app.load(Pipeline, pipeline.id, pipeline.organization_id).stages) == 6


def test_another_organizations_aggregate_is_not_found(services: Services) -> None:
    from domain.errors import NotFoundError

    app = services.app
    _, pipeline_a = new_org(app)
    org_b, _ = new_org(app)
    lead = new_lead(app, pipeline_a)
    with pytest.raises(NotFoundError):
        app.load(Lead, lead.id, org_b.id)
    with pytest.raises(NotFoundError):
        app.load(Pipeline, lead.id, pipeline_a.organization_id)  # wrong kind is not found too


def test_concurrent_commits_are_grouped_and_each_gets_its_own_position(
    services: Services,
) -> None:
    app = services.app
    _, pipeline = new_org(app)
    leads = [new_lead(app, pipeline, f"L{i}") for i in range(40)]
    positions: dict[UUID, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(chunk: list[Lead]) -> None:
        barrier.wait()
        try:
            for lead in chunk:
                loaded = app.load(Lead, lead.id, pipeline.organization_id)
                loaded.move_to(pipeline.stages[1].ref, actor=ACTOR)
                positions[lead.id] = app.commit(loaded)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(leads[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(positions.values())) == 40
    for lead in leads:
        stored = app.recorder.select_events(lead.id, desc=True, limit=1)[0]
        assert stored.originator_version == 2
    notes = app.recorder.select_notifications(start=min(positions.values()), limit=1000)
    by_id = {n.id: n.originator_id for n in notes}
    assert all(by_id[p] == lead_id for lead_id, p in positions.items())


def test_concurrent_moves_of_one_lead_from_one_version_let_exactly_one_win(
    services: Services,
) -> None:
    app = services.app
    _, pipeline = new_org(app)
    lead = new_lead(app, pipeline)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def worker(stage_index: int) -> None:
        loaded = app.load(Lead, lead.id, pipeline.organization_id)
        loaded.move_to(pipeline.stages[stage_index].ref, actor=ACTOR)
        barrier.wait()
        try:
            app.commit(loaded)
            outcomes.append("ok")
        except VersionConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=worker, args=(1 + i % 3,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["ok"]
    assert app.current_version(lead.id) == 2


def test_a_read_only_view_follows_later_commits_and_is_scoped_to_its_organization(
    services: Services,
) -> None:
    from domain.errors import NotFoundError
    from domain.values import Role

    app = services.app
    org, _ = new_org(app)
    member = uuid4()
    first = app.view(Organization, org.id, org.id)
    assert first.role_of(member) is None
    loaded = app.load(Organization, org.id, org.id)
    loaded.add_member(member, Role.SALES, actor=ACTOR)
    app.commit(loaded)
    second = app.view(Organization, org.id, org.id)
    assert second.role_of(member) is Role.SALES
    assert first.role_of(member) is None  # copy-on-write: an earlier view never changes
    loaded.remove_member(member, actor=ACTOR)
    app.commit(loaded)
    assert app.view(Organization, org.id, org.id).role_of(member) is None
    other, _ = new_org(app)
    with pytest.raises(NotFoundError):
        app.view(Organization, org.id, other.id)
    with pytest.raises(NotFoundError):
        app.view(Pipeline, org.id, org.id)


def test_concurrent_captures_of_one_lead_id_let_one_win_and_the_store_keeps_working(
    services: Services,
) -> None:
    # a caller-chosen id (an import's row key): each capture seals with a fresh subject key, so
    # the losers fail on the key table first (PostgreSQL once left its pooled connection broken)
    app = services.app
    _, pipeline = new_org(app)
    lead_id = uuid4()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        lead = Lead.capture(
            organization_id=pipeline.organization_id,
            pipeline_id=pipeline.id,
            stage=pipeline.stages[0].ref,
            details={"full_name": f"Ann {i}", "email": "ann@example.com"},
            assignee_id=None,
            actor=ACTOR,
            id=lead_id,
        )
        barrier.wait()
        try:
            app.commit(lead)
            outcomes.append("ok")
        except VersionConflictError:
            outcomes.append("conflict")

    for i in range(20):  # psycopg prepares a statement from its fifth use on a connection
        new_lead(app, pipeline, f"Before {i}")
    for _ in range(10):
        lead_id = uuid4()
        outcomes.clear()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 3 + ["ok"]
    for i in range(50):
        new_lead(app, pipeline, f"After {i}")
