"""The Lead aggregate: a prospect moving across a pipeline until won, lost or archived.

Invariants: an archived lead takes no more changes; its status always follows the type of its
stage (open / won / lost); moving to the stage it is in records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import (
    InvalidValueError,
    LeadArchivedError,
    LeadClosedError,
    LeadNotClosedError,
)
from domain.mentions import MAX_MENTIONS
from domain.privacy import ERASED, PersonalDataErasedError, erased
from domain.values import STATUS_OF_STAGE_TYPE, Actor, LeadStatus, StageType

EDITABLE_FIELDS = (
    "full_name",
    "email",
    "phone",
    "company",
    "source",
    "estimated_value",
    "custom_fields",
)


@dataclass(frozen=True)
class StageRef:
    """A stage as a lead needs to know it: which one, and what kind."""

    id: UUID
    stage_type: StageType


def clean_details(details: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise lead details; unknown fields are an error."""
    cleaners: dict[str, Any] = {
        "full_name": lambda x: v.text("full_name", x, max_length=200),
        "email": v.email,
        "phone": v.phone,
        "company": lambda x: v.optional_text("company", x, max_length=200),
        "source": lambda x: v.optional_text("source", x, max_length=100),
        "estimated_value": v.money,
        "custom_fields": v.custom_fields,
    }
    cleaned: dict[str, Any] = {}
    for field, value in details.items():
        if field not in cleaners:
            raise InvalidValueError(field, "is not a lead field")
        if field == "full_name" and value is None:
            raise InvalidValueError(field, "must not be empty")
        cleaned[field] = cleaners[field](value)
    return cleaned


def _check_type(stage: StageRef, kind: StageType) -> None:
    if stage.stage_type is not kind:
        raise InvalidValueError("stage_id", f"must be a {kind} stage")


class Lead(TenantAggregate):
    """A prospect of one organization."""

    pipeline_id: UUID
    stage_id: UUID
    stage_entered_at: datetime
    full_name: str
    email: str | None
    phone: str | None
    company: str | None
    source: str | None
    estimated_value: Decimal | None
    custom_fields: dict[str, Any]
    assignee_id: UUID | None
    score: int | None
    status: LeadStatus
    archived: bool
    notes: int
    erased: bool

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Captured(TenantAggregate.Created):
        pipeline_id: UUID
        stage_id: UUID
        full_name: str
        email: str | None
        phone: str | None
        company: str | None
        source: str | None
        estimated_value: Decimal | None
        custom_fields: dict[str, Any]
        assignee_id: UUID | None

        def apply(self, lead: Lead) -> None:
            lead.organization_id = self.organization_id
            lead.pipeline_id = self.pipeline_id
            lead.stage_id = self.stage_id
            lead.stage_entered_at = self.timestamp
            for field in EDITABLE_FIELDS:
                setattr(lead, field, getattr(self, field))
            lead.assignee_id = self.assignee_id
            lead.score = None
            lead.status = LeadStatus.OPEN
            lead.archived = False
            lead.notes = 0
            lead.erased = False

    class DetailsChanged(TenantAggregate.Event):
        changes: dict[str, Any]
        previous: dict[str, Any]

        def apply(self, lead: Lead) -> None:
            for field, value in self.changes.items():
                setattr(lead, field, value)

    class MovedToStage(TenantAggregate.Event):
        from_stage_id: UUID
        to_stage_id: UUID

        def apply(self, lead: Lead) -> None:
            lead.stage_id = self.to_stage_id
            lead.stage_entered_at = self.timestamp

    class Assigned(TenantAggregate.Event):
        from_user_id: UUID | None
        to_user_id: UUID | None

        def apply(self, lead: Lead) -> None:
            lead.assignee_id = self.to_user_id

    class NoteAdded(TenantAggregate.Event):
        """A note; v2 names the members it mentions (v1 notes mention nobody)."""

        class_version = 2
        note_id: UUID
        text: str
        mentions: list[UUID]

        def apply(self, lead: Lead) -> None:
            lead.notes += 1

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["mentions"] = []

    class Won(TenantAggregate.Event):
        stage_id: UUID
        value: Decimal | None
        previous_status: str

        def apply(self, lead: Lead) -> None:
            lead.status = LeadStatus.WON

    class Lost(TenantAggregate.Event):
        stage_id: UUID
        reason: str | None
        previous_status: str

        def apply(self, lead: Lead) -> None:
            lead.status = LeadStatus.LOST

    class Reopened(TenantAggregate.Event):
        stage_id: UUID
        previous_status: str

        def apply(self, lead: Lead) -> None:
            lead.status = LeadStatus.OPEN

    class Archived(TenantAggregate.Event):
        def apply(self, lead: Lead) -> None:
            lead.archived = True

    class PersonalDataErased(TenantAggregate.Event):
        """The person's data key was destroyed (LGPD/GDPR erasure): their values read as erased.

        The event itself holds no personal data: who asked (actor), when, and on what basis.
        """

        legal_basis: str

        def apply(self, lead: Lead) -> None:
            lead.full_name = ERASED
            lead.email = erased(lead.email)
            lead.phone = erased(lead.phone)
            lead.custom_fields = erased(lead.custom_fields)
            lead.erased = True

    @classmethod
    def capture(
        cls,
        *,
        organization_id: UUID,
        pipeline_id: UUID,
        stage: StageRef,
        details: dict[str, Any],
        assignee_id: UUID | None,
        actor: Actor,
        id: UUID | None = None,
    ) -> Lead:
        if stage.stage_type is not StageType.OPEN:
            raise InvalidValueError("stage_id", "a new lead starts in an open stage")
        if "full_name" not in details:
            raise InvalidValueError("full_name", "is required")
        fields = dict.fromkeys(EDITABLE_FIELDS) | {"custom_fields": {}}
        fields |= clean_details(details)
        return cls._create(
            cls.Captured,
            id=id or uuid4(),
            organization_id=organization_id,
            actor=actor,
            pipeline_id=pipeline_id,
            stage_id=stage.id,
            assignee_id=assignee_id,
            **fields,
        )

    def change_details(self, details: dict[str, Any], *, actor: Actor) -> None:
        self._check_not_archived()
        self._check_not_erased()
        cleaned = clean_details(details)
        changes = {k: val for k, val in cleaned.items() if not v.same(getattr(self, k), val)}
        if changes:
            previous = {k: getattr(self, k) for k in changes}
            self.trigger_event(self.DetailsChanged, changes=changes, previous=previous, actor=actor)

    def move_to(self, stage: StageRef, *, actor: Actor, reason: str | None = None) -> None:
        """Move to a stage; the status follows the stage's type (won, lost or reopened)."""
        self._check_not_archived()
        if stage.id == self.stage_id:
            return
        previous_status = self.status
        self.trigger_event(
            self.MovedToStage,
            from_stage_id=self.stage_id,
            to_stage_id=stage.id,
            actor=actor,
        )
        status = STATUS_OF_STAGE_TYPE[stage.stage_type]
        if status is previous_status:
            return
        before = str(previous_status)
        if status is LeadStatus.WON:
            value = self.estimated_value
            self.trigger_event(
                self.Won,
                stage_id=stage.id,
                value=value,
                previous_status=before,
                actor=actor,
            )
        elif status is LeadStatus.LOST:
            self.trigger_event(
                self.Lost,
                stage_id=stage.id,
                reason=reason,
                previous_status=before,
                actor=actor,
            )
        else:
            self.trigger_event(
                self.Reopened, stage_id=stage.id, previous_status=before, actor=actor
            )

    def win(self, won_stage: StageRef, *, actor: Actor) -> None:
        self._check_open()
        _check_type(won_stage, StageType.WON)
        self.move_to(won_stage, actor=actor)

    def lose(self, lost_stage: StageRef, *, reason: str | None, actor: Actor) -> None:
        self._check_open()
        _check_type(lost_stage, StageType.LOST)
        reason = v.optional_text("reason", reason, max_length=500)
        self.move_to(lost_stage, actor=actor, reason=reason)

    def reopen(self, open_stage: StageRef, *, actor: Actor) -> None:
        self._check_not_archived()
        if self.status is LeadStatus.OPEN:
            raise LeadNotClosedError("only a won or lost lead can be reopened")
        _check_type(open_stage, StageType.OPEN)
        self.move_to(open_stage, actor=actor)

    def assign(self, user_id: UUID | None, *, actor: Actor) -> None:
        self._check_not_archived()
        if user_id != self.assignee_id:
            self.trigger_event(
                self.Assigned,
                from_user_id=self.assignee_id,
                to_user_id=user_id,
                actor=actor,
            )

    def add_note(
        self,
        text: str,
        *,
        actor: Actor,
        note_id: UUID | None = None,
        mentions: Sequence[UUID] = (),
    ) -> UUID:
        """Add a note; `mentions` are members of the organization (the use case checks)."""
        self._check_not_archived()
        self._check_not_erased()
        note_id = note_id or uuid4()
        body = v.text("text", text, max_length=10_000)
        mentioned = list(dict.fromkeys(mentions))[:MAX_MENTIONS]
        self.trigger_event(
            self.NoteAdded, note_id=note_id, text=body, mentions=mentioned, actor=actor
        )
        return note_id

    def archive(self, *, actor: Actor) -> None:
        self._check_not_archived()
        self.trigger_event(self.Archived, actor=actor)

    def erase_personal_data(self, *, legal_basis: str, actor: Actor) -> bool:
        """Record the erasure of this person's data; False if it was already erased."""
        basis = v.text("legal_basis", legal_basis, max_length=500)
        if self.erased:
            return False
        self.trigger_event(self.PersonalDataErased, legal_basis=basis, actor=actor)
        return True

    def _check_not_erased(self) -> None:
        if self.erased:
            raise PersonalDataErasedError(f"lead {self.id}: the person's data was erased")

    def _check_not_archived(self) -> None:
        if self.archived:
            raise LeadArchivedError(f"lead {self.id} is archived")

    def _check_open(self) -> None:
        self._check_not_archived()
        if self.status is not LeadStatus.OPEN:
            raise LeadClosedError(f"lead {self.id} is already {self.status}")
