"""A task: created, edited, reassigned, closed and reopened by the rules; one reminder per due
time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest

from domain.errors import InvalidValueError
from domain.task import Task, TaskClosedError, TaskNotClosedError
from domain.values import Actor
from tests.domain.builders import replay

ACTOR = Actor("user", str(uuid4()))
TIMERS = Actor("system", "timers")
DUE = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def new_task(**fields: object) -> Task:
    values: dict[str, object] = {
        "organization_id": uuid4(),
        "title": " Call back ",
        "due_at": DUE,
        "assignee_id": uuid4(),
        "actor": ACTOR,
    } | fields
    task = Task.create(**values)  # type: ignore[arg-type]
    task.collect_events()
    return task


def test_a_new_task_is_open_with_clean_fields_and_its_creator() -> None:
    task = new_task(priority="high", kind="call", notes="  ")
    assert (task.title, task.notes, task.priority, task.kind) == ("Call back", None, "high", "call")
    assert task.status == "open" and str(task.created_by) == ACTOR.id
    assert task.reminded_for is None


@pytest.mark.parametrize(
    "fields",
    [
        {"title": " "},
        {"title": "x" * 201},
        {"due_at": datetime(2026, 12, 7, 15, 0)},  # naive: no instant
        {"priority": "whenever"},
        {"kind": "email"},
        {"notes": "x" * 10_001},
    ],
)
def test_a_task_with_a_bad_field_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError):
        new_task(**fields)


def test_an_edit_records_only_what_changed_with_the_previous_values() -> None:
    task = new_task()
    same_instant = DUE.astimezone(timezone(timedelta(hours=-3)))
    task.edit({"title": "Call back", "due_at": same_instant, "priority": "low"}, actor=ACTOR)
    [edited] = task.collect_events()
    assert isinstance(edited, Task.Edited)
    assert (edited.changes, edited.previous) == ({"priority": "low"}, {"priority": "normal"})
    assert edited.actor == ACTOR


def test_a_closed_task_takes_no_change_but_reopen() -> None:
    for close in (Task.complete, Task.cancel):
        task = new_task()
        close(task, actor=ACTOR)
        for change in (
            lambda t: t.edit({"title": "x"}, actor=ACTOR),
            lambda t: t.reassign(uuid4(), actor=ACTOR),
            lambda t: t.complete(actor=ACTOR),
            lambda t: t.cancel(actor=ACTOR),
        ):
            with pytest.raises(TaskClosedError):
                change(task)
        task.reopen(actor=ACTOR)
        assert task.status == "open"


def test_only_a_closed_task_is_reopened() -> None:
    with pytest.raises(TaskNotClosedError):
        new_task().reopen(actor=ACTOR)


def test_reassigning_records_both_members_and_to_the_same_one_nothing() -> None:
    task = new_task()
    before, after = task.assignee_id, uuid4()
    task.reassign(before, actor=ACTOR)
    task.reassign(after, actor=ACTOR)
    [event] = task.collect_events()
    assert (event.from_user_id, event.to_user_id) == (before, after)


def test_a_task_comes_due_once_at_its_due_time_with_the_contract_fields() -> None:
    task = new_task(lead_id=uuid4())
    assert not task.come_due(DUE, now=DUE - timedelta(seconds=1), actor=TIMERS)
    assert task.come_due(DUE, now=DUE, actor=TIMERS)
    assert not task.come_due(DUE, now=DUE + timedelta(hours=1), actor=TIMERS)
    [due] = task.collect_events()
    assert isinstance(due, Task.CameDue) and due.actor == TIMERS
    fields = (due.due_at, due.assignee_id, due.lead_id, due.title)
    assert fields == (DUE, task.assignee_id, task.lead_id, "Call back")


def test_a_new_due_time_arms_the_reminder_again_and_a_stale_one_records_nothing() -> None:
    task = new_task()
    assert task.come_due(DUE, now=DUE, actor=TIMERS)
    later = DUE + timedelta(days=1)
    task.edit({"due_at": later}, actor=ACTOR)
    assert not task.come_due(DUE, now=later, actor=TIMERS)  # the old due time is stale
    assert task.come_due(later, now=later, actor=TIMERS)
    assert [type(e).__name__ for e in task.collect_events()] == ["CameDue", "Edited", "CameDue"]


def test_a_closed_task_does_not_come_due() -> None:
    task = new_task()
    task.complete(actor=ACTOR)
    assert not task.come_due(DUE, now=DUE, actor=TIMERS)


def test_events_replay_to_an_equal_task() -> None:
    task = Task.create(
        organization_id=uuid4(), title="t", due_at=DUE, assignee_id=uuid4(), actor=ACTOR
    )
    task.edit({"notes": "n"}, actor=ACTOR)
    task.complete(actor=ACTOR)
    task.reopen(actor=ACTOR)
    events = task.collect_events()
    assert replay(events) == task
