"""The assignment-rules engine on the real event store, both backends: the capture paths,
fairness of round-robin under concurrent captures, members leaving."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.context import Ctx
from application.conversations import calls
from application.conversations import messages as conversations
from application.conversations.providers import CallUpdate, InboundMessage
from application.identity import organizations
from application.leads import commands as leads
from application.work import assignment_rules as rules
from application.work import settings as work_settings
from application.work.assignment import country_of
from domain.assignment import AssignmentRules, assignment_rules_id
from domain.business_hours import DAYS
from domain.lead import Lead
from domain.values import Actor, Role
from interfaces.services import Services
from projections.assignment_rules import rm_assignment_rules
from tests.application.test_handlers import member_of, owner_of

PROVIDER = conversations.provider_actor("business_api")
CONCURRENCY = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def team(services: Services, owner: Ctx, k: int) -> list[UUID]:
    return [member_of(services, owner, Role.SALES).user_id for _ in range(k)]


def add_rule(services: Services, ctx: Ctx, strategy: str, members: list[UUID], **kw: Any) -> UUID:
    conditions = rules.RuleConditions(**kw.pop("conditions", {}))
    body = rules.RuleBody(
        name=kw.pop("name", strategy),
        strategy=strategy,
        members=members,
        conditions=conditions,  # type: ignore[arg-type]
    )
    return rules.add_rule(services.app, body, ctx).id


def capture(services: Services, ctx: Ctx, **fields: Any) -> Lead:
    cmd = leads.CaptureLead(full_name=fields.pop("full_name", "Ann"), **fields)
    written = leads.capture_lead(services.app, cmd, ctx, read_models=services)
    return services.app.load(Lead, written.id, ctx.organization_id)


def receive(services: Services, ctx: Ctx, sender: str) -> Lead:
    message = InboundMessage(
        provider_message_id=f"wamid.{uuid4().hex}",
        from_phone=sender,
        sent_at=datetime.now(UTC),
        text="oi",
        contact_name="Contact",
    )
    done = conversations.receive_message(
        services.app, services, ctx.organization_id, "business_api", message, actor=PROVIDER
    )
    return services.app.load(Lead, done.lead_id, ctx.organization_id)


def assigned_by(lead: Lead, services: Services) -> Actor | None:
    events = list(services.app.events.get(lead.id))
    found = [e for e in events if isinstance(e, Lead.Assigned)]
    return found[-1].actor if found else None


def spread(assignees: list[UUID | None], members: list[UUID]) -> list[int]:
    counts = Counter(assignees)
    return [counts.get(m, 0) for m in members]


@CONCURRENCY
@given(k=st.integers(1, 4), n=st.integers(1, 8))
def test_concurrent_api_captures_over_k_members_differ_by_at_most_one(
    services: Services, k: int, n: int
) -> None:
    owner = owner_of(services)
    members = team(services, owner, k)
    rule_id = add_rule(services, owner, "round_robin", members)
    with ThreadPoolExecutor(n) as pool:
        captured = list(pool.map(lambda i: capture(services, owner, full_name=f"L{i}"), range(n)))
    counts = spread([lead.assignee_id for lead in captured], members)
    assert sum(counts) == n and max(counts) - min(counts) <= 1
    assert {assigned_by(lead, services) for lead in captured} == {Actor("rule", str(rule_id))}
    stored = services.app.load(
        AssignmentRules, assignment_rules_id(owner.organization_id), owner.organization_id
    )
    assert stored.rules[rule_id].routed == n


@CONCURRENCY
@given(k=st.integers(1, 4), n=st.integers(1, 8))
def test_concurrent_first_messages_from_new_numbers_over_k_members_differ_by_at_most_one(
    services: Services, k: int, n: int
) -> None:
    owner = owner_of(services)
    members = team(services, owner, k)
    add_rule(services, owner, "round_robin", members, conditions={"sources": ["whatsapp"]})
    numbers = [f"55119{uuid4().int % 10**8:08d}" for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        captured = list(pool.map(lambda number: receive(services, owner, number), numbers))
    assert len({lead.id for lead in captured}) == n
    counts = spread([lead.assignee_id for lead in captured], members)
    assert sum(counts) == n and max(counts) - min(counts) <= 1


def test_a_sales_members_own_capture_and_an_explicit_assignee_bypass_the_rules(
    services: Services,
) -> None:
    owner = owner_of(services)
    sales = member_of(services, owner, Role.SALES)
    other = member_of(services, owner, Role.SALES)
    add_rule(services, owner, "member", [other.user_id])
    assert capture(services, sales).assignee_id == sales.user_id
    assert capture(services, owner, assigned_to=owner.user_id).assignee_id == owner.user_id
    routed = capture(services, owner)
    assert routed.assignee_id == other.user_id
    assert [type(e).__name__ for e in services.app.events.get(routed.id)] == [
        "Captured",
        "Assigned",
    ]


def test_without_a_matching_rule_a_lead_stays_unassigned(services: Services) -> None:
    owner = owner_of(services)
    (rep,) = team(services, owner, 1)
    add_rule(services, owner, "member", [rep], conditions={"sources": ["fair"]})
    lead = capture(services, owner, source="website")
    assert lead.assignee_id is None and lead.version == 1


def test_the_phone_country_and_a_custom_field_route_api_captures(services: Services) -> None:
    owner = owner_of(services)
    pt, pro, rest = team(services, owner, 3)
    add_rule(services, owner, "member", [pt], conditions={"countries": ["PT"]})
    add_rule(services, owner, "member", [pro], conditions={"custom_fields": {"plan": "pro"}})
    add_rule(services, owner, "member", [rest])
    assert capture(services, owner, phone="+351 912 345 678").assignee_id == pt
    assert capture(services, owner, custom_fields={"plan": "pro"}).assignee_id == pro
    assert capture(services, owner, phone="+55 11 98765-4321").assignee_id == rest
    assert country_of("+1 415 555 2671") == "US"
    assert country_of("not a phone") is None


def test_business_hours_inside_and_outside_follow_the_organizations_hours(
    services: Services,
) -> None:
    owner = owner_of(services)
    day, night = team(services, owner, 2)
    add_rule(services, owner, "member", [day], conditions={"business_hours": "inside"})
    add_rule(services, owner, "member", [night], conditions={"business_hours": "outside"})
    always = {d: [["00:00", "24:00"]] for d in DAYS}
    hours = work_settings.BusinessHoursBody(weekly=always, timezone="UTC")
    work_settings.set_business_hours(services.app, hours, owner)
    assert capture(services, owner).assignee_id == day
    today = datetime.now(UTC).date()
    holidays = [today + timedelta(days=d) for d in (-1, 0, 1)]
    closed = work_settings.BusinessHoursBody(weekly=always, holidays=holidays, timezone="UTC")
    work_settings.set_business_hours(services.app, closed, owner)
    assert capture(services, owner).assignee_id == night


def test_least_open_goes_to_the_member_with_fewest_open_leads(services: Services) -> None:
    owner = owner_of(services)
    busy, free = team(services, owner, 2)
    for _ in range(2):
        capture(services, owner, assigned_to=busy)
    last = leads.capture_lead(
        services.app, leads.CaptureLead(full_name="x", assigned_to=free), owner
    )
    assert services.wait_for(["leads"], last.position, timeout=30)
    add_rule(services, owner, "least_open", [busy, free])
    assert capture(services, owner).assignee_id == free


def test_a_removed_member_leaves_every_rule_in_the_same_commit(services: Services) -> None:
    owner = owner_of(services)
    gone, stays = team(services, owner, 2)
    solo = add_rule(services, owner, "member", [gone], name="solo")
    pair = add_rule(services, owner, "round_robin", [gone, stays], name="pair")
    written = organizations.remove_member(services.app, gone, owner)
    events = list(services.app.events.get(assignment_rules_id(owner.organization_id)))
    left = events[-1]
    assert isinstance(left, AssignmentRules.MemberLeft) and left.user_id == gone
    assert services.app.recorder.max_notification_id() == written.position
    listed = {r.id: r for r in rules.list_rules(services.app, owner).items}
    assert (listed[solo].members, listed[solo].enabled) == ([], False)
    assert (listed[pair].members, listed[pair].enabled) == ([stays], True)
    assert {capture(services, owner).assignee_id for _ in range(3)} == {stays}


def test_edits_and_a_removal_racing_with_captures_all_succeed_and_no_lead_goes_to_the_removed(
    services: Services,
) -> None:
    owner = owner_of(services)
    gone, stays = team(services, owner, 2)
    rule_id = add_rule(services, owner, "round_robin", [gone, stays])
    body = rules.RuleBody(name="renamed", strategy="round_robin", members=[gone, stays])

    def work(i: int) -> tuple[str, int]:
        if i == 5:
            return "edit", rules.change_rule(services.app, rule_id, body, owner).position
        if i == 10:
            return "removal", organizations.remove_member(services.app, gone, owner).position
        cmd = leads.CaptureLead(full_name=f"L{i}")
        written = leads.capture_lead(services.app, cmd, owner, read_models=services)
        return str(written.id), written.position

    with ThreadPoolExecutor(8) as pool:
        done = dict(pool.map(work, range(20)))
    removal = done.pop("removal")
    done.pop("edit")
    for lead_id, position in done.items():
        lead = services.app.load(Lead, UUID(lead_id), owner.organization_id)
        assert lead.assignee_id in (gone, stays)
        if lead.assignee_id == gone:
            assert position < removal


def test_the_rules_read_model_follows_adds_renames_and_removals(services: Services) -> None:
    owner = owner_of(services)
    (rep,) = team(services, owner, 1)
    kept = add_rule(services, owner, "member", [rep], name="first")
    gone = add_rule(services, owner, "member", [rep], name="second")
    body = rules.RuleBody(name="renamed", strategy="member", members=[rep])
    rules.change_rule(services.app, kept, body, owner)
    last = rules.remove_rule(services.app, gone, owner)
    assert services.wait_for(["assignment_rules"], last.position, timeout=30)
    c = rm_assignment_rules.c
    with services.reading(owner.organization_id) as conn:
        rows = conn.execute(
            sa.select(c.rule_id, c.name).where(c.organization_id == owner.organization_id)
        ).all()
    assert [tuple(r) for r in rows] == [(kept, "renamed")]


def test_a_call_from_a_new_number_makes_a_lead_the_rules_assign(services: Services) -> None:
    owner = owner_of(services)
    (rep,) = team(services, owner, 1)
    rule_id = add_rule(services, owner, "member", [rep], conditions={"sources": ["phone"]})
    update = CallUpdate(
        "CA-new",
        "CA-new:ringing",
        "ringing",
        datetime.now(UTC),
        direction="inbound",
        from_number="+5511912345678",
        to_number="+14155552671",
    )
    recorded = calls.record_call_update(
        services.app, services, owner.organization_id, "twilio", update, actor=PROVIDER
    )
    assert recorded is not None
    lead = services.app.load(Lead, recorded.lead_id, owner.organization_id)
    assert (lead.source, lead.assignee_id) == ("phone", rep)
    assert assigned_by(lead, services) == Actor("rule", str(rule_id))
