"""Builders shared by the domain tests: an actor, a default pipeline, a lead captured in it."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper

from domain.errors import DomainError
from domain.lead import Lead, StageRef
from domain.pipeline import Pipeline
from domain.values import Actor

ACTOR = Actor(kind="user", id="u1")


def default_pipeline(organization_id: UUID | None = None) -> Pipeline:
    return Pipeline.create_default(organization_id=organization_id or uuid4(), actor=ACTOR)


def stage_named(pipeline: Pipeline, name: str) -> StageRef:
    return next(s.ref for s in pipeline.stages if s.name == name)


def new_lead(pipeline: Pipeline, stage: str = "Lead", **details: Any) -> Lead:
    """A lead just captured in `stage` of the pipeline, its creation event still pending."""
    return Lead.capture(
        organization_id=pipeline.organization_id,
        pipeline_id=pipeline.id,
        stage=stage_named(pipeline, stage),
        details={"full_name": "Ada Lovelace", **details},
        assignee_id=None,
        actor=ACTOR,
    )


def capture_lead(pipeline: Pipeline, stage: str = "Lead", **details: Any) -> Lead:
    """A lead in `stage` of the pipeline, as if saved: its creation event is collected."""
    lead = new_lead(pipeline, stage, **details)
    lead.collect_events()
    return lead


def replay(events: Sequence[Any]) -> object:
    return functools.reduce(lambda agg, e: e.mutate(agg), events, None)


def through_the_event_store(mapper: Mapper[UUID], events: Sequence[Any]) -> list[Any]:
    """Encode each event as the store would, then decode it again."""
    return [mapper.to_domain_event(mapper.to_stored_event(e)) for e in events]


def attempt(aggregate: Aggregate, command: Callable[[], object]) -> DomainError | None:
    """Run a command; if the domain refuses it, check that nothing changed at all."""
    # one level is enough: aggregates hold immutable values in plain dicts and lists
    before = {name: copy.copy(value) for name, value in vars(aggregate).items()}
    try:
        command()
    except DomainError as refusal:
        assert vars(aggregate) == before, f"{refusal!r} left the aggregate changed"
        return refusal
    return None
