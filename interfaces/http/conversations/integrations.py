"""Provider integrations (admin only): see, set up and switch the WhatsApp and VoIP providers.

Secrets go in and never come out: answers list which secrets are set, and the webhook URLs to
paste into each provider's console.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post, put
from litestar.di import Provide
from litestar.params import JSONBody

from application.conversations import integrations as cmds
from application.conversations.messages import IntegrationMissingError
from application.conversations.providers import SessionState
from application.permissions import Permission
from domain.errors import InvalidValueError
from domain.integrations import VOIP, WHATSAPP
from interfaces.http.guard import CtxDep, ServicesDep, provide_ctx, provide_services, tenant_guard
from interfaces.providers.destinations import refusal
from interfaces.services import Services

MANAGE = {"permission": Permission.INTEGRATIONS_MANAGE}


class SwitchBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    provider: str


class IntegrationChanged(msgspec.Struct, frozen=True):
    integration: cmds.IntegrationView
    version: int
    position: int


class QrCode(msgspec.Struct, frozen=True):
    status: str
    qr: str | None
    webhook_url: str
    warning: str


def _changed(services: Services, kind: str, written: cmds.Written) -> IntegrationChanged:
    view = cmds.integration(services.app, kind, written.id, services.settings.public_url)
    return IntegrationChanged(integration=view, version=written.version, position=written.position)


def _check_destination(services: Services, base_url: str | None) -> None:
    reason = (
        None if base_url is None else refusal(base_url, services.settings.provider_private_urls)
    )
    if reason is not None:
        raise InvalidValueError("base_url", reason)


class IntegrationController(Controller):
    path = "/integrations"
    guards = [tenant_guard]  # noqa: RUF012
    dependencies = {"ctx": Provide(provide_ctx), "services": Provide(provide_services)}  # noqa: RUF012
    tags = ["integrations"]  # noqa: RUF012

    @get("/whatsapp", opt=MANAGE, sync_to_thread=True, operation_id="getWhatsApp")
    def whatsapp(self, ctx: CtxDep, services: ServicesDep) -> cmds.IntegrationView:
        """The organization's WhatsApp providers (business_api, web_bridge) and the active one."""
        return cmds.integration(
            services.app, WHATSAPP, ctx.organization_id, services.settings.public_url
        )

    @post(
        "/whatsapp/setup",
        opt=MANAGE,
        sync_to_thread=True,
        status_code=200,
        operation_id="setUpWhatsApp",
    )
    def setup_whatsapp(
        self, data: JSONBody[cmds.WhatsAppSetup], ctx: CtxDep, services: ServicesDep
    ) -> IntegrationChanged:
        """Configure the Business API or a WhatsApp Web bridge; becomes active unless
        `activate` is false (the first provider is always active)."""
        _check_destination(services, data.base_url)
        written = cmds.setup_provider(services.app, services.secret_box, WHATSAPP, data, ctx)
        return _changed(services, WHATSAPP, written)

    @put("/whatsapp/switch", opt=MANAGE, sync_to_thread=True, operation_id="switchWhatsApp")
    def switch_whatsapp(
        self, data: JSONBody[SwitchBody], ctx: CtxDep, services: ServicesDep
    ) -> IntegrationChanged:
        """Make another configured provider the active one; the history stays one."""
        written = cmds.switch_provider(services.app, WHATSAPP, data.provider, ctx)
        return _changed(services, WHATSAPP, written)

    @post(
        "/whatsapp/qr-code",
        opt=MANAGE,
        sync_to_thread=True,
        status_code=200,
        operation_id="whatsAppQrCode",
    )
    def qr_code(self, ctx: CtxDep, services: ServicesDep) -> QrCode:
        """Start the web bridge session (with our signed webhook) and return its QR value."""
        creds = cmds.credentials(
            services.app, services.secret_box, ctx.organization_id, WHATSAPP, "web_bridge"
        )
        if creds is None:
            raise IntegrationMissingError(
                "no WhatsApp Web bridge is set up: POST /integrations/whatsapp/setup first"
            )
        url = cmds.webhook_urls(services.settings.public_url, ctx.organization_id, "web_bridge")
        state: SessionState = services.providers.bridge_sessions(creds).start_session(
            url["webhook"]
        )
        warning = cmds.SCHEMAS[WHATSAPP]["web_bridge"].warning or ""
        return QrCode(status=state.status, qr=state.qr, webhook_url=url["webhook"], warning=warning)

    @get("/voip", opt=MANAGE, sync_to_thread=True, operation_id="getVoip")
    def voip(self, ctx: CtxDep, services: ServicesDep) -> cmds.IntegrationView:
        """The organization's VoIP providers (twilio, telnyx) and the active one."""
        return cmds.integration(
            services.app, VOIP, ctx.organization_id, services.settings.public_url
        )

    @post("/voip/setup", opt=MANAGE, sync_to_thread=True, status_code=200, operation_id="setUpVoip")
    def setup_voip(
        self, data: JSONBody[cmds.VoipSetup], ctx: CtxDep, services: ServicesDep
    ) -> IntegrationChanged:
        """Configure Twilio or Telnyx; becomes active unless `activate` is false."""
        _check_destination(services, data.base_url)
        written = cmds.setup_provider(services.app, services.secret_box, VOIP, data, ctx)
        return _changed(services, VOIP, written)

    @put("/voip/switch", opt=MANAGE, sync_to_thread=True, operation_id="switchVoip")
    def switch_voip(
        self, data: JSONBody[SwitchBody], ctx: CtxDep, services: ServicesDep
    ) -> IntegrationChanged:
        """Make another configured VoIP provider the active one."""
        written = cmds.switch_provider(services.app, VOIP, data.provider, ctx)
        return _changed(services, VOIP, written)
