"""First-response medians and percentiles are exact although only one histogram bin of facts is
read: bins are monotone, and the value at any rank equals a sort of every response time."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import given
from hypothesis import strategies as st

from application.analytics.queries import Period
from application.analytics.team import ResponseTimes
from domain.conversation import Conversation
from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor
from interfaces.services import Services
from projections.analytics import AnalyticsProjector
from projections.analytics_tables import bin_bounds, response_bin
from tests.projections.test_runner import fresh, runner_for  # noqa: F401
from tests.support.clock import event_clock

PROVIDER = Actor(kind="provider", id="business_api")


@given(st.integers(0, 10**9))
def test_a_response_time_falls_inside_its_bins_bounds(seconds: int) -> None:
    low, high = bin_bounds(response_bin(seconds))
    assert low <= seconds <= high


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_bins_keep_the_order_of_response_times(a: int, b: int) -> None:
    if a <= b:
        assert response_bin(a) <= response_bin(b)


def test_medians_and_p90_equal_a_sort_of_every_response_time(
    fresh: Services,  # noqa: F811
) -> None:
    rng = random.Random(3)
    app = fresh.app
    agents = [Actor(kind="user", id=str(uuid4())) for _ in range(2)]
    waited: dict[str, list[int]] = {a.id: [] for a in agents}
    start = datetime.now(UTC) - timedelta(days=20)
    with event_clock(start) as clock:
        org = Organization.register(name="Replies", owner_user_id=uuid4(), actor=agents[0])
        pipeline = Pipeline.create_default(organization_id=org.id, actor=agents[0])
        lead = Lead.capture(
            organization_id=org.id,
            pipeline_id=pipeline.id,
            stage=pipeline.stages[0].ref,
            details={"full_name": "Ana"},
            assignee_id=None,
            actor=agents[0],
        )
        chat = Conversation.start(
            organization_id=org.id,
            lead_id=lead.id,
            channel="whatsapp",
            contact="+5511987654321",
            actor=agents[0],
        )
        app.commit(org, pipeline, lead, chat)
        for _ in range(60):
            clock.advance(timedelta(minutes=rng.randint(1, 600)))
            chat.receive(
                provider_message_id=uuid4().hex,
                provider_type="business_api",
                text="hi",
                sent_at=clock.now,
                actor=PROVIDER,
            )
            # many ties and values on both sides of bin edges
            wait = rng.choice([0, 1, 15, 16, 17, 31, 32, 63, 64, 65, rng.randint(0, 20_000)])
            agent = rng.choice(agents)
            clock.advance(timedelta(seconds=wait))
            chat.send(
                provider_type="business_api", now=clock.now, text="ok", window=False, actor=agent
            )
            waited[agent.id].append(wait)
            app.commit(chat)
    runner_for(fresh, [AnalyticsProjector()], batch=7).catch_up()
    everything = sorted(w for ws in waited.values() for w in ws)
    period = Period(date(2000, 1, 1), date(2100, 1, 1), "day")
    with fresh.engine.connect() as conn:
        times = ResponseTimes(conn, org.id, period)
        assert times.count() == len(everything) == 60
        assert [times.ranked(None, r) for r in range(60)] == everything
        assert times.median() == (everything[29] + everything[30]) / 2
        assert times.percentile(90) == everything[math.ceil(0.9 * 60) - 1]
        for agent in agents:
            mine = sorted(waited[agent.id])
            n = len(mine)
            assert times.median(UUID(agent.id)) == (mine[(n - 1) // 2] + mine[n // 2]) / 2
