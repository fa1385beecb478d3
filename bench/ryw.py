"""(e) Read-your-writes: after a command, how long until a read shows it.

Over HTTP (server process, projectors in-process): PATCH a lead's stage, then at once
GET /crm/leads/{id} with X-Min-Position = the position the command returned; the server waits
(bounded) for the leads projection. The time from the PATCH's answer to the GET's answer is
compared with a plain GET of the same lead (no wait). A GET answered with X-Stale, or showing
an older version, is counted.

In-process (build_services with its projection runner): commit a move, then time
`services.wait_for(["leads"], position)` and the wait for all four projections.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import uuid4

import httpx

from application.leads import queries
from application.store import CrmApplication
from bench.common import Results, Scale, latency_line, ms, pct, say, scratch_db, settings_for
from bench.server import HttpConnection, capture, crm_server, register
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor, StageType
from interfaces.services import build_services
from projections.registry import all_projectors

ACTOR = Actor(kind="system", id="bench")


async def _http_ryw(
    port: int,
    tenant: object,
    leads: list[tuple[str, int]],
    targets: list[str],
    iterations: int,
    seconds: float,
) -> dict[str, object]:
    headers: dict[str, str] = tenant.headers  # type: ignore[attr-defined]
    conn = HttpConnection("127.0.0.1", port)
    after_write: list[float] = []
    plain: list[float] = []
    stale = wrong = 0
    state: list[list[Any]] = [[lead_id, version, 0] for lead_id, version in leads]
    deadline = time.perf_counter() + seconds
    try:
        for i in range(iterations):
            if time.perf_counter() > deadline:
                break
            lead = state[i % len(state)]
            target = targets[(lead[2] + 1) % 2]
            body = json.dumps({"stage_id": target, "expected_version": lead[1]}).encode()
            status, _, data = await conn.request(
                "PATCH", f"/crm/leads/{lead[0]}/stage", headers, body
            )
            if status != 200:
                raise RuntimeError(f"PATCH answered {status}: {data[:300]!r}")
            written = json.loads(data)
            lead[1], lead[2] = written["version"], lead[2] + 1
            t0 = time.perf_counter()
            status, response_headers, data = await conn.request(
                "GET",
                f"/crm/leads/{lead[0]}",
                headers | {"X-Min-Position": str(written["position"])},
            )
            after_write.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"GET answered {status}: {data[:300]!r}")
            if response_headers.get("x-stale") == "true":
                stale += 1
            elif json.loads(data)["version"] != written["version"]:
                wrong += 1
            await asyncio.sleep(0.005)  # let the projector go idle: each sample is a cold wait
            t0 = time.perf_counter()
            status, _, data = await conn.request("GET", f"/crm/leads/{lead[0]}", headers)
            plain.append(time.perf_counter() - t0)
    finally:
        await conn.close()
    return {"after_write": after_write, "plain": plain, "stale": stale, "wrong": wrong}


def bench_ryw(scale: Scale, results: Results) -> None:
    name = "e_ryw"
    with scratch_db("crm_bench_e") as db:
        with crm_server(db) as server:
            with httpx.Client(base_url=server.base, timeout=30) as client:
                tenant = register(client, "RYW org")
                leads = capture(client, tenant, 8)
            targets = [s["id"] for s in tenant.stages if s["stage_type"] == "open"][:2]
            out = asyncio.run(
                _http_ryw(
                    server.port,
                    tenant,
                    leads,
                    targets,
                    scale.ryw_iterations,
                    seconds=60 if not scale.quick else 15,
                )
            )
        after, plain = out["after_write"], out["plain"]
        assert isinstance(after, list) and isinstance(plain, list)
        say(
            f"  HTTP GET /crm/leads/{{id}} with X-Min-Position right after PATCH "
            f"({len(after)} samples, {out['stale']} stale, {out['wrong']} showing an old version):"
        )
        say(f"    {latency_line(after)}")
        say(f"  baseline: the same GET without X-Min-Position: {latency_line(plain)}")
        wait_p50 = ms(pct(after, 50)) - ms(pct(plain, 50))
        say(f"    => the read-your-writes wait adds ~{wait_p50:.2f} ms at p50")
        results.add(
            name,
            "HTTP GET after write p50",
            ms(pct(after, 50)),
            "ms",
            ratio=f"plain GET p50 {ms(pct(plain, 50)):.2f} ms",
        )
        results.add(
            name,
            "HTTP GET after write p95",
            ms(pct(after, 95)),
            "ms",
            ratio=f"plain GET p95 {ms(pct(plain, 95)):.2f} ms",
            bar="< 50 ms",
            meets=ms(pct(after, 95)) < 50,
            extra={"stale": out["stale"], "old_version": out["wrong"]},
        )

        _in_process(db, scale, results, name)


def _in_process(db: str, scale: Scale, results: Results, name: str) -> None:
    services = build_services(settings_for(db))
    services.start_projections()
    try:
        app: CrmApplication = services.app
        org = Organization.register(name="RYW in-process", owner_user_id=uuid4(), actor=ACTOR)
        pipeline = Pipeline.create_default(organization_id=org.id, actor=ACTOR)
        app.commit(org, pipeline)
        opens = [s.ref for s in pipeline.stages if s.stage_type is StageType.OPEN][:2]
        leads = [
            Lead.capture(
                organization_id=org.id,
                pipeline_id=pipeline.id,
                stage=opens[0],
                details={"full_name": f"Lead {i}"},
                assignee_id=None,
                actor=ACTOR,
            )
            for i in range(8)
        ]
        position = app.commit(*leads)
        names = [p.name for p in all_projectors()]
        if not services.wait_for(names, position, 10):
            raise RuntimeError("the projections did not catch up with the set-up")
        one, every, visible_fail = _waits(services, app, org.id, leads, opens, names, scale)
        say(
            f"  in-process: commit -> wait_for(['leads']) ({len(one)} samples, "
            f"{visible_fail} not visible): {latency_line(one)}"
        )
        say(f"  in-process: commit -> wait_for(all 4 projections): {latency_line(every)}")
        results.add(name, "in-process wait leads p50", ms(pct(one, 50)), "ms")
        results.add(
            name,
            "in-process wait leads p95",
            ms(pct(one, 95)),
            "ms",
            bar="< 50 ms",
            meets=ms(pct(one, 95)) < 50,
        )
        results.add(name, "in-process wait all 4 p95", ms(pct(every, 95)), "ms")

        runner = services.runner
        if runner is not None and hasattr(runner, "before_batch"):
            # what-if, not the shipped configuration: projector batches commit without
            # waiting for their WAL flush (the read model and its position stay atomic)
            def no_flush_wait(conn: Any) -> None:
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

            runner.before_batch = no_flush_wait
            one, every, _ = _waits(services, app, org.id, leads, opens, names, scale)
            say(
                f"  what-if: projector batches with synchronous_commit=off: wait leads "
                f"{latency_line(one)}; all 4 p95 {ms(pct(every, 95)):.2f} ms"
            )
            results.add(name, "what-if sync_commit=off: wait leads p95", ms(pct(one, 95)), "ms")
    finally:
        services.close()


def _waits(
    services: Any,
    app: CrmApplication,
    org_id: Any,
    leads: list[Lead],
    opens: list[Any],
    names: list[str],
    scale: Scale,
) -> tuple[list[float], list[float], int]:
    one: list[float] = []
    every: list[float] = []
    visible_fail = 0
    deadline = time.perf_counter() + (30 if not scale.quick else 8)
    for i in range(scale.ryw_iterations):
        if time.perf_counter() > deadline:
            break
        lead = leads[i % len(leads)]
        lead.move_to(opens[1] if lead.stage_id == opens[0].id else opens[0], actor=ACTOR)
        position = app.commit(lead)
        t0 = time.perf_counter()
        ok = services.wait_for(["leads"], position, 3.0)
        one.append(time.perf_counter() - t0)
        with services.engine.connect() as conn:
            if not ok or queries.get_lead(conn, org_id, lead.id).version != lead.version:
                visible_fail += 1
        services.wait_for(names, position, 3.0)
        every.append(time.perf_counter() - t0)
        time.sleep(0.005)
    return one, every, visible_fail
