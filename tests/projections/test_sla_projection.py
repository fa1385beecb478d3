"""Response clocks: opened by the first unanswered inbound message, kept by later ones, closed
by a reply or a recorded breach, with deadlines computed from the settings as of the message
(business hours across weekends, holidays and DST) — and a rebuild computes the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from application.work.sla import ResponseSlaTimer, record_due_breaches
from interfaces.services import Services
from projections.runner import positions
from projections.sla import SLA_TABLES, SlaProjector, rm_sla_clocks, rm_sla_daily, rm_sla_outcomes
from tests.projections.test_runner import fresh, runner_for  # noqa: F401
from tests.support.clock import event_clock
from tests.support.sla import SlaWorld

WEEK = {d: [["09:00", "18:00"]] for d in ("monday", "tuesday", "wednesday", "thursday", "friday")}
ANA = uuid4()
BIA = uuid4()


def project(services: Services, batch: int = 1000) -> None:
    runner_for(services, [SlaProjector()], batch=batch).catch_up()


def clock_of(services: Services, chat_id: UUID) -> dict[str, Any]:
    with services.engine.connect() as conn:
        row = conn.execute(
            sa.select(rm_sla_clocks).where(rm_sla_clocks.c.conversation_id == chat_id)
        ).one()
    return dict(row._mapping)


def outcomes(services: Services) -> list[dict[str, Any]]:
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(rm_sla_outcomes).order_by(rm_sla_outcomes.c.counted_at))
        return [dict(r._mapping) for r in rows]


def daily(services: Services) -> set[tuple[Any, ...]]:
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(rm_sla_daily))
        return {(r.day, r.member_id, r.in_time, r.breached) for r in rows}


def dump(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    with services.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in SLA_TABLES
        }


def rebuilt(services: Services, batch: int) -> dict[str, list[tuple[Any, ...]]]:
    with services.engine.begin() as conn:
        for t in SLA_TABLES:
            conn.execute(t.delete())
        conn.execute(
            positions.update().where(positions.c.projection_name == "sla").values(position=0)
        )
    project(services, batch)
    return dump(services)


@pytest.fixture
def world(fresh: Services) -> Iterator[SlaWorld]:  # noqa: F811
    with event_clock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC)) as clock:
        yield SlaWorld(fresh.app, clock)


def test_an_inbound_message_opens_a_clock_a_second_one_does_not_move_it_and_a_reply_closes_it(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_sla(30, business_hours=False)
    chat = world.chat(world.lead(assignee=ANA))
    first = world.inbound(chat, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    world.inbound(chat, datetime(2026, 3, 2, 12, 10, tzinfo=UTC))
    project(fresh)
    clock = clock_of(fresh, chat.id)
    assert (clock["status"], clock["message_id"]) == ("open", first)
    assert clock["waiting_since"] == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert clock["deadline"] == datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
    world.outbound(chat, by=BIA, at=datetime(2026, 3, 2, 12, 20, tzinfo=UTC))
    project(fresh)
    assert clock_of(fresh, chat.id)["status"] == "idle"
    [done] = outcomes(fresh)
    assert (done["message_id"], done["outcome"], done["member_id"]) == (first, "in_time", ANA)
    assert done["replied_at"] == datetime(2026, 3, 2, 12, 20, tzinfo=UTC)
    assert daily(fresh) == {(date(2026, 3, 2), ANA, 1, 0)}


def test_a_reply_after_the_deadline_counts_as_a_breach_even_before_the_timer_recorded_it(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_sla(30, business_hours=False)
    chat = world.chat(world.lead(assignee=ANA))
    world.inbound(chat, datetime(2026, 3, 2, 23, 50, tzinfo=UTC))
    world.outbound(chat, by=ANA, at=datetime(2026, 3, 3, 1, 0, tzinfo=UTC))
    project(fresh)
    [late] = outcomes(fresh)
    assert late["outcome"] == "late"
    assert late["counted_at"] == datetime(2026, 3, 3, 0, 20, tzinfo=UTC)  # its deadline
    assert daily(fresh) == {(date(2026, 3, 3), ANA, 0, 1)}


def test_a_business_hours_deadline_skips_the_weekend_a_holiday_and_follows_dst(
    fresh: Services,  # noqa: F811
) -> None:
    # New York moved to daylight time on Sunday 8 March 2026; Monday 9 March is a holiday here
    with event_clock(datetime(2026, 3, 5, 12, 0, tzinfo=UTC)) as clock:
        world = SlaWorld(fresh.app, clock, timezone="America/New_York")
        world.set_hours(WEEK, holidays=["2026-03-09"])
        world.set_sla(60, business_hours=True)
        chat = world.chat(world.lead(assignee=ANA))
        # Friday 17:30 EST: 30 minutes left that day, the rest on Tuesday from 09:00 EDT
        world.inbound(chat, datetime(2026, 3, 6, 22, 30, tzinfo=UTC))
        project(fresh)
        assert clock_of(fresh, chat.id)["deadline"] == datetime(2026, 3, 10, 13, 30, tzinfo=UTC)


def test_the_default_week_in_the_organizations_time_zone_applies_until_hours_are_set(
    fresh: Services,  # noqa: F811
) -> None:
    with event_clock(datetime(2026, 3, 5, 12, 0, tzinfo=UTC)) as clock:
        world = SlaWorld(fresh.app, clock, timezone="America/Sao_Paulo")  # UTC-3, no DST
        world.set_sla(120, business_hours=True)
        chat = world.chat(world.lead())
        world.inbound(chat, datetime(2026, 3, 6, 23, 0, tzinfo=UTC))  # Friday 20:00, closed
        project(fresh)
        assert clock_of(fresh, chat.id)["deadline"] == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)


def test_a_clock_keeps_the_deadline_of_the_settings_in_force_when_its_wait_began(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    untimed = world.chat(world.lead())
    world.inbound(untimed, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))  # the SLA is off
    world.set_sla(30, business_hours=False)
    timed = world.chat(world.lead())
    world.inbound(timed, datetime(2026, 3, 2, 12, 5, tzinfo=UTC))
    world.set_sla(90, business_hours=False)
    world.set_sla(90, business_hours=False, enabled=False)
    world.inbound(untimed, datetime(2026, 3, 2, 12, 6, tzinfo=UTC))  # still the first wait
    project(fresh)
    assert clock_of(fresh, untimed.id)["status"] == "untimed"
    assert clock_of(fresh, untimed.id)["deadline"] is None
    assert clock_of(fresh, timed.id)["deadline"] == datetime(2026, 3, 2, 12, 35, tzinfo=UTC)
    assert clock_of(fresh, timed.id)["sla_minutes"] == 30


def test_a_recorded_breach_closes_the_clock_and_a_later_reply_counts_nothing_more(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_sla(30, business_hours=False)
    lead = world.lead(assignee=ANA)
    chat = world.chat(lead)
    waiting = world.inbound(chat, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    world.assign(lead, BIA)  # who answers for it is the assignee when it comes due
    project(fresh)
    assert (
        record_due_breaches(fresh.app, fresh.engine, datetime(2026, 3, 2, 12, 29, tzinfo=UTC)) == 0
    )
    assert (
        record_due_breaches(fresh.app, fresh.engine, datetime(2026, 3, 2, 12, 30, tzinfo=UTC)) == 1
    )
    project(fresh)
    clock = clock_of(fresh, chat.id)
    assert (clock["status"], clock["message_id"]) == ("breached", waiting)
    assert record_due_breaches(fresh.app, fresh.engine, datetime(2026, 3, 3, tzinfo=UTC)) == 0
    world.inbound(world.reload(chat), datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    world.outbound(world.chats[chat.id], by=BIA, at=datetime(2026, 3, 2, 13, 5, tzinfo=UTC))
    project(fresh)
    [breach] = outcomes(fresh)
    assert (breach["outcome"], breach["member_id"]) == ("breached", BIA)
    assert daily(fresh) == {(date(2026, 3, 2), BIA, 0, 1)}
    assert clock_of(fresh, chat.id)["status"] == "idle"


def test_an_answered_message_never_breaches_even_if_the_timer_read_a_stale_clock(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_sla(30, business_hours=False)
    chat = world.chat(world.lead(assignee=ANA))
    world.inbound(chat, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    project(fresh)
    world.outbound(chat, by=ANA, at=datetime(2026, 3, 2, 12, 40, tzinfo=UTC))
    # the reply is not projected yet: the clock still reads open and due
    assert clock_of(fresh, chat.id)["status"] == "open"
    assert (
        record_due_breaches(fresh.app, fresh.engine, datetime(2026, 3, 2, 13, 0, tzinfo=UTC)) == 0
    )
    project(fresh)
    assert [o["outcome"] for o in outcomes(fresh)] == ["late"]
    assert clock_of(fresh, chat.id)["status"] == "idle"


def test_a_time_zone_change_moves_the_figures_to_the_new_local_days(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_sla(30, business_hours=False)
    chat = world.chat(world.lead(assignee=ANA))
    world.inbound(chat, datetime(2026, 3, 2, 23, 0, tzinfo=UTC))
    world.outbound(chat, by=ANA, at=datetime(2026, 3, 2, 23, 10, tzinfo=UTC))
    project(fresh)
    assert daily(fresh) == {(date(2026, 3, 2), ANA, 1, 0)}
    world.change_timezone("Asia/Tokyo")
    project(fresh)
    assert daily(fresh) == {(date(2026, 3, 3), ANA, 1, 0)}


def test_a_rebuild_in_any_batch_size_computes_the_same_clocks_and_figures(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_hours(WEEK, holidays=["2026-03-04"])
    world.set_sla(45, business_hours=True)
    leads = [world.lead(assignee=m) for m in (ANA, BIA, None)]
    chats = [world.chat(lead) for lead in leads]
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for step in range(40):
        at += timedelta(minutes=37 * (step % 5 + 1))
        chat = world.chats[chats[step % 3].id]
        if step % 4 == 3:
            world.outbound(chat, by=ANA, at=at)
        else:
            world.inbound(chat, at)
        if step == 20:
            world.set_sla(15, business_hours=False)
            world.assign(leads[2], BIA)
        if step % 7 == 6:
            project(fresh)
            record_due_breaches(fresh.app, fresh.engine, at)
            for c in chats:
                world.reload(c)
    project(fresh)
    first = dump(fresh)
    assert first["rm_sla_outcomes"], "the history closes some waits"
    assert rebuilt(fresh, batch=1) == first
    assert rebuilt(fresh, batch=7) == first


def test_a_timer_skips_what_it_settled_while_the_projector_lags_so_later_clocks_are_not_starved(
    fresh: Services,  # noqa: F811
    world: SlaWorld,
) -> None:
    world.set_sla(30, business_hours=False)
    chats = [world.chat(world.lead(assignee=ANA)) for _ in range(5)]
    for i, chat in enumerate(chats):
        world.inbound(chat, datetime(2026, 3, 2, 12, i, tzinfo=UTC))
    project(fresh)
    timer = ResponseSlaTimer(fresh.app, fresh.engine, batch=2)
    later = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert [timer.run(later) for _ in range(4)] == [2, 2, 1, 0]  # nothing projected meanwhile
    project(fresh)
    assert timer.run(later) == 0
    assert timer.settled == set()  # the read model shows them breached: nothing to remember
    assert {clock_of(fresh, c.id)["status"] for c in chats} == {"breached"}
