"""Telnyx click-to-call through the Call Control API: `POST /v2/calls` (Dial).

`command_id` carries the call id: Telnyx ignores a second Dial with the same `command_id`, so an
outbox retry after a lost answer does not ring the contact twice.
"""

from __future__ import annotations

from typing import Any

import httpx

from application.conversations.providers import TELNYX, CallAccepted, Credentials, OutboundCall
from interfaces.providers import bad_response, exchange, secret, setting

API = "https://api.telnyx.com/v2"
PROVIDER = "Telnyx"


class TelnyxCalls:
    """Implements CallPlacer for one organization's Call Control application."""

    provider_type = TELNYX

    def __init__(self, credentials: Credentials, client: httpx.Client) -> None:
        base = (credentials.settings.get("base_url") or API).rstrip("/")
        self._url = f"{base}/calls"
        self._connection_id = setting(credentials, "connection_id")
        self._headers = {
            "Authorization": f"Bearer {secret(credentials, 'api_key')}",
            "Accept": "application/json",
        }
        self._client = client

    def place_call(self, call: OutboundCall) -> CallAccepted:
        body = {
            "connection_id": self._connection_id,
            "to": call.to_number,
            "from": call.from_number,
            "webhook_url": call.status_callback_url,
            "command_id": call.idempotency_key,
        }
        answer = exchange(
            self._client,
            "POST",
            self._url,
            provider=PROVIDER,
            headers=self._headers,
            body=body,
            read_error=telnyx_error,
        )
        try:
            return CallAccepted(provider_call_id=str(answer["data"]["call_control_id"]))
        except (KeyError, TypeError) as exc:
            raise bad_response(PROVIDER, "the answer carries no call_control_id") from exc


def telnyx_error(answer: Any) -> tuple[str | None, str | None]:
    """`{"errors": [{"code", "title", "detail"}]}`: the first error speaks for the request."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    first = errors[0]
    parts = [str(first[key]) for key in ("title", "detail") if first.get(key)]
    code = first.get("code")
    return ("; ".join(parts) or None), (str(code) if code is not None else None)
