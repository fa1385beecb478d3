"""Business hours and the first-response SLA: read and set by admins and managers.

`business_hours_of` and `sla_of` are what the other work use cases (assignment rules, SLA
timers, the assistant's after-hours rule) ask; they read the settings aggregate's cached view.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.store import CrmApplication
from domain.business_hours import BusinessHours
from domain.errors import NotFoundError
from domain.organization import Organization
from domain.work_settings import ResponseSla, WorkSettings, work_settings_id


class BusinessHoursBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Open periods per weekday as [start, end] local times; a day left out is closed."""

    weekly: dict[str, list[list[str]]]
    holidays: list[date] = []
    #: IANA name; the organization's own time zone when left out
    timezone: str | None = None


class BusinessHoursView(msgspec.Struct, frozen=True):
    timezone: str
    weekly: dict[str, list[list[str]]]
    holidays: list[date]
    #: False while the organization works the default week (Monday–Friday 09:00–18:00)
    configured: bool
    version: int


class SlaBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool
    minutes: int
    #: count only open business time (True) or around the clock (False)
    business_hours: bool = True


class SlaView(msgspec.Struct, frozen=True):
    enabled: bool
    minutes: int
    business_hours: bool
    version: int


def _settings(app: CrmApplication, organization_id: UUID) -> WorkSettings | None:
    try:
        return app.view(WorkSettings, work_settings_id(organization_id), organization_id)
    except NotFoundError:
        return None


def _timezone(app: CrmApplication, organization_id: UUID) -> str:
    return app.view(Organization, organization_id, organization_id).timezone


def business_hours_of(app: CrmApplication, organization_id: UUID) -> BusinessHours:
    settings = _settings(app, organization_id)
    zone = _timezone(app, organization_id)
    return settings.business_hours(zone) if settings else BusinessHours.default(zone)


def sla_of(app: CrmApplication, organization_id: UUID) -> ResponseSla | None:
    """The organization's first-response SLA, None when it is off."""
    settings = _settings(app, organization_id)
    return settings.sla if settings is not None and settings.sla.enabled else None


def _editable(app: CrmApplication, ctx: Ctx) -> WorkSettings:
    wanted = work_settings_id(ctx.organization_id)
    if app.organization_of(wanted) is None:
        return WorkSettings.start(ctx.organization_id, actor=ctx.actor)
    return app.load(WorkSettings, wanted, ctx.organization_id)


def get_business_hours(app: CrmApplication, ctx: Ctx) -> BusinessHoursView:
    settings = _settings(app, ctx.organization_id)
    hours = business_hours_of(app, ctx.organization_id)
    return BusinessHoursView(
        timezone=hours.timezone,
        weekly=hours.as_dict(),
        holidays=sorted(hours.holidays),
        configured=settings is not None and settings.hours is not None,
        version=settings.version if settings else 0,
    )


def set_business_hours(app: CrmApplication, body: BusinessHoursBody, ctx: Ctx) -> Written:
    zone = body.timezone or _timezone(app, ctx.organization_id)
    hours = BusinessHours.parse(zone, body.weekly, [d.isoformat() for d in body.holidays])
    settings = _editable(app, ctx)
    settings.set_business_hours(hours, actor=ctx.actor)
    return Written(id=settings.id, version=settings.version, position=app.commit(settings))


def get_sla(app: CrmApplication, ctx: Ctx) -> SlaView:
    settings = _settings(app, ctx.organization_id)
    sla = settings.sla if settings else WorkSettings.off()
    return SlaView(
        enabled=sla.enabled,
        minutes=sla.minutes,
        business_hours=sla.business_hours,
        version=settings.version if settings else 0,
    )


def set_sla(app: CrmApplication, body: SlaBody, ctx: Ctx) -> Written:
    sla = ResponseSla.parse(
        enabled=body.enabled, minutes=body.minutes, business_hours=body.business_hours
    )
    settings = _editable(app, ctx)
    settings.set_sla(sla, actor=ctx.actor)
    return Written(id=settings.id, version=settings.version, position=app.commit(settings))
