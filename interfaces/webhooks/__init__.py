"""Inbound provider webhooks: signature checks and payload parsers, free of any HTTP framework.

One module per provider. Each `verify_*` raises `errors.WebhookRejected` (401/403) and each
`parse*` raises `errors.BadPayload` (400); routes translate both once. Parsers return the
provider-neutral structs of `application.conversations.providers`.
"""

from __future__ import annotations

from collections.abc import Mapping


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, matched case-insensitively (plain dicts are not case-insensitive)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None
