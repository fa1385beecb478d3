"""(g) Analytics: projector catch-up events/s, and p50/p95 of the four analytics queries.

One log is written through the aggregate path (many aggregates per `app.commit(*aggs)`): one big
organization (`analytics_leads` leads) among `analytics_orgs - 1` small ones (10 leads each).
Every lead is captured with a source and an assignee, moved once or twice, and about half of them
are won or lost. Event timestamps are spread over the past year (per lead in order: capture, then
moves, then the close) by swapping eventsourcing's `create_timestamp` while the aggregates are
built, so the daily roll-ups cover ~365 days. No conversations or calls are generated: the
messaging and call figures of /analytics/team and /analytics/communication read empty sets.

(1) The analytics projector alone catches up from zero: events/s of the log, against the read +
decode baseline of (b) (`select_notifications` + `mapper.to_domain_event`) in the same database.
(2) The leads projector then runs (untimed; the pipeline report reads rm_stages) and the four
query functions behind GET /analytics/{pipeline,leads,team,communication} are timed in-process
for a one-year range, each inside `services.reading(org)` (role crm_reader, RLS) with
`resolve_period` as the handlers do. The floor: the raw psycopg statement summing the big
organization's daily rows for the year.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.domain import CanCreateTimestamp

from application import analytics as q
from application import analytics_team as team_q
from application.store import CrmApplication
from bench.catchup import _read_only, reset, timed_catch_up
from bench.common import (
    CpuMeter,
    Results,
    Scale,
    dsn,
    fmt,
    latency_line,
    ms,
    pct,
    say,
    scratch_db,
    settings_for,
)
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.database import eventstore_env
from interfaces.services import build_services
from projections.registry import all_projectors
from projections.runner import ProjectionRunner

CHUNK = 1000  # aggregates per app.commit(*aggs)
SOURCES = ("web", "referral", "ads", "event", "partner")
MEMBERS = 20  # assignees / actors of the big organization
SMALL_LEADS = 10
YEAR = 365 * 86400


@contextmanager
def clock() -> Iterator[list[datetime]]:
    """While open, every new event's timestamp is `box[0]` (set it before each command)."""
    box = [datetime.now(UTC)]
    original = CanCreateTimestamp.__dict__["create_timestamp"]
    CanCreateTimestamp.create_timestamp = staticmethod(lambda: box[0])  # type: ignore[method-assign]
    try:
        yield box
    finally:
        CanCreateTimestamp.create_timestamp = original  # type: ignore[method-assign]


def _actors(n: int) -> list[Actor]:
    return [
        Actor(kind="user", id=str(uuid4()), ip="10.0.0.1", user_agent="bench/1.0") for _ in range(n)
    ]


def write_history(app: CrmApplication, big_leads: int, orgs: int) -> tuple[UUID, int, int]:
    """Write the log; return (big organization id, log head, leads written)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    start = now - timedelta(seconds=YEAR)
    actors = _actors(MEMBERS)
    members = [UUID(a.id) for a in actors]
    written = 0
    with clock() as box:
        box[0] = start - timedelta(days=1)
        pipelines: list[Pipeline] = []
        batch: list[Any] = []
        for i in range(orgs):
            org = Organization.register(name=f"Org {i}", owner_user_id=uuid4(), actor=actors[0])
            pipeline = Pipeline.create_default(organization_id=org.id, actor=actors[0])
            pipelines.append(pipeline)
            batch += [org, pipeline]
            if len(batch) >= CHUNK:
                app.commit(*batch)
                batch = []
        if batch:
            app.commit(*batch)
        plan = [(pipelines[0], big_leads)] + [(p, SMALL_LEADS) for p in pipelines[1:]]
        chunk: list[Lead] = []
        for pipeline, n in plan:
            opens = [s for s in pipeline.stages if s.stage_type is StageType.OPEN]
            won = next(s for s in pipeline.stages if s.stage_type is StageType.WON)
            lost = next(s for s in pipeline.stages if s.stage_type is StageType.LOST)
            for i in range(n):
                actor = rng.choice(actors)
                at = start + timedelta(seconds=rng.randint(0, YEAR - 86400))
                box[0] = at
                lead = Lead.capture(
                    organization_id=pipeline.organization_id,
                    pipeline_id=pipeline.id,
                    stage=opens[0],
                    details={
                        "full_name": f"Lead {i}",
                        "email": f"lead{i}@example.com",
                        "source": rng.choice(SOURCES),
                        "estimated_value": f"{rng.randint(100, 50_000)}.00",
                    },
                    assignee_id=rng.choice(members),
                    actor=actor,
                )
                remaining = int((now - at).total_seconds())
                for stage in opens[1 : 1 + rng.randint(1, 2)]:
                    at += timedelta(seconds=rng.randint(60, max(61, remaining // 4)))
                    box[0] = min(at, now)
                    lead.move_to(stage, actor=actor)
                roll = rng.random()
                if roll < 0.5:
                    at += timedelta(seconds=rng.randint(60, max(61, remaining // 4)))
                    box[0] = min(at, now)
                    if roll < 0.3:
                        lead.win(won, actor=actor)
                    else:
                        lead.lose(lost, reason="budget", actor=actor)
                chunk.append(lead)
                written += 1
                if len(chunk) >= CHUNK:
                    app.commit(*chunk)
                    chunk = []
        if chunk:
            app.commit(*chunk)
    return pipelines[0].organization_id, app.recorder.max_notification_id() or 0, written


def _raw_daily(db: str, org: UUID, iterations: int) -> list[float]:
    """The floor: one prepared statement summing the org's daily rows for the year."""
    today = datetime.now(UTC).date()
    latencies = []
    with psycopg.connect(dsn(db)) as conn:
        for _ in range(iterations):
            t0 = time.perf_counter()
            conn.execute(
                "SELECT day, kind, stage_id, to_stage_id, sum(count), sum(value_cents), "
                "sum(seconds) FROM rm_analytics_daily WHERE organization_id = %s AND day >= %s "
                "AND day <= %s GROUP BY day, kind, stage_id, to_stage_id",
                (org, today - timedelta(days=364), today),
                prepare=True,
            ).fetchall()
            conn.rollback()
            latencies.append(time.perf_counter() - t0)
    return latencies


def bench_analytics(scale: Scale, results: Results) -> None:
    name = "g_analytics"
    big_leads = 10_000 if scale.quick else 100_000
    orgs = 200 if scale.quick else 500
    iterations = 30 if scale.quick else 100
    timeout = 60.0 if scale.quick else 300.0
    with scratch_db("crm_bench_g") as db:
        settings = settings_for(db)
        app = CrmApplication(env=eventstore_env(settings))
        services = build_services(settings, with_runner=False)
        engine = services.engine
        try:
            t0 = time.perf_counter()
            big, head, leads = write_history(app, big_leads, orgs)
            write_s = time.perf_counter() - t0
            say(
                f"  wrote {head:,} events ({leads:,} leads; {big_leads:,} in the big organization "
                f"among {orgs}; timestamps over the past year) in {write_s:.1f} s"
            )
            with psycopg.connect(dsn(db), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE crm_events")

            # ---- (1) catch-up
            decode_s, count = _read_only(app, head, decode=True)
            decode_rate = count / decode_s
            say(f"  baseline: read + decode (mapper.to_domain_event): {fmt(decode_rate)} events/s")
            results.add(name, "baseline: read + decode", decode_rate, "events/s", ratio="baseline")
            reset(engine, ["analytics"])
            projector = [p for p in all_projectors() if p.name == "analytics"]
            runner = ProjectionRunner(engine, app.recorder, app.mapper, projector)
            meter = CpuMeter()
            with meter:
                read, seconds, finished = timed_catch_up(runner, timeout)
            rate = read / seconds
            status = "" if finished else f" (stopped at the {timeout:.0f} s bound)"
            say(
                f"  analytics catch-up: {fmt(rate, 'events/s')} of the log in {seconds:.1f} s"
                f"{status} = {rate / decode_rate:.0%} of read + decode"
            )
            say("    " + meter.describe(read, "event"))
            results.add(
                name,
                "catch-up analytics",
                rate,
                "events/s",
                ratio=f"{rate / decode_rate:.0%} of read + decode",
                bar=">= 10,000 events/s",
                meets=rate >= 10_000,
                extra={"seconds": seconds, "finished": finished, **meter.as_dict(read)},
            )

            # ---- (2) queries: the leads projector provides rm_stages
            leads_proj = [p for p in all_projectors() if p.name == "leads"]
            lead_runner = ProjectionRunner(engine, app.recorder, app.mapper, leads_proj)
            timed_catch_up(lead_runner, 10 * timeout)
            with psycopg.connect(dsn(db), autocommit=True) as conn:
                for table in ("rm_analytics_daily", "rm_analytics_leads", "rm_stages"):
                    conn.execute(f"VACUUM ANALYZE {table}")
                row = conn.execute(
                    "SELECT count(*) FROM rm_analytics_daily WHERE organization_id = %s", (big,)
                ).fetchone()
                say(f"  big organization: {row[0] if row else 0:,} daily rows")
            today = datetime.now(UTC).date()
            first, last = str(today - timedelta(days=364)), str(today)

            def endpoint(run: Callable[[Any, q.Period, datetime], object]) -> Callable[[], None]:
                def call() -> None:
                    now = datetime.now(UTC)
                    with services.reading(big) as conn:
                        period = q.resolve_period(conn, big, first, last, "day", now)
                        run(conn, period, now)

                return call

            calls = {
                "pipeline": endpoint(lambda c, p, now: q.pipeline_report(c, big, p, now)),
                "leads": endpoint(lambda c, p, now: q.leads_report(c, big, p, "source", None)),
                "team": endpoint(lambda c, p, now: team_q.team_report(c, big, p, None)),
                "communication": endpoint(
                    lambda c, p, now: team_q.communication_report(c, big, p, 24, now)
                ),
            }
            floor = _raw_daily(db, big, iterations)
            say(f"  floor: raw psycopg daily-rows sum for the year: {latency_line(floor)}")
            results.add(
                name, "floor: raw daily sum p95", ms(pct(floor, 95)), "ms", ratio="baseline"
            )
            for label, call in calls.items():
                for _ in range(3):
                    call()  # warm-up
                latencies = []
                for _ in range(iterations):
                    t0 = time.perf_counter()
                    call()
                    latencies.append(time.perf_counter() - t0)
                say(f"  /analytics/{label} (one year, in-process): {latency_line(latencies)}")
                p50, p95 = ms(pct(latencies, 50)), ms(pct(latencies, 95))
                floor95 = ms(pct(floor, 95))
                results.add(name, f"{label} p50", p50, "ms")
                results.add(
                    name,
                    f"{label} p95",
                    p95,
                    "ms",
                    ratio=f"{p95 / floor95:.1f}x raw daily sum" if floor95 else "",
                    bar="p95 < 100 ms",
                    meets=p95 < 100,
                )
            results.note(
                name,
                "no conversations or calls generated: message/call figures read empty sets",
            )
        finally:
            app.close()
            services.app.close()
            engine.dispose()
