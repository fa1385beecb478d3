"""Read models verified against the log on both backends: a projected history verifies OK, a
row changed or deleted behind the projectors' back is named, and lag is not a difference."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
import sqlalchemy as sa

from domain.assignment import AssignmentRules, RuleSpec
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.task import Task
from interfaces.services import Services
from projections.audit import rm_audit_events
from projections.leads import LeadsProjector, rm_leads
from projections.outbox import outbox
from projections.runner import ProjectionRunner, read_positions
from projections.verify import TableVerdict, normal, verify
from tests.projections import test_runner
from tests.projections.test_conversations_projection import write_conversations
from tests.projections.test_notifications_projection import write_notifications
from tests.projections.test_runner import ACTOR, runner_for, write_history
from tests.projections.test_template_stats import write_templates
from tests.support.analysis import write_analyses
from tests.support.sla import write_sla_history

fresh = test_runner.fresh  # services on a database of their own, on each backend


def check(services: Services, *names: str, org: UUID | None = None) -> list[TableVerdict]:
    app = services.app
    return verify(services.engine, app.recorder, app.mapper, names, organization_id=org)


def write_tasks(services: Services) -> None:
    """Tasks of one organization: about a lead or none, edited, closed, come due."""
    org, due = uuid4(), datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    tasks = [
        Task.create(
            organization_id=org,
            title=f"T{i}",
            due_at=due,
            assignee_id=uuid4(),
            actor=ACTOR,
            lead_id=uuid4() if i else None,
        )
        for i in range(3)
    ]
    tasks[0].edit({"due_at": due + timedelta(hours=1), "lead_id": uuid4()}, actor=ACTOR)
    tasks[1].complete(actor=ACTOR)
    tasks[2].come_due(due, now=due, actor=ACTOR)
    services.app.commit(*tasks)


def write_rules(services: Services) -> None:
    """An organization whose assignment rules were added, renamed and removed."""
    owner = uuid4()
    org = Organization.register(name="Rules", owner_user_id=owner, actor=ACTOR)
    rules = AssignmentRules.start(org.id, actor=ACTOR)
    specs = [
        RuleSpec.parse(name=n, enabled=True, conditions={}, strategy="member", members=[owner])
        for n in ("kept", "gone", "renamed")
    ]
    kept, gone = rules.add(specs[0], actor=ACTOR), rules.add(specs[1], actor=ACTOR)
    rules.change(kept, specs[2], actor=ACTOR)
    rules.remove(gone, actor=ACTOR)
    services.app.commit(org, rules)


def projected(services: Services) -> int:
    """Three organizations' leads and pipelines, three more with conversations and calls, one
    with templates, one with tasks, one with response SLA clocks, one with notifications, one
    with assignment rules, one with analysed messages."""
    write_history(services)
    write_conversations(services)
    write_templates(services)
    write_tasks(services)
    write_sla_history(services.app)
    write_notifications(services)
    write_rules(services)
    write_analyses(services.app)
    runner_for(services, batch=7).catch_up()  # other batch limits than the rebuild's
    return services.app.recorder.max_notification_id() or 0


def first_lead(services: Services) -> tuple[UUID, UUID]:
    with services.engine.connect() as conn:
        row = conn.execute(
            sa.select(rm_leads.c.organization_id, rm_leads.c.lead_id)
            .order_by(rm_leads.c.organization_id, rm_leads.c.lead_id)
            .limit(1)
        ).one()
    return row[0], row[1]


def test_read_models_projected_from_the_log_verify_ok(fresh: Services) -> None:
    head = projected(fresh)
    with fresh.engine.begin() as conn:  # the outbox worker's delivery state is not the log's
        conn.execute(
            outbox.update().values(
                status="sending", attempts=1, claim_token=uuid4(), updated_at=datetime.now(UTC)
            )
        )

    verdicts = check(fresh)

    assert [v.table for v in verdicts if not v.ok] == []
    assert {v.projection for v in verdicts} == {p.name for p in runner_for(fresh).projectors}
    by_table = {v.table: v for v in verdicts}
    assert all(v.rows > 0 for v in verdicts)  # every table has rows to compare
    # 6 organizations of leads (27), the SLA history's (4), the notifications' (1)
    assert by_table["rm_leads"].organizations == 8 and by_table["rm_leads"].rows == 32
    assert by_table["rm_audit_events"].rows == head
    assert {v.position for v in verdicts} == {head}
    assert by_table["outbox"].not_compared  # delivery state, written by the outbox worker
    assert by_table["rm_leads"].lines()[0].split()[2:4] == ["OK", "8"]


def test_a_lead_name_changed_in_sql_is_named_with_its_organization(fresh: Services) -> None:
    projected(fresh)
    org, lead = first_lead(fresh)
    with fresh.engine.begin() as conn:
        where = (rm_leads.c.organization_id == org, rm_leads.c.lead_id == lead)
        before = conn.execute(sa.select(rm_leads.c.full_name).where(*where)).scalar_one()
        conn.execute(rm_leads.update().where(*where).values(full_name="tampered"))

    verdicts = {v.table: v for v in check(fresh, "leads")}

    assert verdicts["rm_stages"].ok
    leads = verdicts["rm_leads"]
    assert leads.differing == (str(org),)
    [difference] = leads.differences
    assert difference.kind == "changed"
    assert difference.organization_id == str(org)
    assert difference.key == (("lead_id", str(lead)),)
    assert difference.columns == (("full_name", "tampered", before),)
    assert f"lead_id={lead}" in "\n".join(leads.lines())


def test_a_deleted_audit_row_is_missing_and_a_forged_one_is_extra(fresh: Services) -> None:
    projected(fresh)
    with fresh.engine.begin() as conn:
        victim = conn.execute(
            sa.select(rm_audit_events).order_by(rm_audit_events.c.position.desc()).limit(1)
        ).one()
        conn.execute(rm_audit_events.delete().where(rm_audit_events.c.position == victim.position))
        forged = dict(victim._mapping) | {"organization_id": uuid4(), "position": 10**9}
        conn.execute(rm_audit_events.insert().values(forged))

    [audit] = check(fresh, "audit")

    assert not audit.ok
    assert set(audit.differing) == {str(victim.organization_id), str(forged["organization_id"])}
    kinds = {(d.kind, d.organization_id, d.key) for d in audit.differences}
    assert kinds == {
        ("missing", str(victim.organization_id), (("position", victim.position),)),
        ("extra", str(forged["organization_id"]), (("position", 10**9),)),
    }


def test_projectors_behind_the_log_and_apart_from_each_other_still_verify_ok(
    fresh: Services,
) -> None:
    projected(fresh)
    org = Organization.register(name="Late Org", owner_user_id=uuid4(), actor=ACTOR)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
    lead = Lead.capture(
        organization_id=org.id,
        pipeline_id=pipeline.id,
        stage=pipeline.stages[0].ref,
        details={"full_name": "Late Lead"},
        assignee_id=None,
        actor=ACTOR,
    )
    head = fresh.app.commit(org, pipeline, lead)
    runner = runner_for(fresh, [LeadsProjector()], batch=2)
    runner.run_once()  # leads part-way into the new events, the others not at all
    with fresh.engine.connect() as conn:
        reached = read_positions(conn)
    assert reached["audit"] < reached["leads"] < head

    verdicts = check(fresh)

    assert all(v.ok for v in verdicts), [line for v in verdicts for line in v.lines()]
    positions = {v.projection: v.position for v in verdicts}
    assert positions["leads"] == reached["leads"] and positions["audit"] == reached["audit"]


def test_verifying_while_projectors_follow_new_writes_sees_one_consistent_instant(
    fresh: Services,
) -> None:
    projected(fresh)
    runner = runner_for(fresh, batch=5)
    done = threading.Event()

    def keep_writing() -> None:
        seed = 0
        while not done.is_set():
            seed += 1
            write_history(fresh, orgs=1, leads=3, seed=seed)

    writer = threading.Thread(target=keep_writing)
    runner.start(poll_interval=0.005)
    writer.start()
    try:
        verdicts = check(fresh)
    finally:
        done.set()
        writer.join()
        runner.stop()

    assert all(v.ok for v in verdicts), [line for v in verdicts for line in v.lines()]
    head = fresh.app.recorder.max_notification_id() or 0
    assert head > max(v.position for v in verdicts)  # the log moved on meanwhile


def test_one_organization_is_verified_from_its_own_events_only(fresh: Services) -> None:
    projected(fresh)
    org, _ = first_lead(fresh)
    with fresh.engine.begin() as conn:  # damage in another organization goes unseen
        conn.execute(
            rm_leads.update().where(rm_leads.c.organization_id != org).values(full_name="x")
        )
        count = sa.select(sa.func.count()).where(rm_leads.c.organization_id == org)
        leads = conn.execute(count).scalar_one()

    mine = check(fresh, "leads", "audit", org=org)

    assert all(v.ok and v.organizations == 1 for v in mine)
    assert {v.table: v.rows for v in mine}["rm_leads"] == leads
    assert not all(v.ok for v in check(fresh, "leads"))


def test_the_scratch_storage_is_removed_even_when_the_rebuild_fails(
    fresh: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    projected(fresh)

    def explode(*_: object) -> None:
        raise RuntimeError("rebuild failed")

    monkeypatch.setattr(ProjectionRunner, "catch_up", explode)
    with pytest.raises(RuntimeError, match="rebuild failed"):
        check(fresh, "leads")

    url = fresh.engine.url
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            schemas = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'verify_%'"
            ).fetchall()
        assert schemas == []
    else:
        assert url.database is not None
        assert list(Path(url.database).parent.glob("crm-verify-*")) == []


def test_values_are_normalised_alike_whatever_the_backend_returns() -> None:
    instant = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert normal(instant) == normal(instant.replace(tzinfo=None))
    assert normal(instant) == normal(instant.astimezone(timezone(timedelta(hours=-3))))
    assert normal(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert normal(Decimal("1.50")) == normal(Decimal("1.5")) == "1.5"
    assert normal(Decimal("100")) == "100"
    assert normal(date(2026, 1, 2)) == "2026-01-02"
    assert normal({"b": [UUID(int=0)], "a": None}) == {"a": None, "b": [str(UUID(int=0))]}
