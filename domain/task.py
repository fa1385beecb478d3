"""The Task aggregate: a follow-up someone of the organization must do by a due time.

Invariants: a completed or cancelled task takes no change but `reopen`, and only such a task can
be reopened; its reminder (`CameDue`) is recorded once per due time — changing the due time
arms it again, and a reminder asked for a due time the task no longer has records nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, NotFoundError, RuleViolationError
from domain.values import Actor


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class TaskPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TaskKind(StrEnum):
    CALL = "call"
    MESSAGE = "message"
    MEETING = "meeting"
    OTHER = "other"


#: what `Task.edit` changes (the assignee changes through `reassign`, the status by its verbs)
EDITABLE_FIELDS = ("title", "notes", "due_at", "priority", "kind", "lead_id")
TITLE_MAX = 200
NOTES_MAX = 10_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)


class TaskNotFoundError(NotFoundError):
    def __init__(self, id: UUID | str) -> None:
        super().__init__("task", id)


class TaskClosedError(RuleViolationError):
    """A completed or cancelled task must be reopened before it changes again."""


class TaskNotClosedError(RuleViolationError):
    """Only a completed or cancelled task can be reopened."""


def _choice(field: str, value: str, allowed: type[StrEnum]) -> str:
    try:
        return str(allowed(value))
    except ValueError:
        names = ", ".join(m.value for m in allowed)
        raise InvalidValueError(field, f"must be one of {names}") from None


def due_time(value: datetime) -> datetime:
    """A due time must say its offset: a naive time means a different instant to each reader."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError("due_at", "must be a date-time with a time zone offset")
    if not EARLIEST <= value <= LATEST:
        raise InvalidValueError("due_at", "must be between the years 1970 and 9998")
    return value


def clean_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise editable task fields; unknown fields are an error."""
    cleaners: dict[str, Any] = {
        "title": lambda x: v.text("title", x, max_length=TITLE_MAX),
        "notes": lambda x: v.optional_text("notes", x, max_length=NOTES_MAX),
        "due_at": due_time,
        "priority": lambda x: _choice("priority", x, TaskPriority),
        "kind": lambda x: _choice("kind", x, TaskKind),
        "lead_id": lambda x: x,
    }
    cleaned: dict[str, Any] = {}
    for field, value in fields.items():
        if field not in cleaners:
            raise InvalidValueError(field, "is not a task field")
        if value is None and field in ("title", "due_at", "priority", "kind"):
            raise InvalidValueError(field, "must not be null")
        cleaned[field] = cleaners[field](value)
    return cleaned


def user_of(actor: Actor) -> UUID | None:
    """The person behind an actor (keys, providers and timers are nobody's)."""
    if actor.kind != "user":
        return None
    try:
        return UUID(actor.id)
    except ValueError:
        return None


class Task(TenantAggregate):
    """A to-do of one member, optionally about one lead."""

    title: str
    notes: str | None
    due_at: datetime
    assignee_id: UUID
    lead_id: UUID | None
    priority: str
    kind: str
    status: str
    #: the person who created it (None: a key or a process did)
    created_by: UUID | None
    #: the due time whose reminder is recorded (None: none for the current due time)
    reminded_for: datetime | None

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Created(TenantAggregate.Created):
        title: str
        notes: str | None
        due_at: datetime
        assignee_id: UUID
        lead_id: UUID | None
        priority: str
        kind: str

        def apply(self, task: Task) -> None:
            task.organization_id = self.organization_id
            for field in (*EDITABLE_FIELDS, "assignee_id"):
                setattr(task, field, getattr(self, field))
            task.status = TaskStatus.OPEN
            task.created_by = user_of(self.actor)
            task.reminded_for = None

    class Edited(TenantAggregate.Event):
        changes: dict[str, Any]
        previous: dict[str, Any]

        def apply(self, task: Task) -> None:
            for field, value in self.changes.items():
                setattr(task, field, value)
            if "due_at" in self.changes:  # a new due time gets its own reminder
                task.reminded_for = None

    class Reassigned(TenantAggregate.Event):
        from_user_id: UUID
        to_user_id: UUID

        def apply(self, task: Task) -> None:
            task.assignee_id = self.to_user_id

    class Completed(TenantAggregate.Event):
        def apply(self, task: Task) -> None:
            task.status = TaskStatus.COMPLETED

    class Reopened(TenantAggregate.Event):
        def apply(self, task: Task) -> None:
            task.status = TaskStatus.OPEN

    class Cancelled(TenantAggregate.Event):
        def apply(self, task: Task) -> None:
            task.status = TaskStatus.CANCELLED

    class CameDue(TenantAggregate.Event):
        """The task reached its due time while open: its assignee is to be reminded."""

        due_at: datetime
        assignee_id: UUID
        lead_id: UUID | None
        title: str

        def apply(self, task: Task) -> None:
            task.reminded_for = self.due_at

    @classmethod
    def create(
        cls,
        *,
        organization_id: UUID,
        title: str,
        due_at: datetime,
        assignee_id: UUID,
        actor: Actor,
        notes: str | None = None,
        lead_id: UUID | None = None,
        priority: str = TaskPriority.NORMAL,
        kind: str = TaskKind.OTHER,
        id: UUID | None = None,
    ) -> Task:
        fields = clean_fields(
            {
                "title": title,
                "notes": notes,
                "due_at": due_at,
                "priority": priority,
                "kind": kind,
                "lead_id": lead_id,
            }
        )
        return cls._create(
            cls.Created,
            id=id or uuid4(),
            organization_id=organization_id,
            actor=actor,
            assignee_id=assignee_id,
            **fields,
        )

    @property
    def closed(self) -> bool:
        return self.status != TaskStatus.OPEN

    def edit(self, fields: dict[str, Any], *, actor: Actor) -> None:
        """Change some fields; nothing is recorded when every value is the current one."""
        self._check_open()
        cleaned = clean_fields(fields)
        changes = {k: val for k, val in cleaned.items() if not _same(getattr(self, k), val)}
        if changes:
            previous = {k: getattr(self, k) for k in changes}
            self.trigger_event(self.Edited, changes=changes, previous=previous, actor=actor)

    def reassign(self, user_id: UUID, *, actor: Actor) -> None:
        self._check_open()
        if user_id != self.assignee_id:
            self.trigger_event(
                self.Reassigned, from_user_id=self.assignee_id, to_user_id=user_id, actor=actor
            )

    def complete(self, *, actor: Actor) -> None:
        self._check_open()
        self.trigger_event(self.Completed, actor=actor)

    def cancel(self, *, actor: Actor) -> None:
        self._check_open()
        self.trigger_event(self.Cancelled, actor=actor)

    def reopen(self, *, actor: Actor) -> None:
        if not self.closed:
            raise TaskNotClosedError(f"task {self.id} is open: only a closed task is reopened")
        self.trigger_event(self.Reopened, actor=actor)

    def come_due(self, due_at: datetime, *, now: datetime, actor: Actor) -> bool:
        """Record that the task reached `due_at`; False (nothing recorded) if it is closed, its
        due time is another now, that time has not come, or its reminder is already recorded."""
        if self.closed or self.due_at != due_at or now < due_at:
            return False
        if self.reminded_for == due_at:
            return False
        self.trigger_event(
            self.CameDue,
            due_at=self.due_at,
            assignee_id=self.assignee_id,
            lead_id=self.lead_id,
            title=self.title,
            actor=actor,
        )
        return True

    def _check_open(self) -> None:
        if self.closed:
            raise TaskClosedError(f"task {self.id} is {self.status}: reopen it first")


def _same(a: Any, b: Any) -> bool:
    # two due times naming the same instant in different offsets are the same due time
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b
    return v.same(a, b)
