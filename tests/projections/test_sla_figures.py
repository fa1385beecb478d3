"""The SLA figures (per member and day: first responses in time, breaches, compliance) equal a
recomputation from the log, for random histories of messages in and out, reassignments, SLA
changes and timer rounds at random times, in time zones with and without daylight saving."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from application.analytics.queries import Period, ratio
from application.analytics.report import CustomReportRequest, custom_report
from application.analytics.team import team_report
from application.work.sla import record_due_breaches
from domain.business_hours import BusinessHours
from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import Organization
from domain.work_settings import WorkSettings
from interfaces.services import Services
from projections.analytics import AnalyticsProjector
from projections.sla import SlaProjector
from tests.projections.test_runner import fresh, runner_for  # noqa: F401
from tests.support.clock import event_clock
from tests.support.sla import SlaWorld

MEMBERS = [uuid4(), uuid4(), None]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "America/Sao_Paulo"]
WEEK = {"monday": [["08:00", "12:00"], ["13:00", "17:30"]], "wednesday": [["10:00", "22:00"]]}
EVERYTHING = Period(date(2000, 1, 1), date(2100, 1, 1), "day")

#: minutes between steps: around the 30-minute SLA, and across hours and days
gap = st.one_of(st.sampled_from([0, 1, 10, 29, 30, 31, 45]), st.integers(0, 900))
step = st.one_of(
    st.tuples(st.just("in"), st.integers(0, 2), gap),
    st.tuples(st.just("reply"), st.just(0), gap),  # to the chat written to last
    st.tuples(st.just("in"), st.integers(0, 2), gap),
    st.tuples(st.just("out"), st.integers(0, 2), gap),
    st.tuples(st.just("assign"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("timers"), st.integers(0, 2), st.integers(0, 3000)),
    st.tuples(st.just("sla"), st.integers(1, 240), st.booleans()),
)


def recomputed(services: Services, org: UUID) -> list[tuple[datetime, UUID | None, int]]:
    """(instant counted, member, 0: in time / 1: breach) from the organization's events in log
    order; the deadline of a breach is its instant, the reply that of an in-time reply."""
    app = services.app
    zone, sla, hours = "UTC", None, None
    assignee: dict[UUID, UUID | None] = {}
    lead_of: dict[UUID, UUID] = {}
    waits: dict[UUID, dict[str, Any]] = {}
    figures: list[tuple[datetime, UUID | None, int]] = []

    def count(at: datetime, member: UUID | None, column: int) -> None:
        figures.append((at, member, column))

    for n in app.recorder.select_notifications(start=1, limit=10**6):
        e = app.mapper.to_domain_event(n)
        if getattr(e, "organization_id", None) != org:
            continue
        if isinstance(e, Organization.TimezoneChanged):
            zone = e.timezone
        elif isinstance(e, WorkSettings.SlaSet):
            sla = e if e.enabled else None
        elif isinstance(e, WorkSettings.BusinessHoursSet):
            hours = BusinessHours.parse(e.timezone, e.weekly, e.holidays)
        elif isinstance(e, Lead.Captured):
            assignee[e.originator_id] = e.assignee_id
        elif isinstance(e, Lead.Assigned):
            assignee[e.originator_id] = e.to_user_id
        elif isinstance(e, Conversation.Started):
            lead_of[e.originator_id] = e.lead_id
        elif isinstance(e, Conversation.MessageReceived) and e.originator_id not in waits:
            since = min(e.sent_at, e.timestamp)
            deadline = None
            if sla is not None:
                if sla.business_hours:
                    deadline = (hours or BusinessHours.default(zone)).add(since, sla.minutes)
                else:
                    deadline = since + timedelta(minutes=sla.minutes)
            waits[e.originator_id] = {"deadline": deadline, "breached": False}
        elif isinstance(e, Conversation.ResponseSlaBreached):
            waits[e.originator_id]["breached"] = True
            count(e.deadline, e.assignee_id, 1)
        elif isinstance(e, Conversation.MessageSent) and e.originator_id in waits:
            wait = waits.pop(e.originator_id)
            if wait["deadline"] is not None and not wait["breached"]:
                member = assignee[lead_of[e.originator_id]]
                on_time = e.timestamp <= wait["deadline"]
                count(e.timestamp if on_time else wait["deadline"], member, 0 if on_time else 1)
    return figures


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    with_hours=st.booleans(),
    steps=st.lists(step, min_size=4, max_size=30),
    late_zone=st.sampled_from([None, *ZONES]),
)
def test_the_sla_figures_equal_a_recomputation_from_the_log(
    fresh: Services,  # noqa: F811
    zone: str,
    with_hours: bool,
    steps: list[tuple[Any, ...]],
    late_zone: str | None,
) -> None:
    with event_clock(datetime(2026, 1, 5, 7, 0, tzinfo=UTC)) as clock:
        world = SlaWorld(fresh.app, clock, timezone=zone)
        if with_hours:
            world.set_hours(WEEK, holidays=["2026-01-07"])
        world.set_sla(30, business_hours=with_hours)
        leads = [world.lead(assignee=m) for m in MEMBERS]
        chats = [world.chat(lead) for lead in leads]
        last = 0
        for kind, a, b in steps:
            if kind == "in":
                clock.advance(timedelta(minutes=b))
                world.inbound(world.reload(chats[a]))
                last = a
            elif kind in ("out", "reply"):
                a = last if kind == "reply" else a
                clock.advance(timedelta(minutes=b))
                world.outbound(world.reload(chats[a]), by=uuid4())
            elif kind == "assign":
                world.assign(leads[a], MEMBERS[b])
            elif kind == "timers":
                clock.advance(timedelta(minutes=b))
                runner_for(fresh, [SlaProjector()]).catch_up()
                record_due_breaches(fresh.app, fresh.engine, clock.now)
            else:
                world.set_sla(a, business_hours=b and with_hours)
        if late_zone is not None:
            world.change_timezone(late_zone)
        final_zone = late_zone or zone
    runner_for(fresh, [SlaProjector(), AnalyticsProjector()]).catch_up()

    # days are those of the organization's time zone now (a change re-derives them)
    local = BusinessHours.default(final_zone).zone
    expected: dict[tuple[date, UUID | None], list[int]] = defaultdict(lambda: [0, 0])
    for at, member, column in recomputed(fresh, world.id):
        expected[(at.astimezone(local).date(), member)][column] += 1
    with fresh.engine.connect() as conn:
        team = team_report(conn, world.id, EVERYTHING, None)
        request = CustomReportRequest(
            measures=["sla_first_responses_in_time", "sla_breaches", "sla_compliance_rate"],
            dimensions=["period", "assignee"],
        )
        rows = custom_report(conn, world.id, EVERYTHING, request, None).rows
    event(f"waits ended in time: {sum(v[0] for v in expected.values()) > 0}")
    event(f"breaches: {sum(v[1] for v in expected.values()) > 0}")
    got = {
        (date.fromisoformat(r["period"]), r["assignee"] and UUID(r["assignee"])): [
            r["sla_first_responses_in_time"],
            r["sla_breaches"],
        ]
        for r in rows
    }
    assert got == dict(expected)
    per_member: dict[UUID | None, list[int]] = defaultdict(lambda: [0, 0])
    for (_, member), (in_time, breaches) in expected.items():
        per_member[member][0] += in_time
        per_member[member][1] += breaches
    shown = {
        m.member_id: (m.sla_first_responses_in_time, m.sla_breaches, m.sla_compliance_rate)
        for m in team.members
    }
    for member in MEMBERS[:2]:
        assert member is not None
        in_time, breaches = per_member.get(member, [0, 0])
        if in_time or breaches:
            assert shown[member] == (in_time, breaches, ratio(in_time, in_time + breaches))
        else:
            assert member not in shown or shown[member][:2] == (0, 0)
