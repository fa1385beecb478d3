"""The oracle: random histories through the real handlers, then every analytics answer must equal
a naive recomputation from the raw event log of each organization — exactly, on both backends.

A history starts ~60 days ago on a fake event clock that moves forward before each command (by
seconds to days, sometimes to exactly a local midnight or a microsecond before one) and never
passes the real now, so facts fall on many local days, ISO weeks and months; the periods asked
for start and end inside the history. The real clock is back before anything is asked.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from application.context import Ctx
from application.leads import commands as cmds
from domain.call import Call
from domain.conversation import Conversation
from domain.errors import DomainError
from domain.values import Actor, Role
from tests.support.api import (
    Tenant,
    add_member,
    cheap_hashing,  # noqa: F401 - a fixture, used by pytestmark
    register,
)
from tests.support.clock import FakeClock, event_clock

pytestmark = pytest.mark.usefixtures("cheap_hashing")
ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"]
SOURCES = [None, "web", "referral", "ads"]
VALUES = [None, "0", "100.50", "2500", "99999.99"]
OPS = ["capture", "capture", "move", "move", "assign", "win", "lose", "reopen", "archive"]
OPS += ["note", "details", "timezone", "receive", "receive", "send", "send", "call"]
OPS += ["probability"]
#: a stage's win probability setting, by stage type (null: derived from its place)
CHANCES = {"open": [None, 0, 35, 90, 100], "won": [None, 100], "lost": [None, 0]}
PROVIDERS = ["business_api", "waha"]
OUTCOMES = ["completed", "no_answer", "busy"]
PHONE = "+5511987654321"
HISTORY_DAYS = 60
HOUR_US = 3_600_000_000
OWN = "own"

command = st.tuples(
    st.sampled_from(OPS),
    st.integers(0, 1),  # organization
    st.integers(0, 5),  # lead (by capture order)
    st.integers(0, 9),  # a stage, member, source or value, as the command needs
    st.integers(0, 9),
)


@dataclass(frozen=True)
class Tick:
    """The clock's move before a command: by `hours` and `micros`, then, for a `zone`, on to that
    zone's next local midnight (or, `early`, to the microsecond before it): bucket edges get hit.
    `OWN` is the zone the command's organization has then, the likeliest to be its last one.
    """

    hours: int
    micros: int = 0
    zone: str | None = None
    early: bool = False

    def apply(self, clock: FakeClock, own: str) -> datetime:
        clock.advance(timedelta(hours=self.hours, microseconds=self.micros))
        if self.zone is not None:
            local = clock.now.astimezone(ZoneInfo(own if self.zone == OWN else self.zone))
            midnight = datetime.combine(local.date() + timedelta(days=1), time(), local.tzinfo)
            clock.move_to(midnight - timedelta(microseconds=1 if self.early else 0))
        return clock.now


# whole hours drawn apart from the rest: Hypothesis favours small numbers in a wide range, and
# histories are meant to spread over the ~60 days, not to pile up on their first day
tick = st.one_of(
    st.builds(Tick, st.integers(0, 72), st.integers(0, HOUR_US - 1)),  # 0 s … 3 days
    st.builds(Tick, st.just(0), st.integers(0, HOUR_US - 1)),  # a burst within the hour
    st.builds(Tick, st.integers(0, 24), st.just(0), st.sampled_from([OWN, *ZONES]), st.booleans()),
    st.builds(Tick, st.integers(72, 240), st.integers(0, HOUR_US - 1)),  # 3 … 10 days
)


class Org:
    def __init__(self, client: TestClient[Any], services: Any) -> None:
        self.admin = register(client)
        self.members = [self.admin, add_member(services, self.admin, "sales")]
        self.id = UUID(self.admin.organization_id)
        self.leads: list[UUID] = []
        self.stages = [UUID(s["id"]) for s in self.admin.stages()]
        self.conversations: dict[UUID, UUID] = {}
        self.zone = "UTC"  # a new organization's

    def ctx(self, who: int) -> Ctx:
        member = self.members[who % len(self.members)]
        user = UUID(member.user_id)
        return Ctx(self.id, user, Role.ADMIN, Actor("user", str(user)))


def run(services: Any, org: Org, op: str, lead_no: int, a: int, b: int, now: datetime) -> None:
    """One command at `now`, the fake clock's time, which also stamps its events."""
    app, ctx = services.app, org.ctx(b)
    if op == "timezone":
        response = org.admin.put("/organizations/current", json={"timezone": ZONES[a % 4]})
        assert response.status_code == 200, response.text
        org.zone = ZONES[a % 4]
        return
    if op == "probability":
        stage = org.admin.stages()[a % 6]
        choices = CHANCES[stage["stage_type"]]
        body = {"win_probability": choices[b % len(choices)]}
        response = org.admin.put(f"/crm/pipeline/stages/{stage['id']}", json=body)
        assert response.status_code == 200, response.text
        return
    if op == "capture":
        assignee = None if a % 3 == 0 else UUID(org.members[a % 2].user_id)
        cmd = cmds.CaptureLead(
            full_name="Lead",
            source=SOURCES[a % 4],
            estimated_value=None if VALUES[b % 5] is None else Decimal(VALUES[b % 5]),
            stage_id=org.stages[b % 4],
            assigned_to=assignee,
        )
        org.leads.append(cmds.capture_lead(app, cmd, ctx).id)
        return
    if not org.leads:
        return
    lead = org.leads[lead_no % len(org.leads)]
    if op in ("receive", "send", "call"):
        talk(app, org, ctx, op, lead, a, b, now)
        return
    actions = {
        "move": lambda: cmds.move_lead_to_stage(app, lead, org.stages[a % 6], None, ctx),
        "assign": lambda: cmds.assign_lead(
            app, lead, None if a % 3 == 0 else UUID(org.members[a % 2].user_id), ctx
        ),
        "win": lambda: cmds.win_lead(app, lead, ctx),
        "lose": lambda: cmds.lose_lead(app, lead, None, ctx),
        "reopen": lambda: cmds.reopen_lead(app, lead, None, ctx),
        "archive": lambda: cmds.archive_lead(app, lead, ctx),
        "note": lambda: cmds.add_note(app, lead, "hello", ctx),
        "details": lambda: cmds.change_lead_details(
            app,
            lead,
            cmds.ChangeLeadDetails(
                source=SOURCES[a % 4],
                estimated_value=None if VALUES[b % 5] is None else Decimal(VALUES[b % 5]),
            ),
            ctx,
        ),
    }
    with suppress(DomainError):  # refused by the aggregate (closed, archived…): nothing recorded
        actions[op]()


def talk(app: Any, org: Org, ctx: Ctx, op: str, lead: UUID, a: int, b: int, now: datetime) -> None:
    """Messages and calls, recorded on the aggregates as the webhooks and the outbox do."""
    provider = Actor(kind="provider", id=PROVIDERS[a % 2])
    if op == "call":
        outbound = a % 2 == 0
        call = Call.start(
            organization_id=org.id,
            lead_id=lead,
            direction="outbound" if outbound else "inbound",
            provider_type="twilio",
            from_number=PHONE,
            to_number="+14155552671",
            actor=ctx.actor if outbound else provider,
        )
        if b % 3:
            call.progress("answered", actor=provider)
        if b % 4:
            call.end(duration_seconds=b * 7, outcome=OUTCOMES[b % 3], actor=provider)
        app.commit(call)
        return
    cid = org.conversations.get(lead)
    if cid is None:
        chat = Conversation.start(
            organization_id=org.id, lead_id=lead, channel="whatsapp", contact=PHONE, actor=ctx.actor
        )
        org.conversations[lead] = chat.id
    else:
        chat = app.load(Conversation, cid, org.id)
    if op == "receive":
        chat.receive(
            provider_message_id=str(uuid4()),
            provider_type=PROVIDERS[a % 2],
            text="hi",
            sent_at=now,
            actor=provider,
        )
    else:
        chat.send(
            provider_type=PROVIDERS[b % 2],
            now=now,
            text="hello",
            window=False,
            actor=ctx.actor,
        )
    app.commit(chat)


# ---------------------------------------------------------------- the oracle


def events_of(services: Any, org: UUID) -> list[Any]:
    notifications = services.app.recorder.select_organization_notifications(org, limit=100_000)
    return [services.app.mapper.to_domain_event(n) for n in notifications]


def micros(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def to_cents(value: Any) -> int:
    return 0 if value is None else int(Decimal(value) * 100)


def amount(cents: int) -> str:
    """Cents as the API writes every amount: a decimal string in the lead's unit."""
    return f"{cents // 100}.{cents % 100:02d}"


def rate(a: int, b: int) -> float | None:
    return None if b == 0 else round(a / b, 4)


def mean(a: int, b: int) -> float | None:
    return None if b == 0 else round(a / b, 3)


def start_of(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if granularity == "month" else day


def current_closings(events: list[Any]) -> set[tuple[UUID, int]]:
    """Each lead's standing Won or Lost event (lead, version): its latest one, unless reopened."""
    closing: dict[UUID, int] = {}
    for e in events:
        name = type(e).__qualname__
        if name in ("Lead.Won", "Lead.Lost"):
            closing[e.originator_id] = e.originator_version
        elif name == "Lead.Reopened":
            closing.pop(e.originator_id, None)
    return set(closing.items())


class Replay:
    """The organization's history, read naively from its events. Closing facts are only each
    lead's current closing (a closed lead counts once, in the period of its latest closing)."""

    def __init__(self, events: list[Any], start: date, end: date) -> None:
        zone = "UTC"
        for e in events:
            if type(e).__qualname__ == "Organization.TimezoneChanged":
                zone = e.timezone
        standing = current_closings(events)
        self.zone = ZoneInfo(zone)
        self.stages: list[dict[str, Any]] = []
        self.chances: dict[UUID, int | None] = {}
        self.leads: dict[UUID, dict[str, Any]] = {}
        self.threads: dict[UUID, dict[str, Any]] = {}
        self.facts: list[tuple[str, date, dict[str, Any]]] = []
        for e in events:
            name = type(e).__qualname__
            if name == "Pipeline.Created":
                self.stages = [dict(s) for s in e.stages]
            if name == "Pipeline.StageWinProbabilitySet":
                self.chances[e.stage_id] = e.win_probability
            day = e.timestamp.astimezone(self.zone).date()
            known = self.leads.get(e.originator_id) or self.threads.get(e.originator_id)
            before = dict(known or {})
            self.apply(name, e)
            self.talk(name, e)
            superseded = name in ("Lead.Won", "Lead.Lost") and (
                (e.originator_id, e.originator_version) not in standing
            )
            if start <= day <= end and not superseded:
                self.facts.append((name, day, {"e": e, "before": before}))

    def apply(self, name: str, e: Any) -> None:
        t = micros(e.timestamp)
        if name == "Lead.Captured":
            self.leads[e.originator_id] = {
                "stage": e.stage_id,
                "entered": t,
                "captured": t,
                "value": to_cents(e.estimated_value),
                "source": e.source,
                "assignee": e.assignee_id,
                "archived": False,
            }
            return
        lead = self.leads.get(e.originator_id)
        if lead is None:
            return
        if name == "Lead.MovedToStage":
            lead.update(stage=e.to_stage_id, entered=t)
        elif name == "Lead.DetailsChanged":
            if "source" in e.changes:
                lead["source"] = e.changes["source"]
            if "estimated_value" in e.changes:
                lead["value"] = to_cents(e.changes["estimated_value"])
        elif name == "Lead.Assigned":
            lead["assignee"] = e.to_user_id
        elif name == "Lead.Archived":
            lead["archived"] = True

    def talk(self, name: str, e: Any) -> None:
        if name == "Conversation.Started":
            self.threads[e.originator_id] = {"channel": e.channel, "waiting": None}
        elif name == "Call.Started":
            placer = user_of(e.actor) if e.direction == "outbound" else None
            self.threads[e.originator_id] = {"direction": e.direction, "placer": placer}
        elif name == "Conversation.MessageReceived":
            thread = self.threads[e.originator_id]
            if thread["waiting"] is None:
                thread["waiting"] = micros(e.timestamp)
        elif name == "Conversation.MessageSent":
            self.threads[e.originator_id]["waiting"] = None


def user_of(actor: Actor) -> UUID | None:
    try:
        return UUID(actor.id) if actor.kind == "user" else None
    except ValueError:  # a user actor without an id, e.g. "test" in tests.support.api
        return None


def middle(values: list[int]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return float(v[n // 2]) if n % 2 == 1 else (v[n // 2 - 1] + v[n // 2]) / 2


def p90(values: list[int]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    rank = -(-90 * len(v) // 100)  # ceil
    return float(v[max(rank, 1) - 1])


def expected_team(r: Replay, start: date, end: date) -> dict[str, Any]:
    rows: dict[UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    responses: dict[UUID, list[int]] = defaultdict(list)
    for name, _, f in r.facts:
        e, before = f["e"], f["before"]
        who = user_of(e.actor)
        if name == "Lead.Captured" and e.assignee_id is not None:
            rows[e.assignee_id]["leads_assigned"] += 1
        elif name == "Lead.Assigned" and e.to_user_id is not None:
            rows[e.to_user_id]["leads_assigned"] += 1
        elif name == "Lead.MovedToStage" and who:
            rows[who]["stage_moves"] += 1
        elif name == "Lead.NoteAdded" and who:
            rows[who]["notes"] += 1
        elif name in ("Lead.Won", "Lead.Lost") and before["assignee"] is not None:
            rows[before["assignee"]][name[5:].lower()] += 1
            rows[before["assignee"]]["won_value"] += to_cents(getattr(e, "value", None))
        elif name == "Conversation.MessageSent" and who:
            rows[who]["messages_sent"] += 1
            if before["waiting"] is not None:
                responses[who].append((micros(e.timestamp) - before["waiting"]) // 1_000_000)
        elif name == "Call.Started" and e.direction == "outbound" and who:
            rows[who]["calls_placed"] += 1
        elif name == "Call.Progressed" and e.status == "answered" and before["placer"]:
            rows[before["placer"]]["calls_answered"] += 1
        elif name == "Call.Ended" and before["placer"]:
            rows[before["placer"]]["talk_seconds"] += e.duration_seconds
    members = []
    for m in sorted(set(rows) | set(responses), key=str):
        v = rows[m]
        members.append(
            {
                "member_id": str(m),
                "leads_assigned": v["leads_assigned"],
                "stage_moves": v["stage_moves"],
                "notes": v["notes"],
                "won": v["won"],
                "won_value": amount(v["won_value"]),
                "lost": v["lost"],
                "win_rate": rate(v["won"], v["won"] + v["lost"]),
                "messages_sent": v["messages_sent"],
                "calls_placed": v["calls_placed"],
                "calls_answered": v["calls_answered"],
                "talk_seconds": v["talk_seconds"],
                "median_first_response_seconds": middle(responses[m]),
                # no SLA is set in these histories (see tests/projections/test_sla_figures.py)
                "sla_first_responses_in_time": 0,
                "sla_breaches": 0,
                "sla_compliance_rate": None,
            }
        )
    return {"from": str(start), "to": str(end), "members": members}


def expected_communication(
    r: Replay, start: date, end: date, g: str, hours: int, as_of: str
) -> dict[str, Any]:
    now = micros(datetime.fromisoformat(as_of.replace("Z", "+00:00")))
    messages: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    outcomes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    calls = {"outbound": 0, "inbound": 0, "answered": 0}
    times = []
    for name, day, f in r.facts:
        e, before = f["e"], f["before"]
        if name in ("Conversation.MessageReceived", "Conversation.MessageSent"):
            point = messages[(str(start_of(day, g)), before["channel"], e.provider_type)]
            point[0 if name.endswith("Received") else 1] += 1
            if name.endswith("Sent") and before["waiting"] is not None:
                times.append((micros(e.timestamp) - before["waiting"]) // 1_000_000)
        elif name == "Call.Started":
            calls[e.direction] += 1
        elif name == "Call.Progressed" and e.status == "answered":
            calls["answered"] += 1
        elif name == "Call.Ended":
            outcomes[e.outcome][0] += 1
            outcomes[e.outcome][1] += e.duration_seconds
    waiting = [
        t
        for t in r.threads.values()
        if t.get("waiting") is not None and t["waiting"] <= now - hours * 3_600_000_000
    ]
    return {
        "from": str(start),
        "to": str(end),
        "granularity": g,
        "as_of": as_of,
        "waiting_hours": hours,
        "messages": [
            {"period": p, "channel": c, "provider": v, "messages_in": n[0], "messages_out": n[1]}
            for (p, c, v), n in sorted(messages.items())
        ],
        "calls": [
            {
                "outcome": o,
                "calls": n,
                "duration_seconds": d,
                "average_duration_seconds": mean(d, n),
            }
            for o, (n, d) in sorted(outcomes.items())
        ],
        "calls_placed": calls["outbound"],
        "calls_received": calls["inbound"],
        "calls_answered": calls["answered"],
        "first_responses": len(times),
        "median_first_response_seconds": middle(times),
        "p90_first_response_seconds": p90(times),
        "waiting_for_reply": len(waiting),
    }


def expected_pipeline(r: Replay, start: date, end: date, g: str, as_of: str) -> dict[str, Any]:
    now = micros(datetime.fromisoformat(as_of.replace("Z", "+00:00")))
    kinds = [(UUID(str(s["id"])), str(s["stage_type"])) for s in r.stages]
    opened = [s for s, k in kinds if k == "open"]
    chance = {s: 100 if k == "won" else 0 for s, k in kinds}
    chance |= {s: 100 * (i + 1) // (len(opened) + 1) for i, s in enumerate(opened)}
    chance |= {s: p for s, p in r.chances.items() if p is not None}
    entered: dict[UUID, int] = defaultdict(int)
    exits: dict[UUID, list[int]] = defaultdict(lambda: [0, 0])
    moves: dict[tuple[str, str], int] = defaultdict(int)
    won = lost = won_value = cycle = 0
    series: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for name, day, f in r.facts:
        e, before, point = f["e"], f["before"], start_of(day, g)
        t = micros(e.timestamp)
        if name == "Lead.Captured":
            entered[e.stage_id] += 1
            series[point][0] += 1
        elif name == "Lead.MovedToStage":
            entered[e.to_stage_id] += 1
            exits[e.from_stage_id][0] += 1
            exits[e.from_stage_id][1] += (t - before["entered"]) // 1_000_000
            moves[(str(e.from_stage_id), str(e.to_stage_id))] += 1
        elif name == "Lead.Won":
            won += 1
            won_value += to_cents(e.value)
            cycle += (t - before["captured"]) // 1_000_000
            series[point][1] += 1
            series[point][3] += to_cents(e.value)
        elif name == "Lead.Lost":
            lost += 1
            series[point][2] += 1
    stages = []
    for i, (stage, kind) in enumerate(kinds):
        here = [x for x in r.leads.values() if x["stage"] == stage and not x["archived"]]
        value = sum(x["value"] for x in here)
        age = sum(now // 1_000_000 - x["entered"] // 1_000_000 for x in here)  # whole seconds
        later = [s for s, k in kinds[i + 1 :] if k != "lost"]
        nxt = later[0] if kind == "open" and later else None
        stages.append(
            {
                "stage_id": str(stage),
                "name": r.stages[i]["name"],
                "stage_type": kind,
                "position": i,
                "win_probability": chance[stage],
                "count": len(here),
                "total_value": amount(value),
                "weighted_value": amount(value * chance[stage] // 100),
                "average_age_seconds": mean(age, len(here)),
                "entered": entered[stage],
                "conversion_to_next": None if nxt is None else rate(entered[nxt], entered[stage]),
                "exits": exits[stage][0],
                "average_time_in_stage_seconds": mean(exits[stage][1], exits[stage][0]),
            }
        )
    return {
        "from": str(start),
        "to": str(end),
        "granularity": g,
        "as_of": as_of,
        "stages": stages,
        "transitions": [
            {"from_stage_id": a, "to_stage_id": b, "count": n}
            for (a, b), n in sorted(moves.items())
        ],
        "won": won,
        "lost": lost,
        "win_rate": rate(won, won + lost),
        "won_value": amount(won_value),
        "average_sales_cycle_seconds": mean(cycle, won),
        "series": [
            {
                "period": str(p),
                "created": v[0],
                "won": v[1],
                "lost": v[2],
                "won_value": amount(v[3]),
            }
            for p, v in sorted(series.items())
        ],
    }


def expected_leads(r: Replay, start: date, end: date, g: str, by: str) -> dict[str, Any]:
    series: dict[tuple[date, str | None], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    groups: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    totals = [0, 0, 0, 0]
    for name, day, f in r.facts:
        e, before = f["e"], f["before"]
        if name not in ("Lead.Captured", "Lead.Won", "Lead.Lost"):
            continue
        if name == "Lead.Captured":
            i, group = 0, {"source": e.source, "assignee": e.assignee_id, "stage": e.stage_id}[by]
        else:
            i = 1 if name == "Lead.Won" else 2
            group = {"source": before["source"], "assignee": before["assignee"]}.get(by, e.stage_id)
        key = None if group is None else str(group)
        value = to_cents(e.value) if name == "Lead.Won" else 0
        for acc in (series[(start_of(day, g), key)], groups[key], totals):
            acc[i] += 1
            acc[3] += value

    def figures(v: list[int]) -> dict[str, Any]:
        return {
            "new": v[0],
            "won": v[1],
            "lost": v[2],
            "won_value": amount(v[3]),
            "conversion_rate": rate(v[1], v[0]),
            "win_rate": rate(v[1], v[1] + v[2]),
        }

    return {
        "from": str(start),
        "to": str(end),
        "granularity": g,
        "group_by": by,
        "totals": figures(totals),
        "groups": [
            {"group": k} | figures(v) for k, v in sorted(groups.items(), key=lambda i: i[0] or "")
        ],
        "series": [
            {"period": str(p), "group": k, "new": v[0], "won": v[1], "lost": v[2]}
            | {"won_value": amount(v[3])}
            for (p, k), v in sorted(series.items(), key=lambda i: (i[0][0], i[0][1] or ""))
        ],
    }


Around = tuple[int, int] | None


def period(
    today: date, g: str | None, ago: int | None, span: int | None, around: Around, days: list[date]
) -> tuple[date, date, str, dict[str, str]]:
    """The period asked for, as the handlers resolve it, and the query parameters asking it.

    `around` picks `from` and `to` among the local days that have events (a period edge on a
    busy day is where an off-by-a-zone or off-by-one shows); else `to` is `ago` days before
    today and `from` `span` days before `to`, None leaving the parameter out.
    """
    if around is not None and days:
        start, end = sorted((days[around[0] % len(days)], days[around[1] % len(days)]))
        params = {"from": str(start), "to": str(end)} | ({} if g is None else {"granularity": g})
        return start, end, g or "day", params
    end = today if ago is None else today - timedelta(days=ago)
    start = end - timedelta(days=29 if span is None else span)
    params = {} if g is None else {"granularity": g}
    params |= {} if ago is None else {"to": str(end)}
    params |= {} if span is None else {"from": str(start)}
    return start, end, g or "day", params


def check(
    services: Any, org: Org, grain: str | None, ago: int | None, span: int | None, around: Around
) -> None:
    admin: Tenant = org.admin
    admin.position = services.app.recorder.max_notification_id()
    events = events_of(services, org.id)
    zone = "UTC"
    for e in events:
        zone = getattr(e, "timezone", zone) if hasattr(e, "previous_timezone") else zone
    today = datetime.now(ZoneInfo(zone)).date()
    days = sorted({e.timestamp.astimezone(ZoneInfo(zone)).date() for e in events})
    start, end, g, params = period(today, grain, ago, span, around, days)
    replay = Replay(events, start, end)
    got = admin.get("/analytics/pipeline", params=params).json()
    assert got == expected_pipeline(replay, start, end, g, got["as_of"])
    for by in ("source", "assignee", "stage"):
        got = admin.get("/analytics/leads", params=params | {"group_by": by}).json()
        assert got == expected_leads(replay, start, end, g, by)
    assert admin.get("/analytics/team", params=params).json() == expected_team(replay, start, end)
    for hours in (1, 24):
        got = admin.get("/analytics/communication", params=params | {"waiting_hours": hours}).json()
        assert got == expected_communication(replay, start, end, g, hours, got["as_of"])
    check_custom_reports(admin, replay, start, end, g, params)


def check_custom_reports(
    admin: Tenant, r: Replay, start: date, end: date, g: str, body: dict[str, str]
) -> None:
    """The custom report's whitelisted measures agree with the oracle's figures."""
    leads = expected_leads(r, start, end, g, "source")
    asked = body | {
        "measures": ["leads_created", "leads_won", "leads_lost", "won_value"],
        "dimensions": ["period", "source"],
    }
    got = admin.post("/analytics/custom-report", json=asked).json()
    assert got["rows"] == [
        {"period": p["period"], "source": p["group"], "leads_created": p["new"]}
        | {"leads_won": p["won"], "leads_lost": p["lost"], "won_value": p["won_value"]}
        for p in leads["series"]
    ]
    talk = expected_communication(r, start, end, g, 24, "1970-01-01T00:00:00Z")
    asked = body | {"measures": ["messages_in", "messages_out"], "dimensions": ["channel"]}
    got = admin.post("/analytics/custom-report", json=asked).json()
    totals = [sum(m["messages_in"] for m in talk["messages"])]
    totals.append(sum(m["messages_out"] for m in talk["messages"]))
    assert [[row["messages_in"], row["messages_out"]] for row in got["rows"]] == (
        [totals] if talk["messages"] else []
    )
    asked = body | {"measures": ["calls", "talk_seconds"], "dimensions": []}
    [row] = admin.post("/analytics/custom-report", json=asked).json()["rows"]
    calls = (
        talk["calls_placed"] + talk["calls_received"],
        sum(c["duration_seconds"] for c in talk["calls"]),
    )
    assert (row["calls"], row["talk_seconds"]) == calls


def test_every_answer_equals_the_oracle_over_random_histories(
    client: TestClient[Any], services: Any
) -> None:
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        commands=st.lists(st.tuples(tick, command), min_size=10, max_size=40),
        granularity=st.sampled_from(["day", "week", "month", None]),
        ago=st.none() | st.integers(-2, HISTORY_DAYS + 2),  # `to`, in days before today
        span=st.none() | st.integers(0, HISTORY_DAYS + 15),  # `from`, in days before `to`
        around=st.none() | st.tuples(st.integers(0, 99), st.integers(0, 99)),
    )
    def answers_match(
        commands: list[tuple[Tick, tuple[str, int, int, int, int]]],
        granularity: str | None,
        ago: int | None,
        span: int | None,
        around: Around,
    ) -> None:
        with event_clock(datetime.now(UTC) - timedelta(days=HISTORY_DAYS)) as clock:
            orgs = [Org(client, services), Org(client, services)]
            for step, (op, o, lead, a, b) in commands:
                run(services, orgs[o], op, lead, a, b, step.apply(clock, orgs[o].zone))
        for org in orgs:
            check(services, org, granularity, ago, span, around)

    answers_match()
