"""Work settings routes: the organization's business hours and first-response SLA."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, put
from litestar.di import Provide
from litestar.params import JSONBody

from application.context import Written
from application.permissions import Permission
from application.work import settings as work
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard


def _opt(permission: Permission) -> dict[str, Any]:
    return {"permission": permission}


class WorkSettingsController(Controller):
    path = "/crm/settings"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["work settings"]  # noqa: RUF012

    @get(
        "/business-hours",
        opt=_opt(Permission.ORGANIZATION_READ),
        sync_to_thread=True,
        operation_id="getBusinessHours",
    )
    def business_hours(self, ctx: CtxDep, services: ServicesDep) -> work.BusinessHoursView:
        """The weekly open periods (local times in `timezone`) and holidays; until set, Monday
        to Friday 09:00–18:00 in the organization's time zone (`configured: false`)."""
        return work.get_business_hours(services.app, ctx)

    @put(
        "/business-hours",
        opt=_opt(Permission.WORK_CONFIGURE),
        sync_to_thread=True,
        operation_id="setBusinessHours",
    )
    def set_business_hours(
        self, data: JSONBody[work.BusinessHoursBody], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Replace the schedule: `weekly` maps `monday`…`sunday` to `[start, end]` periods
        (`HH:MM`, `24:00` for midnight, no overlaps; a day left out is closed), `holidays`
        are local dates, `timezone` an IANA name (the organization's when left out)."""
        return work.set_business_hours(services.app, data, ctx)

    @get("/sla", opt=_opt(Permission.ORGANIZATION_READ), sync_to_thread=True, operation_id="getSla")
    def sla(self, ctx: CtxDep, services: ServicesDep) -> work.SlaView:
        """The first-response SLA: on or off, its minutes, counted in business hours or not."""
        return work.get_sla(services.app, ctx)

    @put("/sla", opt=_opt(Permission.WORK_CONFIGURE), sync_to_thread=True, operation_id="setSla")
    def set_sla(self, data: JSONBody[work.SlaBody], ctx: CtxDep, services: ServicesDep) -> Written:
        """Set the first-response SLA: a contact's first unanswered message must get a reply
        within `minutes` (1 to 43,200), counted in open business time or around the clock."""
        return work.set_sla(services.app, data, ctx)
