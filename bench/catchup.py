"""(b) Projector catch-up: events/s of a ProjectionRunner reading the log from zero.

The log is written fast through the aggregate path (many aggregates per `app.commit(*aggs)`):
organizations with their pipelines, then leads captured, moved, re-valued, noted and moved again,
interleaved across organizations. Each projector then catches up alone, and all four together.

Baselines in the same database: the read rate of `select_notifications` alone, the same plus
decoding (`mapper.to_domain_event`), and a raw psycopg `executemany` of as many rows, in batches
of the same size, into a table shaped like the timeline.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import sqlalchemy as sa

from application.store import CrmApplication
from bench.common import CpuMeter, Results, Scale, dsn, fmt, say, scratch_db, settings_for
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.database import make_engine
from interfaces.services import build_app
from projections.base import positions
from projections.registry import all_projectors
from projections.runner import ProjectionRunner

ACTOR = Actor(kind="user", id=str(uuid4()), ip="10.0.0.1", user_agent="bench/1.0")
CHUNK = 1000  # aggregates per app.commit(*aggs)
BATCH = 1000  # the runner's default batch size, used by the raw baselines too


def write_log(app: CrmApplication, events: int, orgs: int) -> int:
    """Write about `events` events; return the log head."""
    pipelines = []
    batch: list[object] = []
    for i in range(orgs):
        org = Organization.register(name=f"Org {i}", owner_user_id=uuid4(), actor=ACTOR)
        pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
        pipelines.append(pipeline)
        batch += [org, pipeline]
        if len(batch) >= CHUNK:
            app.commit(*batch)  # type: ignore[arg-type]
            batch = []
    if batch:
        app.commit(*batch)  # type: ignore[arg-type]
    phases = 5  # capture, move, re-value, note, move
    n_leads = max(1, (events - 2 * orgs) // phases)
    opens = [[s.ref for s in p.stages if s.stage_type is StageType.OPEN] for p in pipelines]
    leads = []
    for i in range(n_leads):
        k = i % orgs
        leads.append(
            Lead.capture(
                organization_id=pipelines[k].organization_id,
                pipeline_id=pipelines[k].id,
                stage=opens[k][0],
                details={
                    "full_name": f"Lead {i}",
                    "email": f"lead{i}@example.com",
                    "company": "Example Ltd",
                    "estimated_value": "1000.00",
                },
                assignee_id=None,
                actor=ACTOR,
            )
        )
    owner = {lead.id: i % orgs for i, lead in enumerate(leads)}

    def flush_phase(change: object) -> None:
        for start in range(0, len(leads), CHUNK):
            chunk = leads[start : start + CHUNK]
            for lead in chunk:
                change(lead)  # type: ignore[operator]
            app.commit(*chunk)

    flush_phase(lambda lead: None)  # the captures
    flush_phase(lambda lead: lead.move_to(opens[owner[lead.id]][1], actor=ACTOR))
    flush_phase(lambda lead: lead.change_details({"estimated_value": "2500.00"}, actor=ACTOR))
    flush_phase(lambda lead: lead.add_note("Called, interested in the annual plan", actor=ACTOR))
    flush_phase(lambda lead: lead.move_to(opens[owner[lead.id]][2], actor=ACTOR))
    return app.recorder.max_notification_id() or 0


def reset(engine: sa.Engine, names: list[str]) -> None:
    with engine.begin() as conn:
        for projector in all_projectors():
            if projector.name in names:
                for table in projector.tables:
                    conn.execute(table.delete())
        conn.execute(
            positions.update()
            .where(positions.c.projection_name.in_(names))
            .values(position=0, updated_at=datetime.now(UTC))
        )


def timed_catch_up(runner: ProjectionRunner, timeout: float) -> tuple[int, float, bool]:
    """Run batches until caught up or out of time: (events read, seconds, finished)."""
    read = 0
    t0 = time.perf_counter()
    while True:
        n = runner.run_once()
        read += n
        if n == 0:
            return read, time.perf_counter() - t0, True
        if time.perf_counter() - t0 > timeout:
            return read, time.perf_counter() - t0, False


def bench_catchup(scale: Scale, results: Results) -> None:
    name = "b_catchup"
    with scratch_db("crm_bench_b") as db:
        settings = settings_for(db)
        engine = make_engine(settings)
        app = build_app(settings, engine)
        try:
            t0 = time.perf_counter()
            head = write_log(app, scale.catchup_events, scale.catchup_orgs)
            write_s = time.perf_counter() - t0
            say(
                f"  wrote {head:,} events ({scale.catchup_orgs} orgs) through the aggregate path, "
                f"{CHUNK} aggregates per app.commit: {fmt(head / write_s, 'events/s')} "
                f"(domain objects + encode + insert)"
            )
            results.add(name, "bulk write via app.commit(*1000 aggs)", head / write_s, "events/s")
            with psycopg.connect(dsn(db), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE crm_events")

            # ---- baselines
            with CpuMeter() as meter:
                read_s, count = _read_only(app, head, decode=False)
            read_rate = count / read_s
            say(
                f"  baseline: select_notifications alone, batches of {BATCH}: "
                f"{fmt(read_rate, 'events/s')}"
            )
            results.add(
                name, "baseline: select_notifications read", read_rate, "events/s", ratio="baseline"
            )
            decode_s, count = _read_only(app, head, decode=True)
            decode_rate = count / decode_s
            say(f"  baseline: read + decode (mapper.to_domain_event): {fmt(decode_rate)} events/s")
            results.add(
                name,
                "baseline: read + decode",
                decode_rate,
                "events/s",
                ratio=f"{decode_rate / read_rate:.0%} of read",
            )
            insert_rate = _raw_insert(db, head)
            say(
                f"  baseline: raw executemany INSERT of {head:,} timeline-shaped rows, "
                f"{BATCH} per transaction: {fmt(insert_rate, 'rows/s')}"
            )
            results.add(
                name, "baseline: raw executemany INSERT", insert_rate, "rows/s", ratio="baseline"
            )

            # ---- each projector alone, then all together
            names = [p.name for p in all_projectors()]
            for label, chosen in [(n, [n]) for n in names] + [("all 4 together", names)]:
                reset(engine, chosen)
                projectors = [p for p in all_projectors() if p.name in chosen]
                runner = ProjectionRunner(engine, app.recorder, app.mapper, projectors)
                timeout = scale.catchup_timeout if len(chosen) == 1 else scale.catchup_timeout_all
                meter = CpuMeter()
                with meter:
                    read, seconds, finished = timed_catch_up(runner, timeout)
                log_events = read / len(projectors)
                rate = log_events / seconds
                with engine.connect() as conn:
                    rows = sum(
                        conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                        for p in projectors
                        for t in p.tables
                    )
                status = "" if finished else f" (stopped at the {timeout:.0f} s bound)"
                say(
                    f"  {label}: {fmt(rate, 'events/s')} of the log in {seconds:.1f} s{status} "
                    f"= {rate / read_rate:.0%} of the read rate, {rate / insert_rate:.0%} of raw "
                    f"insert; {rows:,} rows"
                )
                say("    " + meter.describe(int(log_events), "event"))
                results.add(
                    name,
                    f"catch-up {label}",
                    rate,
                    "events/s",
                    ratio=f"{rate / insert_rate:.0%} of raw insert, {rate / read_rate:.0%} of read",
                    bar=">= 10,000 events/s",
                    meets=rate >= 10_000,
                    extra={
                        "seconds": seconds,
                        "finished": finished,
                        "rows": rows,
                        **meter.as_dict(int(log_events)),
                    },
                )
        finally:
            app.close()
            engine.dispose()


def _read_only(app: CrmApplication, head: int, *, decode: bool) -> tuple[float, int]:
    t0 = time.perf_counter()
    position = 0
    count = 0
    while position < head:
        notifications = app.recorder.select_notifications(
            start=position + 1, limit=BATCH, inclusive_of_start=True
        )
        if not notifications:
            break
        if decode:
            for n in notifications:
                app.mapper.to_domain_event(n)
        count += len(notifications)
        position = notifications[-1].id
    return time.perf_counter() - t0, count


def _raw_insert(db: str, rows: int) -> float:
    org, lead = uuid4(), uuid4()
    now = datetime.now(UTC)
    data = json.dumps({"to_stage_id": str(uuid4()), "from_stage_id": str(uuid4())})
    with psycopg.connect(dsn(db)) as conn:
        conn.execute(
            "CREATE TABLE bench_raw_timeline (organization_id uuid, lead_id uuid, version int, "
            "position bigint, activity_type varchar(40), title varchar(300), "
            "occurred_at timestamptz, actor_kind varchar(20), actor_id varchar(100), data jsonb, "
            "PRIMARY KEY (organization_id, lead_id, version))"
        )
        conn.commit()
        sql = "INSERT INTO bench_raw_timeline VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        t0 = time.perf_counter()
        for start in range(0, rows, BATCH):
            params = [
                (
                    org,
                    lead,
                    i,
                    i,
                    "stage_changed",
                    "Moved to another stage",
                    now,
                    "user",
                    "someone",
                    data,
                )
                for i in range(start, min(rows, start + BATCH))
            ]
            with conn.cursor() as cur:
                cur.executemany(sql, params)
            conn.commit()
        return rows / (time.perf_counter() - t0)
