"""Notes stored before mentions existed (Lead.NoteAdded v1) still read: they mention nobody."""

from __future__ import annotations

import json
from dataclasses import replace
from uuid import uuid4

from domain.lead import Lead
from domain.organization import Organization
from domain.pipeline import Pipeline
from domain.values import Actor
from interfaces.services import Services


def test_a_note_stored_before_mentions_existed_still_reads_as_mentioning_nobody(
    services: Services,
) -> None:
    actor = Actor(kind="user", id="author")
    org = Organization.register(name="Old", owner_user_id=uuid4(), actor=actor)
    pipeline = Pipeline.create_default(organization_id=org.id, actor=actor)
    lead = Lead.capture(
        organization_id=org.id,
        pipeline_id=pipeline.id,
        stage=pipeline.stages[0].ref,
        details={"full_name": "Old Note"},
        assignee_id=None,
        actor=actor,
    )
    lead.add_note("from 2025", actor=actor)
    services.app.commit(org, pipeline, lead)
    mapper = services.app.mapper
    [stored] = services.app.recorder.select_events(lead.id, gt=1)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2 and state.pop("mentions") == []
    v1 = replace(stored, state=json.dumps(state).encode())  # as stored before v2
    note = mapper.to_domain_event(v1)
    assert isinstance(note, Lead.NoteAdded)
    assert (note.text, note.mentions) == ("from 2025", [])
