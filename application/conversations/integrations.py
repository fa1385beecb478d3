"""Provider integrations: set up, switch and read each organization's WhatsApp and VoIP providers.

Secrets are sealed (SecretBox) before they reach the Organization's events and are opened only
to build an adapter (`credentials`); the API shows which secrets are set, never their values.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.conversations.providers import Credentials, SecretBox
from application.store import CrmApplication
from domain.errors import InvalidValueError
from domain.integrations import SCHEMAS, VOIP, WHATSAPP, schema
from domain.organization import Organization


class WhatsAppSetup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """business_api: phone_number_id, access_token, app_secret, verify_token;
    web_bridge: base_url, session, api_key, hmac_key. A secret left out keeps its value."""

    provider: str
    phone_number_id: str | None = None
    business_account_id: str | None = None
    api_version: str | None = None
    base_url: str | None = None
    access_token: str | None = None
    app_secret: str | None = None
    verify_token: str | None = None
    session: str | None = None
    api_key: str | None = None
    hmac_key: str | None = None
    activate: bool = True


class VoipSetup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """twilio: account_sid, auth_token, numbers; telnyx: api_key, public_key, connection_id,
    numbers. A secret left out keeps its value."""

    provider: str
    account_sid: str | None = None
    auth_token: str | None = None
    api_key: str | None = None
    public_key: str | None = None
    connection_id: str | None = None
    base_url: str | None = None
    twiml_url: str | None = None  # twilio: the TwiML a placed call runs when answered
    forward_to: str | None = None  # twilio: where an inbound call is connected (else a message)
    numbers: list[str] | None = None
    activate: bool = True


class ProviderView(msgspec.Struct, frozen=True):
    provider_type: str
    active: bool
    settings: dict[str, str]
    numbers: list[str]
    secrets_set: list[str]
    webhook_urls: dict[str, str]
    warning: str | None = None


class IntegrationView(msgspec.Struct, frozen=True):
    kind: str
    active_provider: str | None
    providers: list[ProviderView]
    available: list[str]


WEBHOOK_PATHS: dict[str, dict[str, str]] = {
    "business_api": {"webhook": "/webhooks/whatsapp/{org}"},
    "web_bridge": {"webhook": "/webhooks/whatsapp-web/{org}"},
    "twilio": {"voice": "/webhooks/twilio/{org}/voice", "status": "/webhooks/twilio/{org}/status"},
    "telnyx": {"webhook": "/webhooks/telnyx/{org}"},
}


def webhook_urls(public_url: str, organization_id: UUID, provider_type: str) -> dict[str, str]:
    paths = WEBHOOK_PATHS.get(provider_type, {})
    return {k: public_url + p.format(org=organization_id) for k, p in paths.items()}


def setup_provider(
    app: CrmApplication,
    box: SecretBox,
    kind: str,
    cmd: WhatsAppSetup | VoipSetup,
    ctx: Ctx,
) -> Written:
    s = schema(kind, cmd.provider)
    given = {
        f: getattr(cmd, f)
        for f in cmd.__struct_fields__
        if f not in ("provider", "activate", "numbers") and getattr(cmd, f) is not None
    }
    known = set(s.settings) | set(s.optional) | set(s.secrets)
    for name in given:
        if name not in known:
            raise InvalidValueError(name, f"is not a field of {cmd.provider}")
    secrets = {n: given.pop(n) for n in s.secrets if n in given}
    for name, value in secrets.items():
        if not isinstance(value, str) or not value.strip() or len(value) > 4096:
            raise InvalidValueError(name, "must be a non-empty string of at most 4096 characters")
    sealed = {n: box.seal(ctx.organization_id, n, value) for n, value in secrets.items()}
    numbers = getattr(cmd, "numbers", None) or []
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    org.configure_provider(
        kind,
        cmd.provider,
        settings=given,
        sealed_secrets=sealed,
        numbers=list(numbers),
        activate=cmd.activate,
        actor=ctx.actor,
    )
    return Written(id=org.id, version=org.version, position=app.commit(org))


def switch_provider(app: CrmApplication, kind: str, provider: str, ctx: Ctx) -> Written:
    org = app.load(Organization, ctx.organization_id, ctx.organization_id)
    org.switch_provider(kind, provider, actor=ctx.actor)
    return Written(id=org.id, version=org.version, position=app.commit(org))


def integration(
    app: CrmApplication, kind: str, organization_id: UUID, public_url: str
) -> IntegrationView:
    if kind not in SCHEMAS:
        raise InvalidValueError("kind", f"must be one of {', '.join(sorted(SCHEMAS))}")
    org = app.view(Organization, organization_id, organization_id)
    active = org.active_providers.get(kind)
    views = [
        ProviderView(
            provider_type=name,
            active=name == active,
            settings=dict(config.settings),
            numbers=list(config.numbers),
            secrets_set=sorted(config.sealed_secrets),
            webhook_urls=webhook_urls(public_url, organization_id, name),
            warning=SCHEMAS[kind][name].warning,
        )
        for name, config in sorted(org.providers.get(kind, {}).items())
    ]
    return IntegrationView(
        kind=kind, active_provider=active, providers=views, available=sorted(SCHEMAS[kind])
    )


def credentials(
    app: CrmApplication,
    box: SecretBox,
    organization_id: UUID,
    kind: str,
    provider_type: str | None = None,
) -> Credentials | None:
    """The organization's configured provider (the active one by default), secrets opened."""
    org = app.view(Organization, organization_id, organization_id)
    config = org.provider(kind, provider_type)
    if config is None:
        return None
    opened: dict[str, Any] = {
        name: box.open(organization_id, name, sealed)
        for name, sealed in config.sealed_secrets.items()
    }
    return Credentials(
        organization_id=organization_id,
        kind=kind,
        provider_type=config.provider_type,
        settings=dict(config.settings),
        secrets=opened,
        numbers=config.numbers,
    )


__all__ = [
    "SCHEMAS",
    "VOIP",
    "WHATSAPP",
    "IntegrationView",
    "VoipSetup",
    "WhatsAppSetup",
    "Written",
    "credentials",
    "integration",
    "setup_provider",
    "switch_provider",
]
