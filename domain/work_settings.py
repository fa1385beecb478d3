"""An organization's work settings: its business hours and its first-response SLA.

One aggregate per organization (`work_settings_id`), so a change of hours and a change of the
SLA are separate facts with their actors. Until hours are set, the organization works Monday to
Friday 09:00–18:00 in its own time zone; until an SLA is set, none applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid5

from domain.base import TenantAggregate
from domain.business_hours import BusinessHours
from domain.errors import InvalidValueError
from domain.values import Actor

_NAMESPACE = UUID("6f1f3a52-8f1e-4c55-9a55-2a4f8f0b7a11")
MAX_SLA_MINUTES = 60 * 24 * 30


def work_settings_id(organization_id: UUID) -> UUID:
    return uuid5(_NAMESPACE, f"work-settings:{organization_id}")


@dataclass(frozen=True)
class ResponseSla:
    """Reply to a contact's first unanswered message within `minutes`, counted in business
    hours or around the clock."""

    enabled: bool
    minutes: int
    business_hours: bool

    @classmethod
    def parse(cls, *, enabled: bool, minutes: int, business_hours: bool) -> ResponseSla:
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise InvalidValueError("minutes", "must be a whole number of minutes")
        if not 1 <= minutes <= MAX_SLA_MINUTES:
            raise InvalidValueError("minutes", f"must be between 1 and {MAX_SLA_MINUTES}")
        return cls(enabled=bool(enabled), minutes=minutes, business_hours=bool(business_hours))


OFF = ResponseSla(enabled=False, minutes=60, business_hours=True)


class WorkSettings(TenantAggregate):
    """Business hours and the response SLA of one organization."""

    hours: BusinessHours | None
    sla: ResponseSla

    def __init__(self) -> None:
        """State is set by the creation event's apply(); fields are declared for typing."""

    class Started(TenantAggregate.Created):
        def apply(self, s: WorkSettings) -> None:
            s.organization_id = self.organization_id
            s.hours = None
            s.sla = OFF

    class BusinessHoursSet(TenantAggregate.Event):
        timezone: str
        weekly: dict[str, list[list[str]]]
        holidays: list[str]

        def apply(self, s: WorkSettings) -> None:
            s.hours = BusinessHours.parse(self.timezone, self.weekly, self.holidays)

    class SlaSet(TenantAggregate.Event):
        enabled: bool
        minutes: int
        business_hours: bool

        def apply(self, s: WorkSettings) -> None:
            s.sla = ResponseSla(self.enabled, self.minutes, self.business_hours)

    @classmethod
    def start(cls, organization_id: UUID, *, actor: Actor) -> WorkSettings:
        return cls._create(
            cls.Started,
            id=work_settings_id(organization_id),
            organization_id=organization_id,
            actor=actor,
        )

    @staticmethod
    def off() -> ResponseSla:
        return OFF

    def business_hours(self, organization_timezone: str) -> BusinessHours:
        """The hours set, or the default week in the organization's time zone."""
        return self.hours or BusinessHours.default(organization_timezone)

    def set_business_hours(self, hours: BusinessHours, *, actor: Actor) -> None:
        if hours == self.hours:
            return
        self.trigger_event(
            self.BusinessHoursSet,
            timezone=hours.timezone,
            weekly=hours.as_dict(),
            holidays=sorted(d.isoformat() for d in hours.holidays),
            actor=actor,
        )

    def set_sla(self, sla: ResponseSla, *, actor: Actor) -> None:
        if sla == self.sla:
            return
        self.trigger_event(
            self.SlaSet,
            enabled=sla.enabled,
            minutes=sla.minutes,
            business_hours=sla.business_hours,
            actor=actor,
        )
