"""The organization's AI settings: read by every member, changed by admins. The organization's
own model key is write-only: sealed (SecretBox) before it reaches an event, never answered."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from application.context import Ctx, Written
from application.conversations.providers import SecretBox
from application.store import CrmApplication
from domain.ai_settings import DEFAULTS, SETTINGS, AiSettings, ai_settings_id
from domain.errors import NotFoundError

KEY_NAME = "openai_api_key"
UNSET: Any = msgspec.UNSET


class AiSettingsView(msgspec.Struct, frozen=True):
    analysis_enabled: bool
    assistant_enabled: bool
    #: lead sources the assistant answers for (empty: every source)
    assistant_sources: list[str]
    handoff_threshold: int
    nurture_threshold: int
    #: an analysed message this urgent (0–100) alerts the lead's assignee at once
    urgency_alert: int
    #: an analysed message this negative (−1..1) alerts the managers
    sentiment_alert: float
    #: the model's name (None: the platform's default, or the offline analyzer without a key)
    model: str | None
    instructions: str | None
    #: whether the organization set its own key (the key itself is never answered)
    api_key_set: bool
    version: int


class ChangeAiSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The settings to change; those left out keep their value. `api_key: null` removes the
    organization's own key."""

    analysis_enabled: bool | msgspec.UnsetType = msgspec.UNSET
    assistant_enabled: bool | msgspec.UnsetType = msgspec.UNSET
    assistant_sources: list[str] | msgspec.UnsetType = msgspec.UNSET
    handoff_threshold: int | msgspec.UnsetType = msgspec.UNSET
    nurture_threshold: int | msgspec.UnsetType = msgspec.UNSET
    urgency_alert: int | msgspec.UnsetType = msgspec.UNSET
    sentiment_alert: float | msgspec.UnsetType = msgspec.UNSET
    model: str | None | msgspec.UnsetType = msgspec.UNSET
    instructions: str | None | msgspec.UnsetType = msgspec.UNSET
    api_key: str | None | msgspec.UnsetType = msgspec.UNSET


def ai_settings_of(app: CrmApplication, organization_id: UUID) -> AiSettings | None:
    try:
        return app.view(AiSettings, ai_settings_id(organization_id), organization_id)
    except NotFoundError:
        return None


def setting(app: CrmApplication, organization_id: UUID, name: str) -> Any:
    """One setting's value for the organization (its default until changed)."""
    settings = ai_settings_of(app, organization_id)
    return settings.values.get(name, DEFAULTS[name]) if settings else DEFAULTS[name]


def organization_key(app: CrmApplication, box: SecretBox, organization_id: UUID) -> str | None:
    """The organization's own model key, opened; None when it has none."""
    settings = ai_settings_of(app, organization_id)
    if settings is None or settings.sealed_api_key is None:
        return None
    return box.open(organization_id, KEY_NAME, settings.sealed_api_key)


def get_ai_settings(app: CrmApplication, ctx: Ctx) -> AiSettingsView:
    settings = ai_settings_of(app, ctx.organization_id)
    values = settings.values if settings else DEFAULTS
    return AiSettingsView(
        **{name: values.get(name, DEFAULTS[name]) for name in SETTINGS},
        api_key_set=bool(settings and settings.sealed_api_key),
        version=settings.version if settings else 0,
    )


def change_ai_settings(
    app: CrmApplication, box: SecretBox, cmd: ChangeAiSettings, ctx: Ctx
) -> Written:
    wanted = ai_settings_id(ctx.organization_id)
    if app.organization_of(wanted) is None:
        settings = AiSettings.start(ctx.organization_id, actor=ctx.actor)
    else:
        settings = app.load(AiSettings, wanted, ctx.organization_id)
    changes = {n: getattr(cmd, n) for n in SETTINGS if getattr(cmd, n) is not UNSET}
    settings.change(changes, actor=ctx.actor)
    if cmd.api_key is not UNSET:
        key = cmd.api_key.strip() if cmd.api_key else None
        sealed = box.seal(ctx.organization_id, KEY_NAME, key) if key else None
        if key is None or organization_key(app, box, ctx.organization_id) != key:
            settings.set_api_key(sealed, actor=ctx.actor)
    return Written(id=settings.id, version=settings.version, position=app.commit(settings))
