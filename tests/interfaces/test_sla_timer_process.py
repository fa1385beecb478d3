"""Response SLA timers as real processes on one PostgreSQL database: one killed midway, then
two running side by side — every waiting message past its deadline gets exactly one breach,
an answered one none, and nothing is lost across the kill."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from application.work.sla import BATCH
from domain.conversation import Conversation
from interfaces.database import make_engine
from interfaces.migrate import migrate
from interfaces.services import Services, build_services
from interfaces.settings import load_settings
from projections.registry import all_projectors
from projections.runner import ProjectionRunner
from tests.interfaces.test_process import Proc, child_env
from tests.support.clock import event_clock
from tests.support.databases import scratch_postgres
from tests.support.sla import SlaWorld

SECRET = "sla-process-secret-key-of-at-least-32-chars"
MASTER = "sla-process-master-key-of-at-least-32-chars"
pytestmark = [pytest.mark.slow, pytest.mark.postgres]
#: more waiting messages than one round takes, so a round's leftovers are the next round's
WAITING = BATCH + 60


def eventually(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def recorded_count(services: Services) -> int:
    """How many breaches the log holds (undecoded: cheap enough to poll)."""
    topic = get_topic(Conversation.ResponseSlaBreached)
    return len(services.app.recorder.select_notifications(start=1, limit=10**7, topics=[topic]))


def breaches(services: Services) -> Counter[UUID]:
    """How many breaches the log holds for each message."""
    app = services.app
    found: Counter[UUID] = Counter()
    for n in app.recorder.select_notifications(start=1, limit=10**7):
        if n.topic.endswith("Conversation.ResponseSlaBreached"):
            found[app.mapper.to_domain_event(n).message_id] += 1
    return found


def history(services: Services) -> tuple[set[UUID], set[UUID]]:
    """Messages written three hours ago under a 15-minute SLA: most left waiting, some answered
    in time. Answers (waiting, answered) message ids; the read models are caught up."""
    waiting: set[UUID] = set()
    answered: set[UUID] = set()
    with event_clock(datetime.now(UTC) - timedelta(hours=3)) as clock:
        world = SlaWorld(services.app, clock)
        world.set_sla(15, business_hours=False)
        for i in range(WAITING + 20):
            chat = world.chat(world.lead(assignee=uuid4()))
            message = world.inbound(chat)
            if i % ((WAITING + 20) // 20) == 0 and len(answered) < 20:
                world.outbound(chat, by=uuid4(), at=clock.now + timedelta(minutes=5))
                answered.add(message)
            else:
                waiting.add(message)
            clock.advance(timedelta(seconds=10))
    ProjectionRunner(
        services.engine, services.app.recorder, services.app.mapper, all_projectors()
    ).catch_up()
    return waiting, answered


def test_two_timer_processes_and_a_killed_one_record_exactly_one_breach_per_waiting_message(
    tmp_path: Path,
) -> None:
    with scratch_postgres("crm_test_sla_timers") as url:
        crm = {"CRM_DATABASE_URL": url, "CRM_SECRET_KEY": SECRET, "CRM_MASTER_KEY": MASTER}
        settings = load_settings(crm)
        engine = make_engine(settings)
        migrate(settings, engine)
        engine.dispose()
        services = build_services(settings, with_runner=False)
        try:
            waiting, answered = history(services)
            run = ["timers", "run", "--poll-interval", "0.1"]
            first = Proc(run, child_env(**crm), tmp_path)
            try:
                eventually(lambda: recorded_count(services) > 0, "the first process records")
            finally:
                first.kill()  # SIGKILL midway: no shutdown of any kind
            assert recorded_count(services) < len(waiting), "killed before it was done"
            second = Proc(run, child_env(**crm), tmp_path)
            third = Proc(run, child_env(**crm), tmp_path)
            try:
                eventually(lambda: recorded_count(services) >= len(waiting), "every breach")
                time.sleep(2)  # a doubled record would show within a few rounds
                assert second.stop() == 0, second.output()
                assert third.stop() == 0, third.output()
            finally:
                second.kill()
                third.kill()
            recorded = breaches(services)
            assert set(recorded) == waiting
            assert set(recorded.values()) == {1}
            assert not answered & set(recorded)
            for proc in (first, second, third):
                assert "Traceback" not in proc.output(), proc.output()
            chat_events = [
                e
                for n in services.app.recorder.select_notifications(start=1, limit=10**7)
                if n.topic.endswith("ResponseSlaBreached")
                for e in [services.app.mapper.to_domain_event(n)]
            ]
            assert all(isinstance(e, Conversation.ResponseSlaBreached) for e in chat_events)
            assert {(e.actor.kind, e.actor.id) for e in chat_events} == {("system", "timers")}
        finally:
            services.close()
