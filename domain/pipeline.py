"""The Pipeline aggregate: an organization's ordered, coloured stages.

Invariants: stage names are unique (case-insensitive); colours are #rrggbb; a win probability is
0..100 or None (derived from the stage's place), and 100 for won, 0 for lost stages; a reorder is a
permutation of the current stages; at least one open stage always remains; a removed stage's
leads go to another stage of the same pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4, uuid5

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, RuleViolationError, StageNotFoundError
from domain.lead import StageRef
from domain.values import Actor, StageType

MAX_STAGES = 50
DEFAULT_STAGES = (
    ("Lead", "#64748b", StageType.OPEN),
    ("Contact", "#3b82f6", StageType.OPEN),
    ("Proposal", "#8b5cf6", StageType.OPEN),
    ("Negotiation", "#f59e0b", StageType.OPEN),
    ("Won", "#22c55e", StageType.WON),
    ("Lost", "#ef4444", StageType.LOST),
)


def default_pipeline_id(organization_id: UUID) -> UUID:
    """Each organization's default pipeline has an id derived from it: no lookup needed."""
    return uuid5(organization_id, "pipeline:default")


@dataclass(frozen=True)
class Stage:
    id: UUID
    name: str
    color: str
    stage_type: StageType
    win_probability: int | None = None  # None: derived from the stage's place

    @property
    def ref(self) -> StageRef:
        return StageRef(self.id, self.stage_type)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "color": self.color,
            "stage_type": str(self.stage_type),
            "win_probability": self.win_probability,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Stage:
        # dicts stored before win probabilities existed have no such key
        kind = StageType(d["stage_type"])
        return cls(d["id"], d["name"], d["color"], kind, d.get("win_probability"))


class Pipeline(TenantAggregate):
    """An ordered list of stages a lead moves through."""

    name: str
    stages: list[Stage]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Created(TenantAggregate.Created):
        name: str
        stages: list[dict[str, Any]]

        def apply(self, pipeline: Pipeline) -> None:
            pipeline.organization_id = self.organization_id
            pipeline.name = self.name
            pipeline.stages = [Stage.from_dict(s) for s in self.stages]

    class StageAdded(TenantAggregate.Event):
        stage_id: UUID
        name: str
        color: str
        stage_type: str
        position: int
        win_probability: int | None = None  # absent from events stored before it existed

        def apply(self, pipeline: Pipeline) -> None:
            kind = StageType(self.stage_type)
            stage = Stage(self.stage_id, self.name, self.color, kind, self.win_probability)
            pipeline.stages.insert(self.position, stage)

    class StageRenamed(TenantAggregate.Event):
        stage_id: UUID
        name: str
        previous_name: str

        def apply(self, pipeline: Pipeline) -> None:
            pipeline._replace(self.stage_id, name=self.name)

    class StageRecoloured(TenantAggregate.Event):
        stage_id: UUID
        color: str
        previous_color: str

        def apply(self, pipeline: Pipeline) -> None:
            pipeline._replace(self.stage_id, color=self.color)

    class StageWinProbabilitySet(TenantAggregate.Event):
        stage_id: UUID
        win_probability: int | None
        previous_win_probability: int | None

        def apply(self, pipeline: Pipeline) -> None:
            pipeline._replace(self.stage_id, win_probability=self.win_probability)

    class StagesReordered(TenantAggregate.Event):
        stage_ids: list[UUID]
        previous_stage_ids: list[UUID]

        def apply(self, pipeline: Pipeline) -> None:
            by_id = {s.id: s for s in pipeline.stages}
            pipeline.stages = [by_id[i] for i in self.stage_ids]

    class StageRemoved(TenantAggregate.Event):
        stage_id: UUID
        leads_moved_to: UUID | None

        def apply(self, pipeline: Pipeline) -> None:
            pipeline.stages = [s for s in pipeline.stages if s.id != self.stage_id]

    @classmethod
    def create_default(cls, *, organization_id: UUID, actor: Actor) -> Pipeline:
        stages = [
            Stage(uuid5(organization_id, f"stage:{name}"), name, color, kind).as_dict()
            for name, color, kind in DEFAULT_STAGES
        ]
        return cls._create(
            cls.Created,
            id=default_pipeline_id(organization_id),
            organization_id=organization_id,
            actor=actor,
            name="Sales",
            stages=stages,
        )

    def stage(self, stage_id: UUID) -> Stage:
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise StageNotFoundError(stage_id)

    def first_stage_of(self, kind: StageType) -> Stage:
        for stage in self.stages:
            if stage.stage_type is kind:
                return stage
        raise RuleViolationError(f"the pipeline has no {kind} stage")

    def add_stage(
        self,
        *,
        name: str,
        color: str,
        stage_type: StageType,
        actor: Actor,
        position: int | None = None,
        stage_id: UUID | None = None,
        win_probability: int | None = None,
    ) -> Stage:
        if len(self.stages) >= MAX_STAGES:
            raise RuleViolationError(f"a pipeline has at most {MAX_STAGES} stages")
        name = self._unique_name(name)
        place = len(self.stages) if position is None else position
        if not 0 <= place <= len(self.stages):
            raise InvalidValueError("position", f"must be between 0 and {len(self.stages)}")
        new_id = stage_id or uuid4()
        if any(s.id == new_id for s in self.stages):
            raise InvalidValueError("stage_id", f"stage {new_id} already exists")
        chance = v.win_probability(win_probability, stage_type)
        self.trigger_event(
            self.StageAdded,
            stage_id=new_id,
            name=name,
            color=v.color(color),
            stage_type=str(stage_type),
            position=place,
            win_probability=chance,
            actor=actor,
        )
        return self.stage(new_id)

    def rename_stage(self, stage_id: UUID, name: str, *, actor: Actor) -> None:
        stage = self.stage(stage_id)
        name = self._unique_name(name, ignore=stage_id)
        if name != stage.name:
            self.trigger_event(
                self.StageRenamed,
                stage_id=stage_id,
                name=name,
                previous_name=stage.name,
                actor=actor,
            )

    def recolour_stage(self, stage_id: UUID, color: str, *, actor: Actor) -> None:
        stage = self.stage(stage_id)
        new = v.color(color)
        if new != stage.color:
            self.trigger_event(
                self.StageRecoloured,
                stage_id=stage_id,
                color=new,
                previous_color=stage.color,
                actor=actor,
            )

    def set_stage_win_probability(
        self, stage_id: UUID, win_probability: int | None, *, actor: Actor
    ) -> None:
        """Fix a stage's chance of winning in percent; None derives it from its place again."""
        stage = self.stage(stage_id)
        new = v.win_probability(win_probability, stage.stage_type)
        if new != stage.win_probability:
            self.trigger_event(
                self.StageWinProbabilitySet,
                stage_id=stage_id,
                win_probability=new,
                previous_win_probability=stage.win_probability,
                actor=actor,
            )

    def reorder(self, stage_ids: list[UUID], *, actor: Actor) -> None:
        current = [s.id for s in self.stages]
        if len(stage_ids) != len(current) or set(stage_ids) != set(current):
            raise InvalidValueError("stage_ids", "must list every stage of the pipeline once")
        if stage_ids != current:
            self.trigger_event(
                self.StagesReordered,
                stage_ids=list(stage_ids),
                previous_stage_ids=current,
                actor=actor,
            )

    def remove_stage(self, stage_id: UUID, *, leads_moved_to: UUID | None, actor: Actor) -> None:
        stage = self.stage(stage_id)
        if leads_moved_to is not None:
            if leads_moved_to == stage_id:
                raise InvalidValueError("move_leads_to", "must be another stage")
            self.stage(leads_moved_to)
        open_left = [s for s in self.stages if s.stage_type is StageType.OPEN and s.id != stage.id]
        if not open_left:
            raise RuleViolationError("a pipeline keeps at least one open stage")
        self.trigger_event(
            self.StageRemoved,
            stage_id=stage_id,
            leads_moved_to=leads_moved_to,
            actor=actor,
        )

    def _unique_name(self, name: str, ignore: UUID | None = None) -> str:
        cleaned = v.text("name", name, max_length=100)
        taken = {s.name.casefold() for s in self.stages if s.id != ignore}
        if cleaned.casefold() in taken:
            raise InvalidValueError("name", f"a stage named {cleaned!r} already exists")
        return cleaned

    def _replace(self, stage_id: UUID, **changes: Any) -> None:
        self.stages = [
            Stage(**{**s.__dict__, **changes}) if s.id == stage_id else s for s in self.stages
        ]
