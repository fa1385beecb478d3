"""Provider integrations: which providers exist, what each needs, and how they are held.

An organization configures at most one provider of each type per kind and has one *active*
provider per kind (WhatsApp, VoIP). Secrets reach the domain already sealed by the application
(encrypted with a key from configuration): the domain only checks they are present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain import values as v
from domain.errors import InvalidValueError

WHATSAPP = "whatsapp"
VOIP = "voip"


@dataclass(frozen=True)
class ProviderSchema:
    """The fields a provider needs: plain settings, phone-number lists, and secrets."""

    settings: tuple[str, ...]
    secrets: tuple[str, ...]
    numbers: bool = False
    optional: tuple[str, ...] = ()
    warning: str | None = None


SCHEMAS: dict[str, dict[str, ProviderSchema]] = {
    WHATSAPP: {
        "business_api": ProviderSchema(
            settings=("phone_number_id",),
            optional=("business_account_id", "api_version", "base_url"),
            secrets=("access_token", "app_secret", "verify_token"),
        ),
        "web_bridge": ProviderSchema(
            settings=("base_url", "session"),
            secrets=("api_key", "hmac_key"),
            warning=(
                "The WhatsApp Web bridge is unofficial: WhatsApp may ban a number it detects "
                "being automated. Prefer the Business API for production traffic."
            ),
        ),
    },
    VOIP: {
        "twilio": ProviderSchema(
            settings=("account_sid",),
            optional=("base_url", "twiml_url", "forward_to"),
            secrets=("auth_token",),
            numbers=True,
        ),
        "telnyx": ProviderSchema(
            settings=("connection_id", "public_key"),
            optional=("base_url",),
            secrets=("api_key",),
            numbers=True,
        ),
    },
}


@dataclass(frozen=True)
class ProviderConfig:
    """One configured provider: plain settings, sealed secrets, and its phone numbers."""

    kind: str
    provider_type: str
    settings: dict[str, str] = field(default_factory=dict)
    sealed_secrets: dict[str, str] = field(default_factory=dict)
    numbers: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """What may be shown: never a secret, only which secrets are set."""
        return {
            "provider_type": self.provider_type,
            "settings": dict(self.settings),
            "numbers": list(self.numbers),
            "secrets_set": sorted(self.sealed_secrets),
        }


def schema(kind: str, provider_type: str) -> ProviderSchema:
    kinds = SCHEMAS.get(kind)
    if kinds is None:
        raise InvalidValueError("kind", f"must be one of {', '.join(sorted(SCHEMAS))}")
    found = kinds.get(provider_type)
    if found is None:
        raise InvalidValueError("provider", f"must be one of {', '.join(sorted(kinds))}")
    return found


def check_settings(
    kind: str,
    provider_type: str,
    settings: dict[str, str],
    sealed_secrets: dict[str, str],
    numbers: list[str],
    previous: ProviderConfig | None,
) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]]:
    """Validated settings, secrets (a missing secret keeps the previous one) and numbers."""
    s = schema(kind, provider_type)
    allowed = set(s.settings) | set(s.optional)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise InvalidValueError(unknown[0], f"is not a setting of {provider_type}")
    clean: dict[str, str] = {}
    for name in (*s.settings, *s.optional):
        value = settings.get(name)
        if value is None and previous is not None:
            value = previous.settings.get(name)
        if value is None or not str(value).strip():
            if name in s.settings:
                raise InvalidValueError(name, "is required")
            continue
        clean[name] = v.text(name, str(value), max_length=500)
        if name == "forward_to":
            clean[name] = _international(clean[name])
        if name in ("base_url", "twiml_url") and not clean[name].startswith(
            ("https://", "http://")
        ):
            raise InvalidValueError(name, "must be an http(s):// URL")
    secrets = dict(previous.sealed_secrets) if previous is not None else {}
    for name, sealed in sealed_secrets.items():
        if name not in s.secrets:
            raise InvalidValueError(name, f"is not a secret of {provider_type}")
        secrets[name] = sealed
    for name in s.secrets:
        if name not in secrets:
            raise InvalidValueError(name, "is required")
    phones: tuple[str, ...] = ()
    if s.numbers:
        given = numbers or (list(previous.numbers) if previous is not None else [])
        if not given:
            raise InvalidValueError("numbers", "at least one phone number is required")
        phones = tuple(_international(n) for n in given)
    elif numbers:
        raise InvalidValueError("numbers", f"{provider_type} takes no numbers")
    return clean, secrets, phones


def _international(number: str) -> str:
    """A provider number as providers dial it: `+` and digits (E.164 shape)."""
    v.phone(number)  # the usual refusal for what is no phone number at all
    digits = "".join(c for c in number if c.isdigit())
    if not number.strip().startswith("+") or not 8 <= len(digits) <= 15:
        raise InvalidValueError("phone", "a provider number is written +<country code><number>")
    return "+" + digits
