"""Lead events survive the event store's mapper: Actor, Decimal, UUID, datetime and dicts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper

from domain.errors import InvalidValueError
from domain.lead import Lead
from domain.pipeline import Pipeline
from domain.values import Actor
from tests.domain.builders import ACTOR, new_lead, replay, stage_named, through_the_event_store


def a_full_history(pipeline: Pipeline) -> tuple[Lead, list[Any]]:
    lead = new_lead(pipeline, email="ada@x.io", estimated_value="99.9", custom_fields={"n": 1.5})
    visitor = Actor(kind="api_key", id="k1", ip="203.0.113.9", user_agent="curl/8")
    lead.change_details({"estimated_value": 120, "custom_fields": {"vip": True}}, actor=visitor)
    lead.assign(uuid4(), actor=ACTOR)
    lead.add_note("called", actor=ACTOR)
    lead.move_to(stage_named(pipeline, "Won"), actor=ACTOR)
    lead.reopen(stage_named(pipeline, "Contact"), actor=ACTOR)
    lead.lose(stage_named(pipeline, "Lost"), reason="price", actor=Actor.system())
    lead.archive(actor=ACTOR)
    return lead, list(lead.collect_events())


def test_every_kind_of_lead_event_is_decoded_as_it_was_recorded(
    pipeline: Pipeline, event_mapper: Mapper[UUID]
) -> None:
    _, events = a_full_history(pipeline)
    decoded = through_the_event_store(event_mapper, events)
    assert {type(e).__name__ for e in decoded} == {
        "Captured", "DetailsChanged", "Assigned", "NoteAdded", "MovedToStage", "Won",
        "Reopened", "Lost", "Archived",
    }  # fmt: skip
    assert decoded == events
    assert decoded[1].actor == Actor(kind="api_key", id="k1", ip="203.0.113.9", user_agent="curl/8")
    assert decoded[1].changes["estimated_value"] == Decimal("120.00")


def test_decoded_lead_events_rebuild_an_equal_lead(
    pipeline: Pipeline, event_mapper: Mapper[UUID]
) -> None:
    lead, events = a_full_history(pipeline)
    assert replay(events) == lead
    assert replay(through_the_event_store(event_mapper, events)) == lead


@pytest.mark.parametrize(
    "custom", [{"_type_": "decimal_str", "_data_": "1"}, {"_type_": "x", "_data_": "y"}]
)
def test_custom_fields_shaped_like_an_encoded_object_are_refused_before_they_reach_the_store(
    pipeline: Pipeline, custom: dict[str, Any]
) -> None:
    # the store's JSON transcoder would read such a dict back as an encoded object
    with pytest.raises(InvalidValueError):
        new_lead(pipeline, custom_fields=custom)
