"""(c) Board query latency: one organization with many leads among many organizations.

The big organization is registered for real (HTTP, so its pipeline and read-model stages come
from the projector); its leads, and the other organizations with their stages and leads, are
written straight into the read-model tables (rm_stages, rm_leads) by COPY, mimicking what the
leads projector writes: generating 100k+ leads through the aggregate path would take minutes.
Then `application.queries.board(conn, org, cards_per_stage=50)` is timed in-process (with the
pool checkout a request does), the same statements through raw psycopg as the floor, and
GET /crm/pipeline/board through the server. EXPLAIN checks the cards query uses ix_rm_leads_board.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from application.leads import queries
from bench.common import Results, Scale, dsn, latency_line, ms, pct, say, scratch_db, settings_for
from bench.server import HttpConnection, crm_server, register
from interfaces.database import make_engine

LEAD_COLUMNS = (
    "organization_id",
    "lead_id",
    "pipeline_id",
    "stage_id",
    "full_name",
    "email",
    "phone",
    "company",
    "source",
    "value_cents",
    "custom_fields",
    "assignee_id",
    "score",
    "status",
    "archived",
    "notes_count",
    "created_at",
    "updated_at",
    "stage_entered_at",
    "version",
    "last_position",
)
STAGE_WEIGHTS = (30, 20, 15, 10, 15, 10)  # Lead, Contact, Proposal, Negotiation, Won, Lost
STATUS = {"open": "open", "won": "won", "lost": "lost"}


def _lead_rows(
    rng: random.Random,
    org: UUID,
    pipeline: UUID,
    stages: list[tuple[UUID, str]],
    n: int,
    now: datetime,
) -> Any:
    stage_choices = rng.choices(range(len(stages)), weights=STAGE_WEIGHTS[: len(stages)], k=n)
    for i, s in enumerate(stage_choices):
        stage_id, stage_type = stages[s]
        created = now - timedelta(seconds=rng.randint(3600, 365 * 86400))
        entered = created + timedelta(seconds=rng.randint(0, 3000))
        yield (
            org,
            uuid4(),
            pipeline,
            stage_id,
            f"Lead {i}",
            f"lead{i}@example.com",
            None,
            f"Company {i % 997}",
            "web",
            rng.randint(0, 5_000_000) if i % 5 else None,
            Jsonb({}),
            None,
            None,
            STATUS[stage_type],
            rng.random() < 0.03,
            0,
            created,
            entered,
            entered,
            2,
            i + 1,
        )


def populate(db: str, big_org: UUID, scale: Scale) -> int:
    """COPY the leads of the big organization and of the others; returns rm_leads row count."""
    rng = random.Random(42)
    now = datetime.now(UTC)
    with psycopg.connect(dsn(db)) as conn:
        stages = conn.execute(
            "SELECT stage_id, stage_type, pipeline_id FROM rm_stages WHERE organization_id = %s "
            "ORDER BY sort_order",
            (big_org,),
        ).fetchall()
        if len(stages) != 6:
            raise RuntimeError(f"the big organization's stages were not projected: {stages}")
        pipeline = stages[0][2]
        big_stages = [(s[0], s[1]) for s in stages]
        cols = ", ".join(LEAD_COLUMNS)
        with conn.cursor() as cur:
            with cur.copy(f"COPY rm_leads ({cols}) FROM STDIN") as copy:
                for row in _lead_rows(rng, big_org, pipeline, big_stages, scale.board_leads, now):
                    copy.write_row(row)
            stage_rows = []
            with cur.copy(f"COPY rm_leads ({cols}) FROM STDIN") as copy:
                for _ in range(scale.board_orgs - 1):
                    org, pipe = uuid4(), uuid4()
                    st = [(uuid4(), t) for t in ("open", "open", "open", "open", "won", "lost")]
                    names = ("Lead", "Contact", "Proposal", "Negotiation", "Won", "Lost")
                    stage_rows += [
                        (org, sid, pipe, names[j], "#64748b", t, j, 0, 0)
                        for j, (sid, t) in enumerate(st)
                    ]
                    for row in _lead_rows(rng, org, pipe, st, scale.board_other_leads, now):
                        copy.write_row(row)
            with cur.copy(
                "COPY rm_stages (organization_id, stage_id, pipeline_id, name, color, stage_type, "
                "sort_order, lead_count, total_value_cents) FROM STDIN"
            ) as copy:
                for row in stage_rows:
                    copy.write_row(row)
            # the board's counts and sums, as the projector keeps them
            cur.execute(
                "UPDATE rm_stages s SET lead_count = a.n, total_value_cents = a.v FROM ("
                "  SELECT organization_id, stage_id, count(*) AS n,"
                "  coalesce(sum(value_cents), 0) AS v"
                "  FROM rm_leads WHERE NOT archived GROUP BY organization_id, stage_id) a "
                "WHERE s.organization_id = a.organization_id AND s.stage_id = a.stage_id"
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE rm_leads")
        conn.execute("VACUUM ANALYZE rm_stages")
        row = conn.execute("SELECT count(*) FROM rm_leads").fetchone()
        return int(row[0]) if row else 0


def explain_cards(engine: sa.Engine, org: UUID) -> tuple[bool, str]:
    """EXPLAIN ANALYZE the cards statement board() sends for the biggest stage."""
    captured: list[tuple[str, Any]] = []

    def grab(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if "FROM rm_leads" in statement and "LIMIT" in statement:
            captured.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        with engine.connect() as conn:
            board = queries.board(conn, org, cards_per_stage=50)
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    biggest = max(range(len(board.stages)), key=lambda i: board.stages[i].count)
    statement, parameters = captured[biggest]
    with engine.connect() as conn:
        plan = [
            r[0]
            for r in conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters
            )
        ]
    text = "\n".join(plan)
    sorts = any(line.strip().lstrip("-> ").startswith("Sort") for line in plan)
    return "ix_rm_leads_board" in text and not sorts, text


def raw_board(db: str, org: UUID, iterations: int) -> list[float]:
    """The same statements through raw psycopg (prepared): the floor for board()."""
    latencies = []
    with psycopg.connect(dsn(db)) as conn:
        for _ in range(iterations):
            t0 = time.perf_counter()
            stages = conn.execute(
                "SELECT stage_id, name, color, stage_type, lead_count, total_value_cents "
                "FROM rm_stages WHERE organization_id = %s ORDER BY sort_order",
                (org,),
                prepare=True,
            ).fetchall()
            for s in stages:
                conn.execute(
                    "SELECT lead_id, full_name, company, value_cents, score, assignee_id, status, "
                    "stage_entered_at, version FROM rm_leads WHERE organization_id = %s AND "
                    "stage_id = %s AND archived = false ORDER BY stage_entered_at DESC LIMIT 50",
                    (org, s[0]),
                    prepare=True,
                ).fetchall()
            conn.rollback()
            latencies.append(time.perf_counter() - t0)
    return latencies


def bench_board(scale: Scale, results: Results) -> None:
    name = "c_board"
    with scratch_db("crm_bench_c") as db, crm_server(db) as server:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            tenant = register(client, "Big org")
        org = UUID(tenant.organization_id)
        t0 = time.perf_counter()
        rows = populate(db, org, scale)
        say(
            f"  populated rm_leads directly by COPY (not through events): {scale.board_leads:,} "
            f"leads in the big org + {scale.board_orgs - 1} other orgs x {scale.board_other_leads} "
            f"= {rows:,} rows, in {time.perf_counter() - t0:.1f} s"
        )
        results.note(
            name,
            "rm_leads/rm_stages populated directly by COPY, mimicking the "
            f"projector ({scale.board_leads:,} leads in one org, {rows:,} rows in all, "
            f"{scale.board_orgs} orgs)",
        )

        engine = make_engine(settings_for(db))
        try:
            uses_index, plan = explain_cards(engine, org)
            verdict = "uses ix_rm_leads_board, no sort" if uses_index else "NOT a clean index scan"
            say(f"  EXPLAIN of the biggest stage's cards query: {verdict}")
            for line in plan.splitlines():
                say(f"      {line}")
            results.add(name, "cards query uses ix_rm_leads_board", float(uses_index), "bool")

            raw = raw_board(db, org, scale.board_iterations)
            say(f"  baseline: same 7 statements via raw psycopg (prepared): {latency_line(raw)}")
            results.add(name, "baseline raw psycopg p95", ms(pct(raw, 95)), "ms", ratio="baseline")

            for _ in range(5):  # warm the pool and the statement cache
                with engine.connect() as conn:
                    queries.board(conn, org, cards_per_stage=50)
            latencies = []
            for _ in range(scale.board_iterations):
                t = time.perf_counter()
                with engine.connect() as conn:
                    board = queries.board(conn, org, cards_per_stage=50)
                latencies.append(time.perf_counter() - t)
            cards = sum(len(c.leads) for c in board.stages)
            p95 = ms(pct(latencies, 95))
            say(
                f"  queries.board(cards_per_stage=50), {len(board.stages)} stages, {cards} cards, "
                f"incl. pool checkout: {latency_line(latencies)}; "
                f"p95 = {p95 / ms(pct(raw, 95)):.1f}x raw"
            )
            results.add(name, "board() in-process p50", ms(pct(latencies, 50)), "ms")
            results.add(
                name,
                "board() in-process p95",
                p95,
                "ms",
                ratio=f"{p95 / ms(pct(raw, 95)):.1f}x raw",
                bar="< 20 ms",
                meets=p95 < 20,
            )
        finally:
            engine.dispose()

        http = asyncio.run(_http_board(server.port, tenant.headers, scale.board_iterations))
        latencies, size = http
        p95 = ms(pct(latencies, 95))
        say(f"  GET /crm/pipeline/board over HTTP ({size:,} bytes): {latency_line(latencies)}")
        results.add(name, "GET /crm/pipeline/board p50", ms(pct(latencies, 50)), "ms")
        results.add(name, "GET /crm/pipeline/board p95", p95, "ms", bar="< 20 ms", meets=p95 < 20)


async def _http_board(
    port: int, headers: dict[str, str], iterations: int
) -> tuple[list[float], int]:
    conn = HttpConnection("127.0.0.1", port)
    latencies = []
    size = 0
    try:
        for i in range(iterations + 5):
            t0 = time.perf_counter()
            status, _, body = await conn.request("GET", "/crm/pipeline/board", headers)
            if status != 200:
                raise RuntimeError(f"GET /crm/pipeline/board answered {status}: {body[:300]!r}")
            if i >= 5:
                latencies.append(time.perf_counter() - t0)
            size = len(body)
    finally:
        await conn.close()
    return latencies, size
