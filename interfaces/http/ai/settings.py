"""AI settings routes: `GET /ai/settings` (every member), `PUT /ai/settings` (admins)."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.di import Provide
from litestar.params import JSONBody

from application.ai import settings as ai
from application.context import Written
from application.permissions import Permission
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard


class AiSettingsController(Controller):
    path = "/ai/settings"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["ai"]  # noqa: RUF012

    @get(
        "/",
        opt={"permission": Permission.ORGANIZATION_READ},
        sync_to_thread=True,
        operation_id="getAiSettings",
    )
    def current(self, ctx: CtxDep, services: ServicesDep) -> ai.AiSettingsView:
        """Analysis and assistant on or off, the assistant's sources, handoff and nurture
        thresholds, alert thresholds, the model and custom instructions; whether the
        organization set its own key (never the key)."""
        return ai.get_ai_settings(services.app, ctx)

    @put(
        "/",
        opt={"permission": Permission.INTEGRATIONS_MANAGE},
        sync_to_thread=True,
        operation_id="changeAiSettings",
    )
    def change(
        self, data: JSONBody[ai.ChangeAiSettings], ctx: CtxDep, services: ServicesDep
    ) -> Written:
        """Change the settings given (the others keep theirs). `api_key` sets the
        organization's own key (sealed at once, write-only); `null` removes it."""
        return ai.change_ai_settings(services.app, services.secret_box, data, ctx)
