"""Lead capture, details, assignment, notes and archiving."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from domain.errors import InvalidValueError, LeadArchivedError
from domain.lead import Lead
from domain.pipeline import Pipeline
from domain.values import Actor, LeadStatus
from tests.domain.builders import ACTOR, attempt, capture_lead, stage_named


def test_a_captured_lead_is_open_in_its_stage_with_cleaned_details(pipeline: Pipeline) -> None:
    owner = uuid4()
    lead = Lead.capture(
        organization_id=pipeline.organization_id,
        pipeline_id=pipeline.id,
        stage=stage_named(pipeline, "Contact"),
        details={"full_name": " Ada ", "email": "ADA@X.IO", "estimated_value": "10"},
        assignee_id=owner,
        actor=ACTOR,
    )
    (captured,) = lead.collect_events()
    assert isinstance(captured, Lead.Captured) and captured.actor == ACTOR
    assert captured.organization_id == lead.organization_id == pipeline.organization_id
    assert (lead.stage_id, lead.status, lead.version) == (
        stage_named(pipeline, "Contact").id,
        LeadStatus.OPEN,
        1,
    )
    assert (lead.full_name, lead.email, lead.estimated_value) == ("Ada", "ada@x.io", Decimal(10))
    assert (lead.phone, lead.company, lead.source, lead.custom_fields) == (None, None, None, {})
    assert (lead.assignee_id, lead.score, lead.archived, lead.notes) == (owner, None, False, 0)
    assert lead.stage_entered_at == captured.timestamp


def test_a_lead_keeps_the_id_it_is_given(pipeline: Pipeline) -> None:
    given = uuid4()
    lead = Lead.capture(
        organization_id=pipeline.organization_id,
        pipeline_id=pipeline.id,
        stage=stage_named(pipeline, "Lead"),
        details={"full_name": "Ada"},
        assignee_id=None,
        actor=ACTOR,
        id=given,
    )
    assert lead.id == given


@pytest.mark.parametrize("closed", ["Won", "Lost"])
def test_a_new_lead_starts_in_an_open_stage(pipeline: Pipeline, closed: str) -> None:
    with pytest.raises(InvalidValueError) as refusal:
        capture_lead(pipeline, stage=closed)
    assert refusal.value.field == "stage_id"


@pytest.mark.parametrize("details", [{}, {"full_name": None}, {"full_name": "  "}])
def test_a_new_lead_needs_a_full_name(pipeline: Pipeline, details: dict[str, Any]) -> None:
    with pytest.raises(InvalidValueError) as refusal:
        Lead.capture(
            organization_id=pipeline.organization_id,
            pipeline_id=pipeline.id,
            stage=stage_named(pipeline, "Lead"),
            details=details,
            assignee_id=None,
            actor=ACTOR,
        )
    assert refusal.value.field == "full_name"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("phone", "12"),
        ("estimated_value", "-5"),
        ("custom_fields", {"k": [1]}),
        ("company", "x" * 201),
        ("score", 10),
        ("status", "won"),
    ],
)
def test_invalid_or_unknown_details_are_rejected(
    pipeline: Pipeline, lead: Lead, field: str, value: Any
) -> None:
    with pytest.raises(InvalidValueError) as refusal:
        capture_lead(pipeline, **{field: value})
    assert refusal.value.field == field
    assert isinstance(
        attempt(lead, lambda: lead.change_details({field: value}, actor=ACTOR)), InvalidValueError
    )


def test_changing_details_records_the_changes_and_the_previous_values(lead: Lead) -> None:
    lead.change_details({"full_name": "Ada King", "email": "A@B.CO", "company": None}, actor=ACTOR)
    (changed,) = lead.collect_events()
    assert isinstance(changed, Lead.DetailsChanged)
    assert changed.changes == {"full_name": "Ada King", "email": "a@b.co"}
    assert changed.previous == {"full_name": "Ada Lovelace", "email": None}
    assert (lead.full_name, lead.email, lead.version) == ("Ada King", "a@b.co", 2)


def test_details_that_clean_to_the_current_values_record_nothing(pipeline: Pipeline) -> None:
    lead = capture_lead(pipeline, email="ada@x.io", estimated_value=5, custom_fields={"a": "b"})
    lead.change_details(
        {
            "full_name": " Ada Lovelace ",
            "email": "ADA@X.IO",
            "estimated_value": "5.00",
            "custom_fields": {"a": "b"},
            "phone": "",
        },
        actor=ACTOR,
    )
    lead.change_details({}, actor=ACTOR)
    assert lead.collect_events() == []
    assert lead.version == 1


def test_changing_a_custom_field_from_a_number_to_a_boolean_is_recorded(
    pipeline: Pipeline,
) -> None:
    lead = capture_lead(pipeline, custom_fields={"vip": 1})
    lead.change_details({"custom_fields": {"vip": True}}, actor=ACTOR)
    assert lead.custom_fields["vip"] is True


def test_assigning_records_who_had_the_lead_and_who_has_it_now(lead: Lead) -> None:
    first, second = uuid4(), uuid4()
    lead.assign(first, actor=ACTOR)
    lead.assign(first, actor=ACTOR)
    lead.assign(second, actor=ACTOR)
    lead.assign(None, actor=ACTOR)
    moves = [
        (e.from_user_id, e.to_user_id)
        for e in lead.collect_events()
        if isinstance(e, Lead.Assigned)
    ]
    assert moves == [(None, first), (first, second), (second, None)]
    assert lead.assignee_id is None and lead.version == 4


def test_adding_a_note_records_its_text_and_counts_it(lead: Lead) -> None:
    given = uuid4()
    assert lead.add_note("  called back  ", actor=ACTOR, note_id=given) == given
    other = lead.add_note("sent proposal", actor=ACTOR)
    first, second = lead.collect_events()
    assert isinstance(first, Lead.NoteAdded) and (first.note_id, first.text) == (
        given,
        "called back",
    )
    assert isinstance(second, Lead.NoteAdded) and second.note_id == other != given
    assert lead.notes == 2


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_001])
def test_an_empty_or_overlong_note_is_refused(lead: Lead, text: str) -> None:
    assert isinstance(attempt(lead, lambda: lead.add_note(text, actor=ACTOR)), InvalidValueError)


COMMANDS: dict[str, Callable[[Lead, Pipeline], object]] = {
    "change_details": lambda lead, p: lead.change_details({"full_name": "X"}, actor=ACTOR),
    "change_nothing": lambda lead, p: lead.change_details({}, actor=ACTOR),
    "move_to": lambda lead, p: lead.move_to(stage_named(p, "Contact"), actor=ACTOR),
    "stay": lambda lead, p: lead.move_to(stage_named(p, "Lead"), actor=ACTOR),
    "win": lambda lead, p: lead.win(stage_named(p, "Won"), actor=ACTOR),
    "lose": lambda lead, p: lead.lose(stage_named(p, "Lost"), reason=None, actor=ACTOR),
    "reopen": lambda lead, p: lead.reopen(stage_named(p, "Lead"), actor=ACTOR),
    "assign": lambda lead, p: lead.assign(uuid4(), actor=ACTOR),
    "add_note": lambda lead, p: lead.add_note("hello", actor=ACTOR),
    "archive": lambda lead, p: lead.archive(actor=ACTOR),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_archived_lead_refuses_every_later_command(
    lead: Lead, pipeline: Pipeline, command: str
) -> None:
    lead.archive(actor=Actor.system())
    (archived,) = lead.collect_events()
    assert isinstance(archived, Lead.Archived) and archived.actor == Actor.system()
    refusal = attempt(lead, lambda: COMMANDS[command](lead, pipeline))
    assert isinstance(refusal, LeadArchivedError)
    assert lead.version == 2
