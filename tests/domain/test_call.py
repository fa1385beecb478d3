"""Calls: status only forward, duplicate provider callbacks are no-ops, recordings once."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Mapper
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.call import RANK, Call
from domain.errors import InvalidValueError, RuleViolationError
from domain.values import Actor
from tests.domain.builders import replay, through_the_event_store

ACTOR = Actor("provider", "twilio")


def call() -> Call:
    return Call.start(
        organization_id=uuid4(),
        lead_id=uuid4(),
        direction="outbound",
        provider_type="twilio",
        from_number="+1 415 555 0100",
        to_number="+55 11 99999 0000",
        actor=ACTOR,
    )


def test_a_call_moves_forward_and_ignores_late_or_repeated_callbacks() -> None:
    c = call()
    c.progress("answered", actor=ACTOR, provider_event_id="cb1", provider_call_id="CA1")
    c.progress("ringing", actor=ACTOR, provider_event_id="cb2")  # late: ignored
    c.progress("answered", actor=ACTOR, provider_event_id="cb1")  # retry: ignored
    c.end(duration_seconds=42, outcome="completed", actor=ACTOR, provider_event_id="cb3")
    c.end(duration_seconds=99, outcome="failed", actor=ACTOR, provider_event_id="cb4")
    assert (c.status, c.duration_seconds, c.outcome, c.provider_call_id) == (
        "ended",
        42,
        "completed",
        "CA1",
    )
    names = [type(e).__name__ for e in c.collect_events()]
    assert names == ["Started", "Progressed", "Ended"]


def test_bad_values_are_refused_and_recordings_need_an_ended_call() -> None:
    c = call()
    with pytest.raises(InvalidValueError):
        c.progress("ended", actor=ACTOR)
    with pytest.raises(InvalidValueError):
        c.end(duration_seconds=-1, outcome="completed", actor=ACTOR)
    with pytest.raises(InvalidValueError):
        c.end(duration_seconds=1, outcome="great", actor=ACTOR)
    with pytest.raises(RuleViolationError):
        c.attach_recording("https://rec.example/1.mp3", actor=ACTOR)
    with pytest.raises(InvalidValueError):
        Call.start(
            organization_id=uuid4(),
            lead_id=uuid4(),
            direction="sideways",
            provider_type="telnyx",
            from_number="+1 415 555 0100",
            to_number="+1 415 555 0101",
            actor=ACTOR,
        )
    c.end(duration_seconds=3, outcome="completed", actor=ACTOR)
    c.attach_recording("https://rec.example/1.mp3", actor=ACTOR)
    c.attach_recording("https://rec.example/1.mp3", actor=ACTOR)
    with pytest.raises(InvalidValueError):
        c.attach_recording("http://insecure.example/2.mp3", actor=ACTOR)
    assert c.recordings == ["https://rec.example/1.mp3"]


CALLBACKS = st.lists(
    st.tuples(
        st.sampled_from(["ringing", "answered", "ended"]), st.sampled_from(["e1", "e2", "e3", None])
    ),
    max_size=10,
)


@settings(max_examples=150, deadline=None)
@given(CALLBACKS)
def test_any_sequence_of_callbacks_never_moves_a_call_backwards(callbacks: list[Any]) -> None:
    c = call()
    for status, event_id in callbacks:
        before = RANK[c.status]
        if status == "ended":
            c.end(duration_seconds=5, outcome="completed", actor=ACTOR, provider_event_id=event_id)
        else:
            c.progress(status, actor=ACTOR, provider_event_id=event_id)
        assert RANK[c.status] >= before
    events = list(c.collect_events())
    ids = [e.provider_event_id for e in events[1:] if e.provider_event_id]
    assert len(ids) == len(set(ids))  # a provider callback is recorded at most once
    assert replay(events) == c


def test_a_calls_events_rebuild_it_through_the_event_store(event_mapper: Mapper[UUID]) -> None:
    c = call()
    c.progress("ringing", actor=ACTOR, provider_event_id="a")
    c.end(duration_seconds=60, outcome="voicemail", actor=ACTOR)
    c.attach_recording("https://rec.example/x.mp3", actor=ACTOR, duration_seconds=59)
    assert replay(through_the_event_store(event_mapper, list(c.collect_events()))) == c
