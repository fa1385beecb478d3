"""Template statistics equal a straightforward recomputation from the log: for any sequence
of uses, inbound messages at any delays and wins, cut into batches anywhere."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from application.work.template_queries import template_stats
from domain.conversation import Conversation
from domain.lead import Lead
from domain.pipeline import Pipeline, default_pipeline_id
from domain.template import Template
from domain.values import Actor, StageType
from interfaces.database import make_engine
from projections.base import Envelope
from projections.templates import TemplatesProjector, rm_template_stats
from tests.conftest import settings_for

ACTOR = Actor(kind="user", id="tester")
BASE = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
DAY_MINUTES = 24 * 60

# a step: (kind, template, variant, lead, minutes after the previous step); delays cluster
# around the 24-hour limit so that both sides of it are tried
delays = st.one_of(
    st.sampled_from([0, 1, 30, DAY_MINUTES - 1, DAY_MINUTES, DAY_MINUTES + 1]),
    st.integers(0, 3000),
)
steps = st.lists(
    st.tuples(
        st.sampled_from(["use", "use", "reply", "win"]),
        st.integers(0, 1),
        st.sampled_from("AB"),
        st.integers(0, 2),
        delays,
    ),
    max_size=30,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    found = make_engine(settings_for(database_url))
    yield found
    found.dispose()


def history(
    org: UUID, templates: list[UUID], leads: list[UUID], plan: list[Any]
) -> list[tuple[int, datetime, Any]]:
    """(position, time, event) of each step, after the templates' creations."""
    events: list[tuple[int, datetime, Any]] = []
    position = 1_000_000
    common = {"organization_id": org, "actor": ACTOR}
    for t in templates:
        created = Template.Created(
            originator_id=t,
            originator_version=1,
            timestamp=BASE,
            originator_topic="domain.template:Template",
            name="T",
            category=None,
            stage_ids=[],
            body="b",
            variants=["c"],
            whatsapp_template_name=None,
            whatsapp_template_language=None,
            tags=[],
            **common,
        )
        position += 1
        events.append((position, BASE, created))
    now = BASE
    versions = dict.fromkeys(templates, 1)
    for kind, t_index, variant, l_index, delay in plan:
        now += timedelta(minutes=delay)
        lead = leads[l_index]
        event: Any
        if kind == "use":
            template = templates[t_index]
            versions[template] += 1
            event = Template.Used(
                originator_id=template,
                originator_version=versions[template],
                timestamp=now,
                lead_id=lead,
                variant=variant,
                sent_as=None,
                conversation_id=None,
                message_id=None,
                **common,
            )
        elif kind == "reply":
            event = Conversation.MessageReceived(
                originator_id=uuid4(),
                originator_version=2,
                timestamp=now,
                lead_id=lead,
                message_id=uuid4(),
                provider_message_id="wamid",
                provider_type="business_api",
                text="hi",
                contact_name=None,
                sent_at=now,
                **common,
            )
        else:
            event = Lead.Won(
                originator_id=lead,
                originator_version=5,
                timestamp=now,
                stage_id=uuid4(),
                value=None,
                previous_status="open",
                **common,
            )
        position += 1
        events.append((position, now, event))
    return events


def write_templates(services: Any) -> None:
    """Templates created, changed, used (both variants) on an open lead of the history written
    before, a reply within the day, the lead won, and a template deleted."""
    app = services.app
    captured = app.recorder.select_notifications(1, 10_000, topics=["domain.lead:Lead.Captured"])
    for notification in captured:
        org = app.organization_of(notification.originator_id)
        lead = app.load(Lead, notification.originator_id, org)
        if lead.status == "open" and not lead.archived:
            break
    else:
        raise AssertionError("no open lead in the history")
    details = {"name": "T", "body": "Hi {{lead.full_name}}", "variants": ["Hey"], "tags": ["x"]}
    template = Template.create(organization_id=org, details=details, actor=ACTOR)
    gone = Template.create(organization_id=org, details=details, actor=ACTOR)
    template.change({"stage_ids": [lead.stage_id], "name": "Greeting"}, actor=ACTOR)
    for _ in range(3):
        template.record_use(lead_id=lead.id, actor=ACTOR)
    chat = Conversation.start(
        organization_id=org,
        lead_id=lead.id,
        channel="whatsapp",
        contact="+5511912345678",
        actor=ACTOR,
    )
    app.commit(template, gone, chat)
    chat.receive(
        provider_message_id="wamid.templates",
        provider_type="business_api",
        text="yes",
        sent_at=datetime.now(UTC),
        actor=ACTOR,
    )
    gone.delete(actor=ACTOR)
    pipeline = app.load(Pipeline, default_pipeline_id(org), org)
    lead.win(pipeline.first_stage_of(StageType.WON).ref, actor=ACTOR)
    app.commit(chat, gone, lead)


def recomputed(events: list[tuple[int, datetime, Any]]) -> dict[tuple[UUID, str], list[int]]:
    """Uses; uses followed (later in the log) by an inbound message of the lead within 24 h;
    distinct leads won after a use — straight from the definition, over the whole log."""
    found: dict[tuple[UUID, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    won_leads: dict[tuple[UUID, str], set[UUID]] = defaultdict(set)
    for i, (_, at, e) in enumerate(events):
        if not isinstance(e, Template.Used):
            continue
        key = (e.originator_id, e.variant)
        found[key][0] += 1
        later = events[i + 1 :]
        if any(
            isinstance(x, Conversation.MessageReceived)
            and x.lead_id == e.lead_id
            and t - at <= timedelta(hours=24)
            for _, t, x in later
        ):
            found[key][1] += 1
        if any(isinstance(x, Lead.Won) and x.originator_id == e.lead_id for _, _, x in later):
            won_leads[key].add(e.lead_id)
    for key, leads in won_leads.items():
        found[key][2] = len(leads)
    return dict(found)


def projected(engine: Engine, org: UUID) -> dict[tuple[UUID, str], list[int]]:
    c = rm_template_stats.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(rm_template_stats).where(c.organization_id == org))
        return {(r.template_id, r.variant): [r.uses, r.replies, r.won] for r in rows}


def test_template_stats_equal_a_recomputation_from_the_log(engine: Engine) -> None:
    @settings(max_examples=60, deadline=None)
    @given(plan=steps, cuts=st.lists(st.integers(1, 40), max_size=4))
    def stats_follow_the_log(plan: list[Any], cuts: list[int]) -> None:
        org = uuid4()
        templates, leads = [uuid4(), uuid4()], [uuid4(), uuid4(), uuid4()]
        events = history(org, templates, leads, plan)
        projector = TemplatesProjector()
        bounds = sorted({0, len(events), *(c for c in cuts if c < len(events))})
        for start, end in pairwise(bounds):
            batch = [Envelope(p, "", e) for p, _, e in events[start:end]]
            with engine.begin() as conn:
                projector.process(conn, batch)
        expected = recomputed(events)
        assert projected(engine, org) == expected
        with engine.connect() as conn:
            for template in templates:
                stats = template_stats(conn, org, template)
                mine = {k: v for k, v in expected.items() if k[0] == template}
                assert stats.uses == sum(v[0] for v in mine.values())
                assert stats.replies == sum(v[1] for v in mine.values())
                won_any = {
                    e.lead_id
                    for i, (_, _, e) in enumerate(events)
                    if isinstance(e, Template.Used)
                    and e.originator_id == template
                    and any(
                        isinstance(x, Lead.Won) and x.originator_id == e.lead_id
                        for _, _, x in events[i + 1 :]
                    )
                }
                assert stats.won == len(won_any)

    stats_follow_the_log()
