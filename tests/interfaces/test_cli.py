"""The `crm` command on SQLite files and on a scratch PostgreSQL database of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from application.context import Ctx
from application.identity.accounts import Register, register
from application.leads import commands as leads
from application.leads import pipelines
from domain.pipeline import Pipeline, default_pipeline_id
from domain.values import Actor, Role
from interfaces.cli import main
from interfaces.demo import DEMO_EMAIL, DEMO_PASSWORD
from interfaces.services import Services, build_services
from interfaces.settings import load_settings
from projections.leads import rm_leads, rm_stages
from projections.runner import read_positions
from tests.interfaces.conftest import SECRET

PROJECTIONS = ["audit", "directory", "leads", "timeline"]
CRM = str(Path(sys.executable).with_name("crm"))


def crm(env: dict[str, str], *args: str) -> Result:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CRM_")}
    result = CliRunner().invoke(main, list(args), env=unset | env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def ok(env: dict[str, str], *args: str) -> str:
    result = crm(env, *args)
    assert result.exit_code == 0, result.output
    return result.output


def open_services(env: dict[str, str]) -> Services:
    return build_services(load_settings(env), with_runner=False)


def status_rows(output: str) -> dict[str, tuple[int, int]]:
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in PROJECTIONS:
            rows[cells[0]] = (int(cells[1]), int(cells[2]))
    return rows


def write_history(services: Services) -> int:
    """A second organization whose leads and stages go through most kinds of event."""
    done = register(
        services.app,
        services.users,
        services.hasher,
        Register("owner@cli.example", "correct horse battery", "Owner", "CLI Org"),
    )
    org = done.organization_id
    ctx = Ctx(org, done.user_id, Role.ADMIN, Actor(kind="user", id=str(done.user_id)))
    app = services.app
    pipeline = app.load(Pipeline, default_pipeline_id(org), org)
    stage_ids = [s.id for s in pipeline.stages]
    extra = pipelines.add_stage(app, pipelines.AddStage("Demo", "#123456", position=1), ctx)
    spare = pipelines.add_stage(app, pipelines.AddStage("Spare", "#654321"), ctx)
    demo_call = pipelines.UpdateStage("Demo call", "#abcdef", win_probability=60)
    pipelines.update_stage(app, extra.stage_id, demo_call, ctx)
    pipelines.reorder_stages(app, [extra.stage_id, *stage_ids, spare.stage_id], ctx)
    pipelines.remove_stage(app, spare.stage_id, None, ctx, services)
    ids: list[UUID] = []
    for n in range(6):
        capture = leads.CaptureLead(f"Lead {n}", company=f"Co {n}", estimated_value=Decimal(n))
        ids.append(leads.capture_lead(app, capture, ctx).id)
    leads.move_lead_to_stage(app, ids[0], extra.stage_id, 1, ctx)
    leads.move_lead_to_stage(app, ids[1], stage_ids[2], 1, ctx)
    leads.add_note(app, ids[1], "called, interested", ctx)
    leads.win_lead(app, ids[2], ctx)
    leads.lose_lead(app, ids[3], "budget", ctx)
    leads.reopen_lead(app, ids[3], None, ctx)
    leads.archive_lead(app, ids[4], ctx)
    leads.assign_lead(app, ids[5], done.user_id, ctx)
    change = leads.ChangeLeadDetails(estimated_value=Decimal("99.50"), email="a@b.example")
    return leads.change_lead_details(app, ids[5], change, ctx).position


def dump(services: Services, *tables: sa.Table) -> dict[str, list[Any]]:
    with services.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in tables
        }


def test_migrate_twice_is_harmless(env: dict[str, str]) -> None:
    assert "database is up to date" in ok(env, "migrate")
    assert "database is up to date" in ok(env, "migrate")
    services = open_services(env)
    try:
        tables = set(sa.inspect(services.engine).get_table_names())
        events_table = services.app.recorder.events_table_name
    finally:
        services.close()
    assert {events_table, "projection_positions", "rm_leads", "rm_stages"} <= tables
    if env["CRM_DATABASE_URL"].startswith("sqlite:///"):  # names and emails in clear: owner only
        database = Path(env["CRM_DATABASE_URL"].removeprefix("sqlite:///"))
        assert database.stat().st_mode & 0o777 == 0o600  # (-wal and -shm get the same mode)


def test_seed_demo_prints_the_login_and_a_second_run_finds_the_same_organization(
    env: dict[str, str],
) -> None:
    ok(env, "migrate")
    first = ok(env, "seed-demo")
    assert "created the demo organization" in first
    assert f"login: {DEMO_EMAIL}" in first
    assert f"password: {DEMO_PASSWORD}" in first
    services = open_services(env)
    try:
        head = services.app.recorder.max_notification_id()
        second = ok(env, "seed-demo")
        assert "found the demo organization" in second
        assert f"login: {DEMO_EMAIL}" in second
        assert services.app.recorder.max_notification_id() == head
        notifications = services.app.recorder.select_notifications(start=1, limit=1000)
    finally:
        services.close()
    registered = [n for n in notifications if n.topic.endswith("Organization.Registered")]
    assert len(registered) == 1


def test_status_prints_each_projection_with_position_and_lag_and_rebuilds_catch_up(
    env: dict[str, str],
) -> None:
    ok(env, "migrate")
    ok(env, "seed-demo")
    services = open_services(env)
    try:
        head = services.app.recorder.max_notification_id() or 0
    finally:
        services.close()
    before = ok(env, "projections", "status")
    assert f"log head {head}" in before
    assert status_rows(before) == dict.fromkeys(PROJECTIONS, (0, head))
    assert "leads rebuilt" in ok(env, "projections", "rebuild", "leads")
    after = status_rows(ok(env, "projections", "status"))
    assert after == dict.fromkeys(PROJECTIONS, (0, head)) | {"leads": (head, 0)}


def test_rebuilding_leads_from_zero_gives_back_the_same_rows(env: dict[str, str]) -> None:
    ok(env, "migrate")
    ok(env, "seed-demo")
    services = build_services(load_settings(env), with_runner=True)
    try:
        head = write_history(services)
        assert services.runner is not None
        services.runner.catch_up()
        before = dump(services, rm_leads, rm_stages)
        assert len(before["rm_leads"]) == 10
        assert len(before["rm_stages"]) == 13
        chance = list(rm_stages.c.keys()).index("win_probability")
        assert 60 in {row[chance] for row in before["rm_stages"]}
        with services.engine.begin() as conn:  # damage the read model: a rebuild repairs it
            conn.execute(rm_leads.update().values(full_name="tampered"))
            conn.execute(rm_stages.delete().where(rm_stages.c.name == "Won"))
        output = ok(env, "projections", "rebuild", "leads")
        assert "leads rebuilt" in output
        assert dump(services, rm_leads, rm_stages) == before
        with services.engine.connect() as conn:
            assert read_positions(conn)["leads"] == head
    finally:
        services.close()


def test_rebuilding_an_unknown_projection_fails_listing_the_known_names(
    tmp_path: Path,
) -> None:
    env = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "CRM_SECRET_KEY": SECRET}
    result = crm(env, "projections", "rebuild", "nope")
    assert result.exit_code != 0
    assert "unknown projection nope" in result.output
    for name in PROJECTIONS:
        assert name in result.output


def test_status_on_an_unmigrated_database_says_so_without_a_traceback(tmp_path: Path) -> None:
    env = {"CRM_DATABASE_URL": f"sqlite:///{tmp_path}/crm.db", "CRM_SECRET_KEY": SECRET}
    result = crm(env, "projections", "status")
    assert result.exit_code == 1
    assert "crm migrate" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "stop_with"),
    [("sqlite", signal.SIGINT), ("postgres", signal.SIGTERM)],
    indirect=["env"],
    ids=["sqlite-SIGINT", "postgres-SIGTERM"],
)
def test_projections_run_follows_the_log_and_stops_cleanly_on_a_signal(
    env: dict[str, str], stop_with: signal.Signals, tmp_path: Path
) -> None:
    ok(env, "migrate")
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    child_env |= env | {"PYTHONUNBUFFERED": "1"}
    out, err = (tmp_path / "run.out").open("w+"), (tmp_path / "run.err").open("w+")
    proc = subprocess.Popen(
        [CRM, "projections", "run"], env=child_env, stdout=out, stderr=err, cwd=tmp_path
    )
    services = open_services(env)
    try:
        head = write_history(services)
        deadline = time.monotonic() + 20
        while True:
            with services.engine.connect() as conn:
                reached = read_positions(conn)
            if all(reached.get(n, 0) >= head for n in PROJECTIONS):
                break
            assert proc.poll() is None, "the projector process died"
            assert time.monotonic() < deadline, f"positions stuck at {reached}, head {head}"
            time.sleep(0.05)
        with services.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(rm_leads)).scalar() == 6
        proc.send_signal(stop_with)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        services.close()
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    assert "projectors running" in stdout
    assert f"{stop_with.name}: finishing the current batch" in stdout
    assert "projectors stopped" in stdout
    assert "Traceback" not in stderr
