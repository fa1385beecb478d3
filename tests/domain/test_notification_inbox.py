"""A member's inbox records reads and preferences once; mentions are parsed from a note's text;
notes stored before mentions existed still read."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidValueError
from domain.lead import Lead
from domain.mentions import MAX_MENTIONS, mentioned_ids
from domain.notification_inbox import NotificationInbox, inbox_id
from domain.values import Actor

ORG, USER = uuid4(), uuid4()
ME = Actor(kind="user", id=str(USER))


def inbox() -> NotificationInbox:
    return NotificationInbox.open(organization_id=ORG, user_id=USER, actor=ME)


def test_an_inbox_belongs_to_one_member_of_one_organization() -> None:
    made = inbox()
    assert made.id == inbox_id(ORG, USER) != inbox_id(uuid4(), USER)
    assert inbox_id(ORG, USER) == inbox_id(ORG, USER)


def test_a_read_covered_by_a_read_all_records_nothing() -> None:
    made = inbox()
    assert made.mark_all_read(10, actor=ME)
    assert not made.mark_all_read(9, actor=ME)
    assert not made.mark_read(uuid4(), 10, actor=ME)
    assert made.mark_read(uuid4(), 11, actor=ME)
    kinds = [type(e).__name__ for e in made.collect_events()]
    assert kinds == ["Opened", "AllMarkedRead", "MarkedRead"]


def test_preferences_name_known_kinds_with_both_channels_and_unchanged_ones_are_no_event() -> None:
    made = inbox()
    made.change_preferences({"task_due": {"in_app": True, "email": False}}, actor=ME)  # default
    made.change_preferences({"task_due": {"in_app": False, "email": True}}, actor=ME)
    assert made.preference("task_due").email and not made.preference("task_due").in_app
    for bad in (
        {"birthday": {"in_app": True, "email": True}},
        {"task_due": {"in_app": True}},
        {"task_due": {"in_app": 1, "email": True}},
    ):
        with pytest.raises(InvalidValueError):
            made.change_preferences(bad, actor=ME)
    kinds = [type(e).__name__ for e in made.collect_events()]
    assert kinds == ["Opened", "PreferencesChanged"]


def test_a_mention_is_the_id_in_brackets_each_once_in_order() -> None:
    a, b = uuid4(), uuid4()
    text = f"ask @[Ana]({a}) and @[Bia Souza]({b}), then @[Ana again]({a}); not @{a} nor [x]({b})"
    assert mentioned_ids(text) == [a, b]
    assert mentioned_ids("@[](%s)" % a) == []  # noqa: UP031 - an empty label is no mention


@given(
    ids=st.lists(st.uuids(), max_size=70),
    noise=st.text(alphabet=st.characters(blacklist_characters="@"), max_size=30),
)
def test_any_text_of_mentions_gives_back_its_distinct_ids(ids: list[UUID], noise: str) -> None:
    text = noise.join(f"@[Name {i}]({u})" for i, u in enumerate(ids))
    assert mentioned_ids(text) == list(dict.fromkeys(ids))[:MAX_MENTIONS]


def test_a_note_stored_before_mentions_reads_as_mentioning_nobody() -> None:
    state: dict[str, object] = {"note_id": uuid4(), "text": "old"}
    Lead.NoteAdded.upcast_v1_v2(state)
    assert state["mentions"] == []
