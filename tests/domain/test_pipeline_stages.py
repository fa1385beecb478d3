"""Renaming, recolouring, reordering and removing the stages of a pipeline."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import InvalidValueError, RuleViolationError, StageNotFoundError
from domain.pipeline import Pipeline
from domain.values import StageType
from tests.domain.builders import ACTOR, attempt


def test_renaming_a_stage_records_its_previous_name(pipeline: Pipeline) -> None:
    lead = pipeline.stages[0]
    pipeline.rename_stage(lead.id, " Inbox ", actor=ACTOR)
    (renamed,) = pipeline.collect_events()
    assert isinstance(renamed, Pipeline.StageRenamed)
    assert (renamed.stage_id, renamed.name, renamed.previous_name) == (lead.id, "Inbox", "Lead")
    assert pipeline.stage(lead.id).name == "Inbox"
    assert pipeline.stage(lead.id).color == lead.color


def test_renaming_a_stage_to_its_own_name_records_nothing(pipeline: Pipeline) -> None:
    pipeline.rename_stage(pipeline.stages[0].id, "  Lead ", actor=ACTOR)
    assert pipeline.collect_events() == []


def test_a_stage_may_change_only_the_case_of_its_name(pipeline: Pipeline) -> None:
    pipeline.rename_stage(pipeline.stages[0].id, "LEAD", actor=ACTOR)
    assert pipeline.stages[0].name == "LEAD"


@pytest.mark.parametrize("name", ["contact", "WON", "", "x" * 101])
def test_a_stage_cannot_take_another_stages_name_or_a_bad_one(
    pipeline: Pipeline, name: str
) -> None:
    refusal = attempt(
        pipeline, lambda: pipeline.rename_stage(pipeline.stages[0].id, name, actor=ACTOR)
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "name"


def test_recolouring_a_stage_records_its_previous_colour(pipeline: Pipeline) -> None:
    won = pipeline.stages[4]
    pipeline.recolour_stage(won.id, "#00FF00", actor=ACTOR)
    pipeline.recolour_stage(won.id, "#00ff00", actor=ACTOR)
    (recoloured,) = pipeline.collect_events()
    assert isinstance(recoloured, Pipeline.StageRecoloured)
    assert (recoloured.color, recoloured.previous_color) == ("#00ff00", won.color)
    assert pipeline.stage(won.id).color == "#00ff00"


def test_a_bad_colour_is_refused(pipeline: Pipeline) -> None:
    refusal = attempt(
        pipeline, lambda: pipeline.recolour_stage(pipeline.stages[0].id, "#12345", actor=ACTOR)
    )
    assert isinstance(refusal, InvalidValueError) and refusal.field == "color"


def test_an_unknown_stage_is_neither_renamed_nor_recoloured_nor_removed(pipeline: Pipeline) -> None:
    unknown = uuid4()
    for command in (
        lambda: pipeline.rename_stage(unknown, "Other", actor=ACTOR),
        lambda: pipeline.recolour_stage(unknown, "#000000", actor=ACTOR),
        lambda: pipeline.remove_stage(unknown, leads_moved_to=None, actor=ACTOR),
    ):
        assert isinstance(attempt(pipeline, command), StageNotFoundError)


def test_reordering_records_the_new_and_previous_order(pipeline: Pipeline) -> None:
    before = [s.id for s in pipeline.stages]
    after = list(reversed(before))
    pipeline.reorder(after, actor=ACTOR)
    pipeline.reorder(after, actor=ACTOR)
    (reordered,) = pipeline.collect_events()
    assert isinstance(reordered, Pipeline.StagesReordered)
    assert (reordered.stage_ids, reordered.previous_stage_ids) == (after, before)
    assert [s.id for s in pipeline.stages] == after


@pytest.mark.parametrize("change", ["drop", "repeat", "add", "swap_in_unknown"])
def test_a_reorder_must_list_every_stage_once(pipeline: Pipeline, change: str) -> None:
    ids = [s.id for s in pipeline.stages]
    given = {
        "drop": ids[1:],
        "repeat": [*ids[:-1], ids[0]],
        "add": [*ids, uuid4()],
        "swap_in_unknown": [*ids[:-1], uuid4()],
    }[change]
    refusal = attempt(pipeline, lambda: pipeline.reorder(given, actor=ACTOR))
    assert isinstance(refusal, InvalidValueError) and refusal.field == "stage_ids"


def test_removing_a_stage_records_where_its_leads_go(pipeline: Pipeline) -> None:
    contact, lead = pipeline.stages[1], pipeline.stages[0]
    pipeline.remove_stage(contact.id, leads_moved_to=lead.id, actor=ACTOR)
    pipeline.remove_stage(pipeline.stages[-1].id, leads_moved_to=None, actor=ACTOR)
    removed, removed_empty = pipeline.collect_events()
    assert isinstance(removed, Pipeline.StageRemoved)
    assert (removed.stage_id, removed.leads_moved_to) == (contact.id, lead.id)
    assert isinstance(removed_empty, Pipeline.StageRemoved) and removed_empty.leads_moved_to is None
    assert [s.name for s in pipeline.stages] == ["Lead", "Proposal", "Negotiation", "Won"]


def test_leads_of_a_removed_stage_go_to_another_existing_stage(pipeline: Pipeline) -> None:
    contact = pipeline.stages[1].id
    same = attempt(
        pipeline, lambda: pipeline.remove_stage(contact, leads_moved_to=contact, actor=ACTOR)
    )
    unknown = attempt(
        pipeline, lambda: pipeline.remove_stage(contact, leads_moved_to=uuid4(), actor=ACTOR)
    )
    assert isinstance(same, InvalidValueError)
    assert isinstance(unknown, StageNotFoundError)


def test_the_last_open_stage_is_not_removed(pipeline: Pipeline) -> None:
    for stage in [s for s in pipeline.stages if s.stage_type is StageType.OPEN][1:]:
        pipeline.remove_stage(stage.id, leads_moved_to=None, actor=ACTOR)
    last_open = pipeline.first_stage_of(StageType.OPEN).id
    refusal = attempt(
        pipeline, lambda: pipeline.remove_stage(last_open, leads_moved_to=None, actor=ACTOR)
    )
    assert isinstance(refusal, RuleViolationError)
    assert [s.name for s in pipeline.stages] == ["Lead", "Won", "Lost"]
