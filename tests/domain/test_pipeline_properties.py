"""Properties of any sequence of stage edits: the pipeline stays well formed and replayable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import Mapper
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from domain.pipeline import MAX_STAGES
from domain.values import StageType
from tests.domain.builders import ACTOR, attempt, default_pipeline, replay, through_the_event_store

FRESH_NAMES = st.integers(0, 9).flatmap(lambda n: st.sampled_from([f"Stage {n}", f" STAGE {n}"]))
NAMES = FRESH_NAMES | st.sampled_from(["Lead", "lead", " WON ", "", "x" * 101])
COLOURS = st.sampled_from(["#000000", "#ABCDEF", "#abcdef", "#123", "red"])
PICK = st.integers(min_value=0, max_value=100)
CHANCES = st.none() | st.sampled_from([0, 100]) | st.integers(-5, 105)


class StageEdits(RuleBasedStateMachine):
    """Random stage edits, each either applied or refused; the events replay to the pipeline."""

    mapper: Mapper[UUID]

    def __init__(self) -> None:
        super().__init__()
        self.pipeline = default_pipeline()
        self.events: list[Any] = list(self.pipeline.collect_events())

    def run(self, command: Callable[[], object]) -> None:
        refusal = attempt(self.pipeline, command)
        new = self.pipeline.collect_events()
        assert refusal is None or new == []
        self.events.extend(new)

    def pick(self, index: int) -> UUID:
        return self.pipeline.stages[index % len(self.pipeline.stages)].id

    @rule(
        name=NAMES,
        color=COLOURS,
        kind=st.sampled_from(StageType),
        position=st.none() | st.integers(-1, 12),
    )
    def add_stage(self, name: str, color: str, kind: StageType, position: int | None) -> None:
        self.run(
            lambda: self.pipeline.add_stage(
                name=name, color=color, stage_type=kind, actor=ACTOR, position=position
            )
        )

    @rule(index=PICK, name=NAMES)
    def rename_stage(self, index: int, name: str) -> None:
        self.run(lambda: self.pipeline.rename_stage(self.pick(index), name, actor=ACTOR))

    @rule(index=PICK, color=COLOURS)
    def recolour_stage(self, index: int, color: str) -> None:
        self.run(lambda: self.pipeline.recolour_stage(self.pick(index), color, actor=ACTOR))

    @rule(index=PICK, chance=CHANCES)
    def set_stage_win_probability(self, index: int, chance: int | None) -> None:
        stage_id = self.pick(index)
        self.run(lambda: self.pipeline.set_stage_win_probability(stage_id, chance, actor=ACTOR))

    @rule(data=st.data(), spoil=st.sampled_from([None, "drop", "repeat", "unknown"]))
    def reorder(self, data: st.DataObject, spoil: str | None) -> None:
        ids = data.draw(st.permutations([s.id for s in self.pipeline.stages]))
        if spoil == "drop":
            ids = ids[1:]
        elif spoil == "repeat":
            ids = [*ids[:-1], ids[0]]
        elif spoil == "unknown":
            ids = [*ids, uuid4()]
        self.run(lambda: self.pipeline.reorder(ids, actor=ACTOR))

    @rule(index=PICK, into=st.none() | st.just("unknown") | PICK)
    def remove_stage(self, index: int, into: int | str | None) -> None:
        stage_id = self.pick(index)
        moved_to = uuid4() if into == "unknown" else None
        if isinstance(into, int):
            moved_to = self.pick(into)
        self.run(lambda: self.pipeline.remove_stage(stage_id, leads_moved_to=moved_to, actor=ACTOR))

    @invariant()
    def stages_are_unique_and_an_open_one_remains(self) -> None:
        stages = self.pipeline.stages
        assert len({s.id for s in stages}) == len(stages) <= MAX_STAGES
        assert len({s.name.casefold() for s in stages}) == len(stages)
        assert any(s.stage_type is StageType.OPEN for s in stages)
        fixed = {StageType.WON: {None, 100}, StageType.LOST: {None, 0}}
        for s in stages:
            chances = fixed.get(s.stage_type, {None, *range(101)})
            assert s.win_probability in chances
        assert self.pipeline.version == len(self.events)

    def teardown(self) -> None:
        assert replay(self.events) == self.pipeline
        assert replay(through_the_event_store(self.mapper, self.events)) == self.pipeline


def test_any_sequence_of_stage_edits_keeps_the_pipeline_well_formed_and_replayable(
    event_mapper: Mapper[UUID],
) -> None:
    StageEdits.mapper = event_mapper
    run_state_machine_as_test(
        StageEdits, settings=settings(max_examples=150, stateful_step_count=25, deadline=None)
    )
