"""The default pipeline, and adding stages to it."""

from __future__ import annotations

from uuid import uuid4, uuid5

import pytest

from domain.errors import InvalidValueError, RuleViolationError, StageNotFoundError
from domain.pipeline import MAX_STAGES, Pipeline, default_pipeline_id
from domain.values import StageType
from tests.domain.builders import ACTOR, attempt, default_pipeline


def test_the_default_pipeline_has_four_open_stages_then_won_and_lost() -> None:
    org = uuid4()
    pipeline = default_pipeline(org)
    (created,) = pipeline.collect_events()
    assert isinstance(created, Pipeline.Created) and created.actor == ACTOR
    assert (pipeline.id, pipeline.organization_id, pipeline.name) == (
        default_pipeline_id(org),
        org,
        "Sales",
    )
    assert [(s.name, s.stage_type) for s in pipeline.stages] == [
        ("Lead", StageType.OPEN),
        ("Contact", StageType.OPEN),
        ("Proposal", StageType.OPEN),
        ("Negotiation", StageType.OPEN),
        ("Won", StageType.WON),
        ("Lost", StageType.LOST),
    ]
    assert all(s.color.startswith("#") and len(s.color) == 7 for s in pipeline.stages)


def test_default_stage_ids_are_derived_from_the_organization() -> None:
    org = uuid4()
    assert [s.id for s in default_pipeline(org).stages] == [
        s.id for s in default_pipeline(org).stages
    ]
    assert default_pipeline(org).stages[0].id == uuid5(org, "stage:Lead")
    assert default_pipeline().stages[0].id != default_pipeline().stages[0].id


def test_the_first_stage_of_each_type_is_found(pipeline: Pipeline) -> None:
    assert pipeline.first_stage_of(StageType.OPEN).name == "Lead"
    assert pipeline.first_stage_of(StageType.WON).ref == pipeline.stages[4].ref
    with pytest.raises(StageNotFoundError):
        pipeline.stage(uuid4())


def test_a_stage_is_added_at_the_end_by_default(pipeline: Pipeline) -> None:
    stage = pipeline.add_stage(
        name=" Demo ", color="#ABCDEF", stage_type=StageType.OPEN, actor=ACTOR
    )
    (added,) = pipeline.collect_events()
    assert isinstance(added, Pipeline.StageAdded)
    assert (added.stage_id, added.name, added.color, added.stage_type, added.position) == (
        stage.id,
        "Demo",
        "#abcdef",
        "open",
        6,
    )
    assert pipeline.stages[-1] == stage


@pytest.mark.parametrize("position", [0, 3, 6])
def test_a_stage_is_added_at_any_position_from_first_to_last(
    pipeline: Pipeline, position: int
) -> None:
    given = uuid4()
    stage = pipeline.add_stage(
        name="Demo",
        color="#000000",
        stage_type=StageType.LOST,
        actor=ACTOR,
        position=position,
        stage_id=given,
    )
    assert pipeline.stages[position] == stage
    assert stage.id == given and stage.stage_type is StageType.LOST


@pytest.mark.parametrize("position", [-1, 7])
def test_a_position_outside_the_pipeline_is_refused(pipeline: Pipeline, position: int) -> None:
    refusal = attempt(
        pipeline,
        lambda: pipeline.add_stage(
            name="Demo", color="#000000", stage_type=StageType.OPEN, actor=ACTOR, position=position
        ),
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "position"


@pytest.mark.parametrize(
    ("name", "color"),
    [
        ("lead", "#000000"),
        (" WON ", "#000000"),
        ("", "#000000"),
        ("x" * 101, "#000000"),
        ("Demo", "red"),
    ],
)
def test_a_stage_with_a_taken_or_bad_name_or_a_bad_colour_is_refused(
    pipeline: Pipeline, name: str, color: str
) -> None:
    refusal = attempt(
        pipeline,
        lambda: pipeline.add_stage(name=name, color=color, stage_type=StageType.OPEN, actor=ACTOR),
    )
    assert isinstance(refusal, InvalidValueError)


def test_a_pipeline_has_at_most_max_stages(pipeline: Pipeline) -> None:
    for i in range(MAX_STAGES - len(pipeline.stages)):
        pipeline.add_stage(name=f"S{i}", color="#000000", stage_type=StageType.OPEN, actor=ACTOR)
    refusal = attempt(
        pipeline,
        lambda: pipeline.add_stage(
            name="One more", color="#000000", stage_type=StageType.OPEN, actor=ACTOR
        ),
    )
    assert isinstance(refusal, RuleViolationError)
    assert len(pipeline.stages) == MAX_STAGES


def test_a_stage_is_not_added_with_the_id_of_an_existing_stage(pipeline: Pipeline) -> None:
    taken = pipeline.stages[0].id
    refusal = attempt(
        pipeline,
        lambda: pipeline.add_stage(
            name="Demo", color="#000000", stage_type=StageType.OPEN, actor=ACTOR, stage_id=taken
        ),
    )
    assert isinstance(refusal, InvalidValueError)
