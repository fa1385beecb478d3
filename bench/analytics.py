"""(g) Analytics: projector catch-up events/s, and p50/p95 of every analytics query.

One log is written through the aggregate path (many aggregates per `app.commit(*aggs)`): one big
organization (`big_leads` leads) among `orgs - 1` small ones (10 leads each). Every lead has a
story over the past year: captured with a source and an assignee, moved once or twice, half of
them get a note, half are won or lost; 85 % have a WhatsApp conversation of 4–10 messages
alternating inbound/outbound, 30 % an outbound call (70 % answered). All stories' steps are
played in time order (as a live system records them; timestamps set by swapping eventsourcing's
`create_timestamp`), about 11 events per lead: 100k leads make ~1.1 M events.

(1) The analytics projector alone catches up from zero: events/s of the log, against the read +
decode baseline of (b) (`select_notifications` + `mapper.to_domain_event`) in the same database.
(2) The leads projector then runs (untimed; the pipeline report reads rm_stages) and the query
functions behind GET /analytics/{pipeline,leads,team,communication} and POST
/analytics/custom-report are timed in-process for a one-year range, each inside
`services.reading(org)` (role crm_reader, RLS) with `resolve_period` as the handlers do. The
floor: the raw psycopg statement summing the big organization's per-member daily rows for the
year (the largest roll-up).
"""

from __future__ import annotations

import gc
import itertools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.domain import CanCreateTimestamp

from application.analytics import queries as q
from application.analytics import report as custom
from application.analytics import team as team_q
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
from domain.call import Call
from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.services import build_app, build_services
from projections.analytics_tables import ANALYTICS_TABLES
from projections.registry import all_projectors
from projections.runner import ProjectionRunner

CHUNK = 1000  # aggregates per app.commit(*aggs)
SOURCES = ("web", "referral", "ads", "event", "partner")
MEMBERS = 20  # assignees / actors of the big organization
SMALL_LEADS = 10
YEAR = 365 * 86400
PROVIDER = Actor(kind="provider", id="business_api")
ANALYTICS_NAMES = [
    t.name for t in ANALYTICS_TABLES if t.name not in ("rm_analytics_orgs", "rm_analytics_threads")
]
BY_SOURCE = custom.CustomReportRequest(
    measures=["leads_created", "leads_won", "won_value"], dimensions=["period", "source"]
)
FROM_FACTS = custom.CustomReportRequest(
    measures=["leads_created", "leads_won"], dimensions=["source", "assignee"]
)


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


class _LeadStory:
    """One lead's history as timed steps: capture, moves, a note, a close, messages, a call."""

    def __init__(self, rng: random.Random, pipeline: Pipeline, i: int, ctx: _Context) -> None:
        self.rng, self.pipeline, self.i, self.ctx = rng, pipeline, i, ctx
        self.actor = rng.choice(ctx.actors)
        self.lead: Lead | None = None
        self.chat: Conversation | None = None
        self.call: Call | None = None

    def steps(self, start: datetime, now: datetime) -> Iterator[tuple[datetime, Callable[[], Any]]]:
        rng, at = self.rng, start + timedelta(seconds=self.rng.randint(0, YEAR - 86400))
        gap = max(61, int((now - at).total_seconds()) // 4)
        yield at, self.capture
        moved = at
        for stage in self.opens[1 : 1 + rng.randint(1, 2)]:
            moved = min(now, moved + timedelta(seconds=rng.randint(60, gap)))
            yield moved, lambda stage=stage: self._move(stage)
        if rng.random() < 0.5:
            note = min(now, at + timedelta(seconds=rng.randint(60, gap)))
            yield note, self._note
        roll = rng.random()
        if roll < 0.5:
            yield (
                min(now, moved + timedelta(seconds=rng.randint(60, gap))),
                lambda: self._close(roll),
            )
        if rng.random() < 0.85:
            t = at + timedelta(seconds=rng.randint(1, 3600))
            yield min(now, t), self._open_chat
            for k in range(rng.randint(4, 10)):
                t += timedelta(seconds=rng.randint(60, 7200))
                yield min(now, t), (self._inbound if k % 2 == 0 else self._outbound)
        if rng.random() < 0.3:
            t = at + timedelta(seconds=rng.randint(60, 86400))
            yield min(now, t), self._dial
            yield min(now, t + timedelta(seconds=20)), self._answer
            yield min(now, t + timedelta(seconds=200)), self._hang_up

    @property
    def opens(self) -> list[Any]:
        return [s for s in self.pipeline.stages if s.stage_type is StageType.OPEN]

    def _lead(self) -> Lead:
        assert self.lead is not None
        return self.lead

    def capture(self) -> Lead:
        self.lead = Lead.capture(
            organization_id=self.pipeline.organization_id,
            pipeline_id=self.pipeline.id,
            stage=self.opens[0],
            details={
                "full_name": f"Lead {self.i}",
                "email": f"lead{self.i}@example.com",
                "source": self.rng.choice(SOURCES),
                "estimated_value": f"{self.rng.randint(100, 50_000)}.00",
            },
            assignee_id=self.rng.choice(self.ctx.members),
            actor=self.actor,
        )
        return self.lead

    def _move(self, stage: Any) -> Lead:
        self._lead().move_to(stage, actor=self.actor)
        return self._lead()

    def _note(self) -> Lead:
        self._lead().add_note("called back", actor=self.actor)
        return self._lead()

    def _close(self, roll: float) -> Lead:
        lead = self._lead()
        stages = self.pipeline.stages
        if roll < 0.3:
            lead.win(next(s for s in stages if s.stage_type is StageType.WON), actor=self.actor)
        else:
            lost = next(s for s in stages if s.stage_type is StageType.LOST)
            lead.lose(lost, reason="budget", actor=self.actor)
        return lead

    def _open_chat(self) -> Conversation:
        self.chat = Conversation.start(
            organization_id=self.pipeline.organization_id,
            lead_id=self._lead().id,
            channel="whatsapp",
            contact=f"+55119{self.i % 10**8:08d}",
            actor=self.actor,
        )
        return self.chat

    def _inbound(self) -> Conversation:
        assert self.chat is not None
        self.chat.receive(
            provider_message_id=uuid4().hex,
            provider_type="business_api",
            text="hello",
            sent_at=self.ctx.box[0],
            actor=PROVIDER,
        )
        return self.chat

    def _outbound(self) -> Conversation:
        assert self.chat is not None
        self.chat.send(
            provider_type="business_api",
            now=self.ctx.box[0],
            text="hi",
            window=False,
            actor=self.actor,
        )
        return self.chat

    def _dial(self) -> Call:
        self.call = Call.start(
            organization_id=self.pipeline.organization_id,
            lead_id=self._lead().id,
            direction="outbound",
            provider_type="twilio",
            from_number="+14155552671",
            to_number=f"+55119{self.i % 10**8:08d}",
            actor=self.actor,
        )
        return self.call

    def _answer(self) -> Call:
        assert self.call is not None
        if self.rng.random() < 0.7:
            self.call.progress("answered", actor=PROVIDER)
        return self.call

    def _hang_up(self) -> Call:
        assert self.call is not None
        answered = self.call.status == "answered"
        self.call.end(
            duration_seconds=self.rng.randint(10, 900) if answered else 0,
            outcome="completed" if answered else "no_answer",
            actor=PROVIDER,
        )
        return self.call


class _Context:
    def __init__(self, actors: list[Actor], box: list[datetime]) -> None:
        self.actors, self.box = actors, box
        self.members = [UUID(a.id) for a in actors]


def write_history(app: CrmApplication, big_leads: int, orgs: int) -> tuple[UUID, int, int]:
    """Write the log in time order; return (big organization id, log head, leads written).

    Every lead's story is laid out as timed steps; all steps of all organizations are then
    played in time order (as a live system records them), many aggregates per commit.
    """
    rng = random.Random(7)
    now = datetime.now(UTC)
    start = now - timedelta(seconds=YEAR)
    actors = _actors(MEMBERS)
    with clock() as box:
        ctx = _Context(actors, box)
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
        steps: list[tuple[datetime, int, Callable[[], Any]]] = []
        written, order = 0, itertools.count()
        for pipeline, n in plan:
            for _ in range(n):
                story = _LeadStory(rng, pipeline, written, ctx)
                steps += [(at, next(order), act) for at, act in story.steps(start, now)]
                written += 1
        steps.sort(key=lambda step: (step[0], step[1]))
        pending: dict[UUID, Any] = {}
        for count, (at, _, act) in enumerate(steps, 1):
            box[0] = at
            aggregate = act()
            pending[aggregate.id] = aggregate
            if count % CHUNK == 0:
                app.commit(*pending.values())
                pending.clear()
        if pending:
            app.commit(*pending.values())
    return pipelines[0].organization_id, app.recorder.max_notification_id() or 0, written


def _raw_daily(db: str, org: UUID, iterations: int) -> list[float]:
    """The floor: one prepared statement summing the org's per-member daily rows for the year."""
    today = datetime.now(UTC).date()
    latencies = []
    with psycopg.connect(dsn(db)) as conn:
        for _ in range(iterations):
            t0 = time.perf_counter()
            conn.execute(
                "SELECT kind, member_id, channel, sum(count), sum(value_cents), "
                "sum(seconds) FROM rm_analytics_by_member WHERE organization_id = %s "
                "AND day >= %s AND day <= %s GROUP BY kind, member_id, channel",
                (org, today - timedelta(days=364), today),
                prepare=True,
            ).fetchall()
            conn.rollback()
            latencies.append(time.perf_counter() - t0)
    return latencies


def bench_analytics(scale: Scale, results: Results) -> None:
    name = "g_analytics"
    big_leads = 10_000 if scale.quick else 100_000
    orgs = 200 if scale.quick else 1_000
    iterations = 30 if scale.quick else 100
    timeout = 60.0 if scale.quick else 900.0
    with scratch_db("crm_bench_g") as db:
        settings = settings_for(db)
        services = build_services(settings, with_runner=False)
        engine = services.engine
        app = build_app(settings, engine)
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
            # the queries are timed as an API process answers them (`crm serve --no-projections`
            # beside `crm projections run`): without the projectors' in-memory state, whose
            # hundreds of thousands of objects would lengthen every full garbage collection
            del projector, runner, leads_proj, lead_runner
            gc.collect()
            with psycopg.connect(dsn(db), autocommit=True) as conn:
                for table in [*ANALYTICS_NAMES, "rm_stages"]:
                    conn.execute(f"VACUUM ANALYZE {table}")
                sizes = []
                for table in ANALYTICS_NAMES:
                    row = conn.execute(
                        f"SELECT count(*) FROM {table} WHERE organization_id = %s", (big,)
                    ).fetchone()
                    sizes.append(f"{table} {row[0] if row else 0:,}")
                say("  big organization rows: " + ", ".join(sizes))
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
                "leads by assignee": endpoint(
                    lambda c, p, now: q.leads_report(c, big, p, "assignee", None)
                ),
                "communication": endpoint(
                    lambda c, p, now: team_q.communication_report(c, big, p, 24, now)
                ),
                "custom report (period x source)": endpoint(
                    lambda c, p, now: custom.custom_report(c, big, p, BY_SOURCE, None)
                ),
                "custom report (source x assignee, from facts)": endpoint(
                    lambda c, p, now: custom.custom_report(c, big, p, FROM_FACTS, None)
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
        finally:
            app.close()
            services.app.close()
            engine.dispose()
