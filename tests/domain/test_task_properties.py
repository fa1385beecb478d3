"""Properties of any sequence of task commands: the lifecycle's rules hold, a due time is
reminded at most once, and the events rebuild the task (also through the store's mapper)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import Mapper
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from domain.task import Task, TaskClosedError, TaskNotClosedError
from domain.values import Actor
from tests.domain.builders import attempt, replay, through_the_event_store

ACTOR = Actor("user", str(uuid4()))
TIMERS = Actor("system", "timers")
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DUE_TIMES = st.integers(0, 4).map(lambda h: T0 + timedelta(hours=h))
USERS = st.sampled_from([uuid4(), uuid4()])
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "title": st.sampled_from(["Call", " Write ", "", "x" * 201]),
        "notes": st.sampled_from([None, "n", " "]),
        "due_at": DUE_TIMES,
        "priority": st.sampled_from(["low", "urgent", "soon"]),
        "kind": st.sampled_from(["call", "meeting", "fax"]),
        "lead_id": st.sampled_from([None, uuid4()]),
    },
)


class TaskLifecycle(RuleBasedStateMachine):
    """Random commands on one task, each applied or refused with nothing changed."""

    mapper: Mapper[UUID]

    def __init__(self) -> None:
        super().__init__()
        self.task = Task.create(
            organization_id=uuid4(), title="Call", due_at=T0, assignee_id=uuid4(), actor=ACTOR
        )
        self.events: list[Any] = list(self.task.collect_events())
        self.reminded: list[tuple[datetime, int]] = []  # (due time, edits of it so far)
        self.due_edits = 0

    def run(self, command: Callable[[], object]) -> object:
        was_closed, version = self.task.closed, self.task.version
        result: list[object] = []
        refusal = attempt(self.task, lambda: result.append(command()))
        new = self.task.collect_events()
        if refusal is not None:
            assert new == [] and self.task.version == version
        if was_closed and isinstance(refusal, TaskClosedError):
            assert self.task.closed
        for event in new:
            if isinstance(event, Task.Edited) and "due_at" in event.changes:
                self.due_edits += 1
            if isinstance(event, Task.CameDue):
                self.reminded.append((event.due_at, self.due_edits))
        self.events.extend(new)
        return result[0] if result else None

    @rule(fields=FIELDS)
    def edit(self, fields: dict[str, Any]) -> None:
        closed = self.task.closed
        self.run(lambda: self.task.edit(fields, actor=ACTOR))
        assert self.task.closed is closed  # an edit never opens nor closes a task

    @rule(user=USERS)
    def reassign(self, user: UUID) -> None:
        self.run(lambda: self.task.reassign(user, actor=ACTOR))

    @rule()
    def complete(self) -> None:
        self.run(lambda: self.task.complete(actor=ACTOR))

    @rule()
    def cancel(self) -> None:
        self.run(lambda: self.task.cancel(actor=ACTOR))

    @rule()
    def reopen(self) -> None:
        was_closed = self.task.closed
        self.run(lambda: self._reopen(was_closed))

    def _reopen(self, was_closed: bool) -> None:
        try:
            self.task.reopen(actor=ACTOR)
        except TaskNotClosedError:
            assert not was_closed
            raise
        assert was_closed

    @rule(due_at=DUE_TIMES, late=st.integers(-1, 2))
    def come_due(self, due_at: datetime, late: int) -> None:
        now = due_at + timedelta(minutes=late)
        open_and_current = not self.task.closed and self.task.due_at == due_at
        armed = open_and_current and self.task.reminded_for != due_at and late >= 0
        recorded = self.run(lambda: self.task.come_due(due_at, now=now, actor=TIMERS))
        assert recorded is armed

    @invariant()
    def a_due_time_is_reminded_at_most_once_until_it_changes(self) -> None:
        assert len(self.reminded) == len(set(self.reminded))

    @invariant()
    def version_counts_the_recorded_events(self) -> None:
        assert self.task.version == len(self.events)

    @invariant()
    def status_is_one_of_three(self) -> None:
        assert self.task.status in ("open", "completed", "cancelled")
        assert self.task.title and self.task.title == self.task.title.strip()

    def teardown(self) -> None:
        assert replay(self.events) == self.task
        assert replay(through_the_event_store(self.mapper, self.events)) == self.task


def test_any_sequence_of_task_commands_keeps_the_lifecycle_rules_and_replays(
    event_mapper: Mapper[UUID],
) -> None:
    TaskLifecycle.mapper = event_mapper
    run_state_machine_as_test(
        TaskLifecycle, settings=settings(max_examples=150, stateful_step_count=25, deadline=None)
    )
