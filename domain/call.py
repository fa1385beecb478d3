"""The Call aggregate: one phone call with a lead, placed or received, through any provider.

Invariants: the status only moves forward (initiated → ringing → answered → ended); a provider
callback seen before (same provider event id) or arriving late records nothing; an ended call
has a duration and an outcome; recordings attach to answered or ended calls, once each (a
provider may report the recording before the hangup).
"""

from __future__ import annotations

from uuid import UUID, uuid4

from domain import values as v
from domain.base import TenantAggregate
from domain.errors import InvalidValueError, RuleViolationError
from domain.values import Actor

RANK = {"initiated": 0, "ringing": 1, "answered": 2, "ended": 3}
OUTCOMES = frozenset({"completed", "no_answer", "busy", "failed", "canceled", "voicemail"})
DIRECTIONS = frozenset({"inbound", "outbound"})


class Call(TenantAggregate):
    """A call between the organization and a lead's phone."""

    lead_id: UUID
    direction: str
    provider_type: str
    status: str
    provider_call_id: str | None
    seen_callbacks: set[str]
    duration_seconds: int | None
    outcome: str | None
    recordings: list[str]

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Started(TenantAggregate.Created):
        """Placed (outbound, click-to-call) or received (inbound webhook)."""

        lead_id: UUID
        direction: str
        provider_type: str
        from_number: str
        to_number: str
        provider_call_id: str | None
        connect_to: str | None = None  # click-to-call: the rep's phone, bridged on answer

        def apply(self, call: Call) -> None:
            call.organization_id = self.organization_id
            call.lead_id = self.lead_id
            call.direction = self.direction
            call.provider_type = self.provider_type
            call.status = "initiated"
            call.provider_call_id = self.provider_call_id
            call.seen_callbacks = set()
            call.duration_seconds = None
            call.outcome = None
            call.recordings = []

    class Dialed(TenantAggregate.Event):
        """The provider accepted an outbound call and named it (its call id)."""

        provider_call_id: str

        def apply(self, call: Call) -> None:
            call.provider_call_id = self.provider_call_id

    class Progressed(TenantAggregate.Event):
        """Ringing or answered, as the provider reported it."""

        status: str
        previous_status: str
        provider_event_id: str | None
        provider_call_id: str | None

        def apply(self, call: Call) -> None:
            call.status = self.status
            call.provider_call_id = self.provider_call_id or call.provider_call_id
            if self.provider_event_id:
                call.seen_callbacks.add(self.provider_event_id)

    class Ended(TenantAggregate.Event):
        duration_seconds: int
        outcome: str
        previous_status: str
        provider_event_id: str | None

        def apply(self, call: Call) -> None:
            call.status = "ended"
            call.duration_seconds = self.duration_seconds
            call.outcome = self.outcome
            if self.provider_event_id:
                call.seen_callbacks.add(self.provider_event_id)

    class RecordingAttached(TenantAggregate.Event):
        recording_url: str
        duration_seconds: int | None

        def apply(self, call: Call) -> None:
            call.recordings.append(self.recording_url)

    @classmethod
    def start(
        cls,
        *,
        organization_id: UUID,
        lead_id: UUID,
        direction: str,
        provider_type: str,
        from_number: str,
        to_number: str,
        actor: Actor,
        provider_call_id: str | None = None,
        id: UUID | None = None,
        connect_to: str | None = None,
    ) -> Call:
        if direction not in DIRECTIONS:
            raise InvalidValueError("direction", "must be inbound or outbound")
        numbers = {"from_number": v.phone(from_number), "to_number": v.phone(to_number)}
        for field, number in numbers.items():
            if number is None:
                raise InvalidValueError(field, "is required")
        return cls._create(
            cls.Started,
            id=id or uuid4(),
            organization_id=organization_id,
            actor=actor,
            lead_id=lead_id,
            direction=direction,
            provider_type=v.text("provider_type", provider_type, max_length=40),
            provider_call_id=v.optional_text("provider_call_id", provider_call_id, max_length=200),
            connect_to=v.phone(connect_to),
            **numbers,
        )

    def dialed(self, provider_call_id: str, *, actor: Actor) -> None:
        """Record the provider's id for a call we placed; a repeat changes nothing."""
        key = v.text("provider_call_id", provider_call_id, max_length=200)
        if self.provider_call_id is None:
            self.trigger_event(self.Dialed, provider_call_id=key, actor=actor)
        elif self.provider_call_id != key:
            raise RuleViolationError("the call already has another provider call id")

    def progress(
        self,
        status: str,
        *,
        actor: Actor,
        provider_event_id: str | None = None,
        provider_call_id: str | None = None,
    ) -> None:
        """Ringing or answered; repeated or late callbacks change nothing."""
        if status not in ("ringing", "answered"):
            raise InvalidValueError("status", "must be ringing or answered")
        if self._seen(provider_event_id) or RANK[status] <= RANK[self.status]:
            return
        self.trigger_event(
            self.Progressed,
            status=status,
            previous_status=self.status,
            provider_event_id=provider_event_id,
            provider_call_id=provider_call_id,
            actor=actor,
        )

    def end(
        self,
        *,
        duration_seconds: int,
        outcome: str,
        actor: Actor,
        provider_event_id: str | None = None,
    ) -> None:
        if outcome not in OUTCOMES:
            raise InvalidValueError("outcome", f"must be one of {', '.join(sorted(OUTCOMES))}")
        if not 0 <= duration_seconds <= 7 * 24 * 3600:
            raise InvalidValueError("duration_seconds", "must be between 0 and a week")
        if self._seen(provider_event_id) or self.status == "ended":
            return
        self.trigger_event(
            self.Ended,
            duration_seconds=duration_seconds,
            outcome=outcome,
            previous_status=self.status,
            provider_event_id=provider_event_id,
            actor=actor,
        )

    def attach_recording(
        self, recording_url: str, *, actor: Actor, duration_seconds: int | None = None
    ) -> None:
        if self.status not in ("answered", "ended"):
            raise RuleViolationError("a recording is attached to a call that was answered")
        url = v.text("recording_url", recording_url, max_length=2000)
        if not url.startswith("https://"):
            raise InvalidValueError("recording_url", "must be an https:// URL")
        if url not in self.recordings:
            self.trigger_event(
                self.RecordingAttached,
                recording_url=url,
                duration_seconds=duration_seconds,
                actor=actor,
            )

    def _seen(self, provider_event_id: str | None) -> bool:
        return provider_event_id is not None and provider_event_id in self.seen_callbacks
