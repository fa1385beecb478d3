"""A stage's win probability: set in percent, or None to derive it from the stage's place."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Mapper

from domain.errors import InvalidValueError
from domain.pipeline import Pipeline
from domain.values import StageType
from tests.domain.builders import ACTOR, attempt, default_pipeline, replay, through_the_event_store


def test_a_new_pipeline_derives_every_win_probability_from_the_stage_places(
    pipeline: Pipeline,
) -> None:
    assert [s.win_probability for s in pipeline.stages] == [None] * 6


def test_setting_a_win_probability_records_the_previous_one(pipeline: Pipeline) -> None:
    proposal = pipeline.stages[2]
    pipeline.set_stage_win_probability(proposal.id, 40, actor=ACTOR)
    pipeline.set_stage_win_probability(proposal.id, 65, actor=ACTOR)
    first, second = pipeline.collect_events()
    assert isinstance(first, Pipeline.StageWinProbabilitySet)
    assert isinstance(second, Pipeline.StageWinProbabilitySet)
    assert (second.stage_id, second.win_probability, second.previous_win_probability) == (
        proposal.id,
        65,
        40,
    )
    assert (first.previous_win_probability, first.actor) == (None, ACTOR)
    assert second.organization_id == pipeline.organization_id
    assert pipeline.stage(proposal.id).win_probability == 65
    assert pipeline.stage(proposal.id).name == proposal.name


def test_a_win_probability_set_to_none_is_derived_from_the_place_again(pipeline: Pipeline) -> None:
    lead = pipeline.stages[0].id
    pipeline.set_stage_win_probability(lead, 0, actor=ACTOR)
    pipeline.set_stage_win_probability(lead, None, actor=ACTOR)
    _, reset = pipeline.collect_events()
    assert isinstance(reset, Pipeline.StageWinProbabilitySet)
    assert (reset.win_probability, reset.previous_win_probability) == (None, 0)
    assert pipeline.stage(lead).win_probability is None


def test_setting_the_same_win_probability_again_records_nothing(pipeline: Pipeline) -> None:
    contact, won = pipeline.stages[1].id, pipeline.stages[4].id
    pipeline.set_stage_win_probability(contact, None, actor=ACTOR)
    pipeline.set_stage_win_probability(contact, 30, actor=ACTOR)
    pipeline.set_stage_win_probability(contact, 30, actor=ACTOR)
    pipeline.set_stage_win_probability(won, 100, actor=ACTOR)
    pipeline.set_stage_win_probability(won, 100, actor=ACTOR)
    events = pipeline.collect_events()
    assert all(isinstance(e, Pipeline.StageWinProbabilitySet) for e in events)
    assert [vars(e)["win_probability"] for e in events] == [30, 100]


@pytest.mark.parametrize("value", [-1, 101, 1000, True, 50.0, "50"])
def test_a_win_probability_outside_0_to_100_or_not_a_whole_number_is_refused(
    pipeline: Pipeline, value: Any
) -> None:
    stage = pipeline.stages[1].id
    refusal = attempt(
        pipeline, lambda: pipeline.set_stage_win_probability(stage, value, actor=ACTOR)
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "win_probability"


@pytest.mark.parametrize(("kind", "allowed", "refused"), [("won", 100, 99), ("lost", 0, 1)])
def test_a_won_stage_is_certain_and_a_lost_stage_hopeless(
    pipeline: Pipeline, kind: str, allowed: int, refused: int
) -> None:
    stage = pipeline.first_stage_of(StageType(kind)).id
    refusal = attempt(
        pipeline, lambda: pipeline.set_stage_win_probability(stage, refused, actor=ACTOR)
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "win_probability"
    assert f"{kind} stage" in refusal.message
    pipeline.set_stage_win_probability(stage, allowed, actor=ACTOR)
    assert pipeline.stage(stage).win_probability == allowed


def test_a_stage_may_be_added_with_its_win_probability(pipeline: Pipeline) -> None:
    demo = pipeline.add_stage(
        name="Demo", color="#123456", stage_type=StageType.OPEN, actor=ACTOR, win_probability=35
    )
    refusal = attempt(
        pipeline,
        lambda: pipeline.add_stage(
            name="Closed",
            color="#123456",
            stage_type=StageType.WON,
            actor=ACTOR,
            win_probability=80,
        ),
    )
    (added,) = pipeline.collect_events()
    assert isinstance(added, Pipeline.StageAdded) and added.win_probability == 35
    assert demo.win_probability == 35
    assert isinstance(refusal, InvalidValueError) and refusal.field == "win_probability"


def test_win_probability_events_survive_the_event_store(event_mapper: Mapper[UUID]) -> None:
    pipeline = default_pipeline()
    pipeline.add_stage(
        name="Demo", color="#123456", stage_type=StageType.OPEN, actor=ACTOR, win_probability=35
    )
    pipeline.set_stage_win_probability(pipeline.stages[1].id, 20, actor=ACTOR)
    pipeline.set_stage_win_probability(pipeline.stages[1].id, None, actor=ACTOR)
    events = pipeline.collect_events()
    decoded = through_the_event_store(event_mapper, events)
    assert decoded == events
    assert replay(decoded) == pipeline


def test_pipeline_events_stored_before_win_probabilities_existed_still_decode(
    event_mapper: Mapper[UUID],
) -> None:
    pipeline = default_pipeline()
    pipeline.add_stage(name="Demo", color="#123456", stage_type=StageType.OPEN, actor=ACTOR)
    created, added = (as_stored_before(event_mapper, e) for e in pipeline.collect_events())
    assert "win_probability" not in str(created.state) + str(added.state)

    old = [event_mapper.to_domain_event(stored) for stored in (created, added)]
    rebuilt = replay(old)

    assert isinstance(rebuilt, Pipeline)
    assert [s.win_probability for s in rebuilt.stages] == [None] * 7
    assert rebuilt.stages == pipeline.stages
    assert old[1].win_probability is None  # type: ignore[attr-defined]


def as_stored_before(mapper: Mapper[UUID], event: Any) -> Any:
    """The event as the store held it before stages had a win probability: no such keys."""
    stored = mapper.to_stored_event(event)
    state = mapper.transcoder.decode(stored.state)
    state.pop("win_probability", None)
    for stage in state.get("stages", []):
        del stage["win_probability"]
    return dataclasses.replace(stored, state=mapper.transcoder.encode(state))
