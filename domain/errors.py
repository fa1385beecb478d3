"""Domain errors: types, translated to HTTP answers once, at the edge."""

from __future__ import annotations

from uuid import UUID


class DomainError(Exception):
    """A command broke a rule of the domain."""


class InvalidValueError(DomainError):
    """A value given to a command is malformed or out of range (nothing is recorded)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RuleViolationError(DomainError):
    """The command is well formed but the aggregate's current state forbids it."""


class NotFoundError(DomainError):
    """The aggregate does not exist in the caller's organization."""

    def __init__(self, kind: str, id: UUID | str) -> None:
        super().__init__(f"{kind} {id} not found")
        self.kind = kind
        self.id = id


class ForeignAggregateError(NotFoundError):
    """The aggregate exists, in another organization: answered as not found, and audited."""

    def __init__(self, kind: str, id: UUID | str, owner_id: UUID) -> None:
        super().__init__(kind, id)
        self.owner_id = owner_id


class LeadNotFoundError(NotFoundError):
    def __init__(self, id: UUID | str) -> None:
        super().__init__("lead", id)


class StageNotFoundError(NotFoundError):
    def __init__(self, id: UUID | str) -> None:
        super().__init__("stage", id)


class OrganizationNotFoundError(NotFoundError):
    def __init__(self, id: UUID | str) -> None:
        super().__init__("organization", id)


class StageNotInPipelineError(NotFoundError):
    """A referenced stage is not one of this organization's: not found, whoever owns it."""

    def __init__(self, stage_id: UUID) -> None:
        super().__init__("stage", stage_id)


class LeadArchivedError(RuleViolationError):
    """An archived lead keeps its history but takes no more changes."""


class LeadClosedError(RuleViolationError):
    """Won or lost leads must be reopened before they are won or lost again."""


class LeadNotClosedError(RuleViolationError):
    """Only a won or lost lead can be reopened."""


class LastAdminError(RuleViolationError):
    """An organization always keeps at least one active admin."""


class StageInUseError(RuleViolationError):
    """A stage holding leads is removed only with a target stage for them."""


class VersionConflictError(DomainError):
    """Someone else changed the aggregate first (optimistic concurrency)."""

    def __init__(
        self, aggregate_id: UUID, current_version: int, expected_version: int | None
    ) -> None:
        super().__init__(
            f"aggregate {aggregate_id} is at version {current_version}, not {expected_version}"
        )
        self.aggregate_id = aggregate_id
        self.current_version = current_version
        self.expected_version = expected_version
