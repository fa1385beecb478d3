"""(f) WhatsApp Cloud API traffic through a real `crm serve`: inbound webhooks, outbox, inbox.

1. Inbound ingestion: concurrent keep-alive connections POST signed Cloud-API payloads
   (X-Hub-Signature-256) to /webhooks/whatsapp/{org}, every message with its own wamid, senders
   drawn from a pool (seeded before the measure, so most hit existing conversations) and a few
   new numbers (each becomes a lead). One message per payload, then Meta-style batches of 10.
   Messages recorded/s are compared with raw INSERT+COMMIT/s measured in the same database
   (before and after the load; their mean).
2. Outbox delivery: K template messages queued through POST /crm/leads/{id}/messages; the
   organization's business_api `base_url` points at a GraphServer running in this process, which
   stamps when each message (by `biz_opaque_callback_data`, our message id) reaches it. Figures:
   deliveries/s from the first send to the last request the GraphServer receives, and the
   record (201 answered) → delivered (request received) latency, with a backlog and one at a time.
3. Inbox read-your-writes: after a webhook's 200, GET /crm/conversations with X-Min-Position
   (the head of the log, read from PostgreSQL: the webhook answer carries no position) until the
   message shows as the conversation's last one; compared with the same GET without the header.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

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
)
from bench.server import HttpConnection, Tenant, crm_server, register
from bench.writes import create_raw_table, events_per_transaction, head_position, raw_inserts
from tests.support.provider_servers import Answer, GraphServer, RecordedRequest
from tests.support.webhooks import PHONE_NUMBER_ID, meta_message, meta_payload, meta_signature

NAME = "f_webhooks"
APP_SECRET = "bench-app-secret"
GRAPH_TOKEN = "bench-graph-token"
MASTER_KEY = "bench-master-key-of-at-least-32-characters!!"
TEMPLATE = {"template_name": "bench_follow_up", "template_language": "en_US"}


@dataclass(frozen=True)
class Plan:
    """This benchmark's counts and durations (from `Scale`: --quick shrinks them)."""

    conns: int  # concurrent webhook connections
    senders: int  # the pool of known contacts
    new_share: float  # share of messages from a number never seen (a new lead each)
    batch: int  # messages per payload in the batched run
    warmup: float
    seconds: float
    send_conns: int
    sends: int  # K messages queued through the API with a backlog
    idle_sends: int  # one at a time: record → delivered without a queue
    delivery_timeout: float
    ryw_iterations: int
    ryw_seconds: float

    @staticmethod
    def of(scale: Scale) -> Plan:
        if scale.quick:
            return Plan(8, 100, 0.03, 10, 0.5, 2.5, 8, 100, 10, 40.0, 30, 10.0)
        return Plan(16, 300, 0.03, 10, 2.0, 12.0, 8, 500, 40, 180.0, 200, 45.0)


# --------------------------------------------------------------------------- payloads


def pool_number(i: int) -> str:
    return f"55119{10_000_000 + i:08d}"  # São Paulo mobiles, as WhatsApp sends them (no +)


def new_number(i: int) -> str:
    return f"55219{20_000_000 + i:08d}"  # Rio mobiles: never in the pool


class Inbound:
    """Signed Cloud-API payloads: distinct wamids, senders from the pool or (rarely) new."""

    def __init__(self, org_id: str, pool: list[str], new_share: float) -> None:
        self.path = f"/webhooks/whatsapp/{org_id}"
        self.pool = pool
        self.new_share = new_share
        self.rng = random.Random(20261125)
        self.run = uuid.uuid4().hex[:8]
        self.sequence = 0
        self.fresh = 0

    def wamid(self) -> str:
        self.sequence += 1
        return f"wamid.bench{self.run}{self.sequence:09d}"

    def sender(self) -> tuple[str, bool]:
        if self.rng.random() < self.new_share:
            self.fresh += 1
            return new_number(self.fresh), True
        return self.rng.choice(self.pool), False

    def signed(self, messages: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
        body = meta_payload(messages, name="Bench Contact")
        headers = meta_signature(APP_SECRET, body)
        headers.pop("Content-Type")  # HttpConnection sets it
        return body, headers

    def payload(self, size: int) -> tuple[bytes, dict[str, str], int]:
        """A payload of `size` messages, its headers and how many come from new numbers."""
        messages, new = [], 0
        now = int(time.time())
        for _ in range(size):
            sender, fresh = self.sender()
            new += fresh
            messages.append(meta_message(self.wamid(), sender, f"hello {self.sequence}", now))
        body, headers = self.signed(messages)
        return body, headers, new


@dataclass
class WebhookWorker:
    """One connection POSTing payloads of `size` messages back to back."""

    inbound: Inbound
    size: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    measuring: bool = False
    count: int = 0  # messages recorded while measuring
    payloads: int = 0
    new_leads: int = 0

    async def run(self, conn: HttpConnection, stop: Callable[[], bool]) -> None:
        while not stop():
            body, headers, new = self.inbound.payload(self.size)
            t0 = time.perf_counter()
            status, _, data = await conn.request("POST", self.inbound.path, headers, body)
            elapsed = time.perf_counter() - t0
            if status == 200:
                if self.measuring:
                    self.latencies.append(elapsed)
                    self.count += int(json.loads(data)["messages"])
                    self.payloads += 1
                    self.new_leads += new
            else:
                self.errors[status] = self.errors.get(status, 0) + 1
                if sum(self.errors.values()) > 50:
                    raise RuntimeError(f"too many webhook errors: {self.errors} {data[:300]!r}")


@dataclass
class Load:
    messages: int
    payloads: int
    new_leads: int
    seconds: float
    latencies: list[float]
    errors: dict[int, int]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


def drive(
    port: int, workers: list[WebhookWorker], *, warmup: float, seconds: float, meter: CpuMeter
) -> Load:
    """Every worker on its own connection: `warmup` unmeasured, then `seconds` measured."""

    async def main() -> Load:
        conns = [HttpConnection("127.0.0.1", port) for _ in workers]
        for c in conns:
            await c.open()
        phase = {"stop": False}
        tasks = [
            asyncio.create_task(w.run(c, lambda: phase["stop"]))
            for w, c in zip(workers, conns, strict=True)
        ]
        try:
            await _sleep_or_fail(warmup, tasks)
            meter.__enter__()
            t0 = time.perf_counter()
            for w in workers:
                w.measuring = True
            await _sleep_or_fail(seconds, tasks)
            for w in workers:
                w.measuring = False
            elapsed = time.perf_counter() - t0
            meter.__exit__(None, None, None)
            phase["stop"] = True
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        finally:
            for t in tasks:
                t.cancel()
            for c in conns:
                await c.close()
        errors: dict[int, int] = {}
        for w in workers:
            for k, v in w.errors.items():
                errors[k] = errors.get(k, 0) + v
        return Load(
            sum(w.count for w in workers),
            sum(w.payloads for w in workers),
            sum(w.new_leads for w in workers),
            elapsed,
            [x for w in workers for x in w.latencies],
            errors,
        )

    return asyncio.run(main())


async def _sleep_or_fail(seconds: float, tasks: list[asyncio.Task[None]]) -> None:
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for t in done:
        error = t.exception()
        if error is not None:
            raise error
        raise RuntimeError("a load worker stopped early")


def seed_pool(port: int, inbound: Inbound, conns: int) -> float:
    """One message from every pool number (a lead and a conversation each); return seconds."""

    async def main() -> None:
        todo = list(inbound.pool)

        async def one(conn: HttpConnection) -> None:
            while todo:
                sender = todo.pop()
                body, headers = inbound.signed(
                    [meta_message(inbound.wamid(), sender, "first contact", int(time.time()))]
                )
                status, _, data = await conn.request("POST", inbound.path, headers, body)
                if status != 200:
                    raise RuntimeError(f"seeding webhook answered {status}: {data[:300]!r}")

        pool = [HttpConnection("127.0.0.1", port) for _ in range(conns)]
        try:
            await asyncio.gather(*(one(c) for c in pool))
        finally:
            for c in pool:
                await c.close()

    t0 = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- Graph server


class TimedGraph(GraphServer):
    """A GraphServer noting when each of our messages (its idempotency key) first reached it."""

    def __init__(self) -> None:
        super().__init__(access_token=GRAPH_TOKEN)
        self.received: dict[str, float] = {}
        self.arrived = threading.Condition()

    def handle(self, request: RecordedRequest) -> Answer:
        now = time.perf_counter()
        body = request.json
        key = body.get("biz_opaque_callback_data") if isinstance(body, dict) else None
        if key:
            with self.arrived:
                self.received.setdefault(str(key), now)
                self.arrived.notify_all()
        return super().handle(request)

    def wait_for(self, keys: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not keys <= self.received.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True


# --------------------------------------------------------------------------- set-up


def set_up_whatsapp(client: httpx.Client, tenant: Tenant, graph_url: str) -> None:
    response = client.post(
        "/integrations/whatsapp/setup",
        headers=tenant.headers,
        json={
            "provider": "business_api",
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": GRAPH_TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": "bench-verify",
            "base_url": graph_url,
        },
    )
    response.raise_for_status()


def caught_up(client: httpx.Client, tenant: Tenant, db: str, timeout: float = 120) -> float:
    """Wait until the conversations projection passed the head of the log; return seconds."""
    head = head_position(db)
    t0 = time.perf_counter()
    while True:
        response = client.get(
            "/crm/conversations",
            headers=tenant.headers | {"X-Min-Position": str(head)},
            params={"limit": 1},
        )
        response.raise_for_status()
        if response.headers.get("x-stale") != "true":
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("the projections did not catch up with the webhook load")


def conversation_leads(client: httpx.Client, tenant: Tenant) -> list[str]:
    leads: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/crm/conversations", headers=tenant.headers, params=params)
        response.raise_for_status()
        page = response.json()
        leads += [item["lead_id"] for item in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return leads


# --------------------------------------------------------------------------- benchmark


def bench_webhooks(scale: Scale, results: Results) -> None:
    plan = Plan.of(scale)
    with scratch_db("crm_bench_f") as db:
        create_raw_table(db)
        say("  raw baseline: single-row INSERT+COMMIT, 1 connection (fsync as configured)")
        raw_rate, raw_lat = raw_inserts(db, seconds=scale.raw_seconds)
        say(f"    {fmt(raw_rate, 'rows/s')}; {latency_line(raw_lat)}")
        with TimedGraph() as graph, crm_server(db, CRM_MASTER_KEY=MASTER_KEY) as server:
            with httpx.Client(base_url=server.base, timeout=60) as client:
                tenant = register(client, "Bench WhatsApp org")
                set_up_whatsapp(client, tenant, graph.url)
            inbound = Inbound(
                tenant.organization_id,
                [pool_number(i) for i in range(plan.senders)],
                plan.new_share,
            )
            seconds = seed_pool(server.port, inbound, plan.conns)
            say(
                f"  set-up: business_api -> GraphServer {graph.url}; {plan.senders} contacts "
                f"seeded by webhook (a lead + a conversation each) in {seconds:.1f} s"
            )
            raw_rate = _ingestion(db, server, inbound, plan, results, raw_rate)
            with httpx.Client(base_url=server.base, timeout=60) as client:
                lag = caught_up(client, tenant, db)
                say(f"  projections caught up with the webhook load {lag:.1f} s after it")
                leads = conversation_leads(client, tenant)
            _outbox(server.port, tenant, leads, graph, plan, results)
            _inbox_ryw(db, server.port, tenant, inbound, plan, results)


def _ingestion(
    db: str, server: Any, inbound: Inbound, plan: Plan, results: Results, raw_rate: float
) -> float:
    runs: list[tuple[int, Load, CpuMeter, int, int]] = []
    for size in (1, plan.batch):
        say(
            f"  inbound: POST /webhooks/whatsapp/{{org}}, {plan.conns} keep-alive connections, "
            f"{size} message(s) per signed payload, {plan.senders} known senders "
            f"+ {plan.new_share:.0%} new numbers"
        )
        before = head_position(db)
        meter = CpuMeter(server.pid)
        workers = [WebhookWorker(inbound, size) for _ in range(plan.conns)]
        load = drive(server.port, workers, warmup=plan.warmup, seconds=plan.seconds, meter=meter)
        events, txns = events_per_transaction(db, before)
        runs.append((size, load, meter, events, txns))
    raw_after, _ = raw_inserts(db, seconds=max(1.0, plan.warmup))
    say(
        f"    raw INSERT+COMMIT again after the load: {fmt(raw_after, 'rows/s')} "
        f"(before: {fmt(raw_rate, 'rows/s')}); ratios use their mean"
    )
    raw_rate = (raw_rate + raw_after) / 2
    results.add(NAME, "raw INSERT+COMMIT, 1 conn (mean)", raw_rate, "rows/s", ratio="baseline")
    for size, load, meter, events, txns in runs:
        label = f"webhook {size} msg/payload, {plan.conns} conns"
        ratio = load.rate / raw_rate
        per_txn = events / txns if txns else float("nan")
        say(
            f"  {label}: {fmt(load.rate, 'messages/s')} = {ratio:.0%} of raw insert/s "
            f"({load.messages} messages in {load.payloads} payloads, {load.new_leads} from new "
            f"numbers, {load.seconds:.1f} s, errors {load.errors or 'none'})"
        )
        say(f"    per payload: {latency_line(load.latencies)}")
        say(
            f"    {per_txn:.1f} events per insert transaction; "
            + meter.describe(load.messages, "message")
        )
        results.add(
            NAME,
            label,
            load.rate,
            "messages/s",
            ratio=f"{ratio:.0%} of raw insert/s",
            extra={
                "payloads": load.payloads,
                "new_leads": load.new_leads,
                "errors": load.errors,
                "events_per_txn": per_txn,
                "raw_rows_per_s_mean": raw_rate,
                **meter.as_dict(load.messages),
            },
        )
        results.add(NAME, f"{label} p50", ms(pct(load.latencies, 50)), "ms/payload")
        results.add(NAME, f"{label} p95", ms(pct(load.latencies, 95)), "ms/payload")
    return raw_rate


def _outbox(
    port: int, tenant: Tenant, leads: list[str], graph: TimedGraph, plan: Plan, results: Results
) -> None:
    conns = min(plan.send_conns, len(leads))
    say(
        f"  outbox: {plan.sends} templates via POST /crm/leads/{{id}}/messages over {conns} "
        f"connections (each its own {len(leads) // conns} leads) -> outbox in the server -> "
        "GraphServer"
    )
    sent: dict[str, float] = {}  # message id -> when the 201 arrived
    post_latencies: list[float] = []
    body = json.dumps(TEMPLATE).encode()

    async def sender(conn: HttpConnection, mine: list[str], n: int) -> None:
        for i in range(n):
            t0 = time.perf_counter()
            status, _, data = await conn.request(
                "POST", f"/crm/leads/{mine[i % len(mine)]}/messages", tenant.headers, body
            )
            t1 = time.perf_counter()
            if status != 201:
                raise RuntimeError(f"send answered {status}: {data[:300]!r}")
            sent[json.loads(data)["message_id"]] = t1
            post_latencies.append(t1 - t0)

    async def burst() -> float:
        pool = [HttpConnection("127.0.0.1", port) for _ in range(conns)]
        shares = [leads[k::conns] for k in range(conns)]
        counts = [plan.sends // conns + (k < plan.sends % conns) for k in range(conns)]
        for c in pool:
            await c.open()
        try:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(sender(c, s, n) for c, s, n in zip(pool, shares, counts, strict=True))
            )
            return t0
        finally:
            for c in pool:
                await c.close()

    graph.clear()
    first = asyncio.run(burst())
    posted = max(sent.values())
    delivered = graph.wait_for(set(sent), plan.delivery_timeout)
    got = {k: graph.received[k] for k in sent if k in graph.received}
    if not got:
        raise RuntimeError("the GraphServer received none of the sends")
    last = max(got.values())
    rate = len(got) / (last - first)
    drain = len(got) / (last - min(got.values())) if len(got) > 1 else float("nan")
    lat = [got[k] - sent[k] for k in got]
    say(
        f"    sends accepted: {fmt(len(sent) / (posted - first), 'sends/s')} "
        f"(POST {latency_line(post_latencies)})"
    )
    say(
        f"    delivered {len(got)}/{len(sent)}{'' if delivered else ' (TIMED OUT)'} in "
        f"{last - first:.2f} s from the first send: {fmt(rate, 'deliveries/s')}; "
        f"first to last delivery {fmt(drain, 'deliveries/s')}; "
        f"graph saw {len(graph.requests)} requests"
    )
    say(f"    record -> delivered, with a backlog: {latency_line(lat)}")
    results.add(
        NAME,
        f"outbox {plan.sends} sends, first send -> last delivery",
        rate,
        "deliveries/s",
        ratio=f"sends accepted {fmt(len(sent) / (posted - first))}/s",
        extra={"delivered": len(got), "queued": len(sent), "drain_per_s": drain},
    )
    results.add(NAME, "outbox record->delivered p50 (backlog)", ms(pct(lat, 50)), "ms")
    results.add(NAME, "outbox record->delivered p95 (backlog)", ms(pct(lat, 95)), "ms")

    async def one_at_a_time() -> list[float]:
        conn = HttpConnection("127.0.0.1", port)
        out: list[float] = []
        try:
            for i in range(plan.idle_sends):
                status, _, data = await conn.request(
                    "POST", f"/crm/leads/{leads[i % len(leads)]}/messages", tenant.headers, body
                )
                t1 = time.perf_counter()
                if status != 201:
                    raise RuntimeError(f"send answered {status}: {data[:300]!r}")
                key = json.loads(data)["message_id"]
                deadline = t1 + 10
                while key not in graph.received and time.perf_counter() < deadline:
                    await asyncio.sleep(0.0005)
                if key in graph.received:
                    out.append(graph.received[key] - t1)
                await asyncio.sleep(0.02)  # the outbox goes idle again
        finally:
            await conn.close()
        return out

    idle = asyncio.run(one_at_a_time())
    say(f"    record -> delivered, one at a time ({len(idle)} sends): {latency_line(idle)}")
    results.add(NAME, "outbox record->delivered p50 (idle)", ms(pct(idle, 50)), "ms")
    results.add(NAME, "outbox record->delivered p95 (idle)", ms(pct(idle, 95)), "ms")


def _inbox_ryw(
    db: str, port: int, tenant: Tenant, inbound: Inbound, plan: Plan, results: Results
) -> None:
    senders = inbound.pool[:20]

    async def main() -> dict[str, Any]:
        conn = HttpConnection("127.0.0.1", port)
        after: list[float] = []
        plain: list[float] = []
        lookups: list[float] = []
        stale = retried = 0
        deadline = time.perf_counter() + plan.ryw_seconds
        path = "/crm/conversations?limit=50"
        try:
            with psycopg.connect(dsn(db), autocommit=True) as pg:
                for i in range(plan.ryw_iterations):
                    if time.perf_counter() > deadline:
                        break
                    text = f"ryw {inbound.run} {i}"
                    sender = senders[i % len(senders)]
                    message = meta_message(inbound.wamid(), sender, text, int(time.time()))
                    body, headers = inbound.signed([message])
                    status, _, data = await conn.request("POST", inbound.path, headers, body)
                    t0 = time.perf_counter()
                    if status != 200:
                        raise RuntimeError(f"webhook answered {status}: {data[:300]!r}")
                    row = pg.execute("SELECT max(notification_id) FROM crm_events").fetchone()
                    head = int(row[0]) if row else 0
                    lookups.append(time.perf_counter() - t0)
                    read = tenant.headers | {"X-Min-Position": str(head)}
                    tries = 0
                    while True:
                        tries += 1
                        status, response_headers, data = await conn.request("GET", path, read)
                        if status != 200:
                            raise RuntimeError(f"GET answered {status}: {data[:300]!r}")
                        if response_headers.get("x-stale") == "true":
                            stale += 1
                        items = json.loads(data)["items"]
                        if any(it["last_message_preview"] == text for it in items):
                            break
                        if time.perf_counter() - t0 > 10:
                            raise RuntimeError(f"message {text!r} not in the inbox after 10 s")
                    after.append(time.perf_counter() - t0)
                    retried += tries > 1
                    await asyncio.sleep(0.005)  # the projector goes idle: a cold wait each time
                    t1 = time.perf_counter()
                    status, _, data = await conn.request("GET", path, tenant.headers)
                    plain.append(time.perf_counter() - t1)
        finally:
            await conn.close()
        return {
            "after": after,
            "plain": plain,
            "lookups": lookups,
            "stale": stale,
            "retried": retried,
        }

    out = asyncio.run(main())
    after, plain, lookups = out["after"], out["plain"], out["lookups"]
    say(
        f"  inbox read-your-writes: webhook 200 -> message visible in GET /crm/conversations "
        f"with X-Min-Position ({len(after)} samples, {out['stale']} stale answers, "
        f"{out['retried']} needed a second GET):"
    )
    say(f"    {latency_line(after)}")
    say(f"    of which reading the log's head from PostgreSQL: {latency_line(lookups)}")
    say(f"  baseline: the same GET without X-Min-Position: {latency_line(plain)}")
    results.add(
        NAME,
        "inbox visible after webhook p50",
        ms(pct(after, 50)),
        "ms",
        ratio=f"plain GET p50 {ms(pct(plain, 50)):.2f} ms",
    )
    results.add(
        NAME,
        "inbox visible after webhook p95",
        ms(pct(after, 95)),
        "ms",
        ratio=f"plain GET p95 {ms(pct(plain, 95)):.2f} ms",
        extra={"stale": out["stale"], "retried": out["retried"]},
    )
