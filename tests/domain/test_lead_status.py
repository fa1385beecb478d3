"""Moving a lead across stages: its status follows the stage type (won, lost, reopened)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import InvalidValueError, LeadClosedError, LeadNotClosedError
from domain.lead import Lead
from domain.pipeline import Pipeline
from domain.values import LeadStatus
from tests.domain.builders import ACTOR, attempt, capture_lead, stage_named


def kinds(lead: Lead) -> list[str]:
    return [type(e).__name__ for e in lead.collect_events()]


def test_moving_to_the_current_stage_records_nothing(lead: Lead, pipeline: Pipeline) -> None:
    lead.move_to(stage_named(pipeline, "Lead"), actor=ACTOR)
    assert lead.collect_events() == []


def test_moving_between_open_stages_records_only_the_move(lead: Lead, pipeline: Pipeline) -> None:
    lead.move_to(stage_named(pipeline, "Proposal"), actor=ACTOR)
    (moved,) = lead.collect_events()
    assert isinstance(moved, Lead.MovedToStage)
    assert (moved.from_stage_id, moved.to_stage_id) == (
        stage_named(pipeline, "Lead").id,
        stage_named(pipeline, "Proposal").id,
    )
    assert (lead.stage_id, lead.stage_entered_at, lead.status) == (
        moved.to_stage_id,
        moved.timestamp,
        LeadStatus.OPEN,
    )


def test_moving_into_a_won_stage_records_the_move_then_the_win(pipeline: Pipeline) -> None:
    lead = capture_lead(pipeline, estimated_value="1200.5")
    lead.move_to(stage_named(pipeline, "Won"), actor=ACTOR)
    moved, won = lead.collect_events()
    assert isinstance(moved, Lead.MovedToStage) and isinstance(won, Lead.Won)
    assert (won.stage_id, won.value, won.previous_status) == (
        stage_named(pipeline, "Won").id,
        Decimal("1200.50"),
        "open",
    )
    assert lead.status is LeadStatus.WON


def test_moving_into_a_lost_stage_records_the_move_then_the_loss(
    lead: Lead, pipeline: Pipeline
) -> None:
    lead.move_to(stage_named(pipeline, "Lost"), actor=ACTOR, reason="budget")
    moved, lost = lead.collect_events()
    assert isinstance(moved, Lead.MovedToStage) and isinstance(lost, Lead.Lost)
    assert (lost.reason, lost.previous_status) == ("budget", "open")
    assert lead.status is LeadStatus.LOST


@pytest.mark.parametrize("closed", ["Won", "Lost"])
def test_moving_a_closed_lead_into_an_open_stage_reopens_it(
    lead: Lead, pipeline: Pipeline, closed: str
) -> None:
    lead.move_to(stage_named(pipeline, closed), actor=ACTOR)
    lead.collect_events()
    lead.move_to(stage_named(pipeline, "Negotiation"), actor=ACTOR)
    moved, reopened = lead.collect_events()
    assert isinstance(moved, Lead.MovedToStage) and isinstance(reopened, Lead.Reopened)
    assert (reopened.stage_id, reopened.previous_status) == (moved.to_stage_id, closed.lower())
    assert lead.status is LeadStatus.OPEN


def test_moving_a_won_lead_into_a_lost_stage_records_a_loss_from_won(
    lead: Lead, pipeline: Pipeline
) -> None:
    lead.move_to(stage_named(pipeline, "Won"), actor=ACTOR)
    lead.move_to(stage_named(pipeline, "Lost"), actor=ACTOR)
    assert kinds(lead) == ["MovedToStage", "Won", "MovedToStage", "Lost"]
    assert lead.status is LeadStatus.LOST


def test_winning_an_open_lead_moves_it_into_the_won_stage(lead: Lead, pipeline: Pipeline) -> None:
    lead.win(stage_named(pipeline, "Won"), actor=ACTOR)
    assert kinds(lead) == ["MovedToStage", "Won"]
    assert (lead.stage_id, lead.status) == (stage_named(pipeline, "Won").id, LeadStatus.WON)


def test_losing_an_open_lead_records_the_cleaned_reason(lead: Lead, pipeline: Pipeline) -> None:
    lead.lose(stage_named(pipeline, "Lost"), reason="  went with a rival ", actor=ACTOR)
    _, lost = lead.collect_events()
    assert isinstance(lost, Lead.Lost) and lost.reason == "went with a rival"
    assert lead.status is LeadStatus.LOST


def test_a_blank_loss_reason_is_recorded_as_none(lead: Lead, pipeline: Pipeline) -> None:
    lead.lose(stage_named(pipeline, "Lost"), reason="   ", actor=ACTOR)
    lost = lead.collect_events()[-1]
    assert isinstance(lost, Lead.Lost) and lost.reason is None


def test_an_overlong_loss_reason_is_refused(lead: Lead, pipeline: Pipeline) -> None:
    refusal = attempt(
        lead, lambda: lead.lose(stage_named(pipeline, "Lost"), reason="x" * 501, actor=ACTOR)
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "reason"


@pytest.mark.parametrize("closed", ["Won", "Lost"])
@pytest.mark.parametrize("again", ["win", "lose"])
def test_a_closed_lead_is_neither_won_nor_lost_again(
    lead: Lead, pipeline: Pipeline, closed: str, again: str
) -> None:
    lead.move_to(stage_named(pipeline, closed), actor=ACTOR)
    lead.collect_events()
    if again == "win":
        refusal = attempt(lead, lambda: lead.win(stage_named(pipeline, "Won"), actor=ACTOR))
    else:
        refusal = attempt(
            lead, lambda: lead.lose(stage_named(pipeline, "Lost"), reason=None, actor=ACTOR)
        )
    assert isinstance(refusal, LeadClosedError)


def test_an_open_lead_cannot_be_reopened(lead: Lead, pipeline: Pipeline) -> None:
    refusal = attempt(lead, lambda: lead.reopen(stage_named(pipeline, "Contact"), actor=ACTOR))
    assert isinstance(refusal, LeadNotClosedError)


def test_reopening_a_lost_lead_moves_it_into_the_given_open_stage(
    lead: Lead, pipeline: Pipeline
) -> None:
    lead.lose(stage_named(pipeline, "Lost"), reason=None, actor=ACTOR)
    lead.reopen(stage_named(pipeline, "Contact"), actor=ACTOR)
    assert kinds(lead) == ["MovedToStage", "Lost", "MovedToStage", "Reopened"]
    assert (lead.stage_id, lead.status) == (stage_named(pipeline, "Contact").id, LeadStatus.OPEN)
    assert lead.version == 5
