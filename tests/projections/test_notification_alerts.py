"""Alerts on analysed messages, on both backends: an urgent message tells the lead's assignee at
once, a very negative one the managers and admins — at the organization's own thresholds as of
the analysis, the same after a rebuild, and never another organization's members."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from domain.ai_settings import AiSettings
from domain.conversation import Conversation
from domain.values import Actor
from interfaces.services import Services
from tests.projections import test_runner
from tests.projections.test_notifications_projection import Team, person, rows
from tests.projections.test_runner import dump, rebuild_all, runner_for

fresh = test_runner.fresh  # services on a database of their own, on each backend

NOW = datetime.now(UTC)
TIMERS = Actor(kind="system", id="timers")


def analysed(team: Team, lead_id: UUID, *readings: tuple[float, int]) -> None:
    """The lead's contact writes one message per (sentiment, urgency), each analysed."""
    chat = Conversation.start(
        organization_id=team.id,
        lead_id=lead_id,
        channel="whatsapp",
        contact="+5511987650000",
        actor=person(team.admin),
    )
    for i, (sentiment, urgency) in enumerate(readings):
        message = chat.receive(
            provider_message_id=f"wamid.{lead_id}.{i}",
            provider_type="business_api",
            text="…",
            sent_at=NOW,
            actor=person(team.admin),
        )
        chat.record_analysis(
            message,
            sentiment=sentiment,
            confidence=0.9,
            urgency=urgency,
            intent="complaint",
            summary="s",
            language="pt",
            model="offline",
            tokens_in=0,
            tokens_out=0,
            actor=TIMERS,  # as the analysis policy records it
        )
    team.app.commit(chat)


def alerts(services: Services, org: UUID) -> list[tuple[UUID, str]]:
    kinds = ("urgent_message", "negative_sentiment")
    return [(r["user_id"], r["kind"]) for r in rows(services, org) if r["kind"] in kinds]


def test_an_urgent_message_tells_the_assignee_and_a_very_negative_one_the_managers(
    fresh: Services,
) -> None:
    team = Team(fresh)
    lead = team.lead(team.sales, by=team.admin)
    # calm and mild, urgent, very negative, both (the more pressing: the assignee)
    analysed(team, lead.id, (0.1, 20), (-0.2, 90), (-0.8, 10), (-0.9, 95))
    runner_for(fresh).catch_up()
    assert sorted(alerts(fresh, team.id)) == sorted(
        [
            (team.sales, "urgent_message"),
            (team.admin, "negative_sentiment"),
            (team.manager, "negative_sentiment"),
            (team.sales, "urgent_message"),
        ]
    )


def test_the_organizations_thresholds_as_of_the_analysis_apply_and_a_rebuild_agrees(
    fresh: Services,
) -> None:
    team = Team(fresh)
    other = Team(fresh)  # another organization keeps the defaults
    lead = team.lead(team.sales, by=team.admin)
    analysed(team, lead.id, (0.0, 70))  # below the default 80: nobody told
    settings = AiSettings.start(team.id, actor=person(team.admin))
    settings.change({"urgency_alert": 60, "sentiment_alert": -0.95}, actor=person(team.admin))
    fresh.app.commit(settings)
    analysed(team, lead.id, (-0.9, 65))  # urgent now; no longer negative enough
    other_lead = other.lead(other.sales, by=other.admin)
    analysed(other, other_lead.id, (0.0, 65))
    runner_for(fresh).catch_up()
    assert alerts(fresh, team.id) == [(team.sales, "urgent_message")]
    assert alerts(fresh, other.id) == []
    with fresh.engine.connect() as conn:
        before = dump(conn)
    assert rebuild_all(fresh) == before


def test_an_urgent_message_on_an_unassigned_lead_tells_nobody_yet(fresh: Services) -> None:
    team = Team(fresh)
    lead = team.lead(None, by=team.admin)
    analysed(team, lead.id, (0.0, 99))
    runner_for(fresh).catch_up()
    assert alerts(fresh, team.id) == []
