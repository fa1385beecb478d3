"""Builds provider adapters from an organization's opened credentials (ProviderFactory).

One pooled `httpx.Client` serves every httpx-based adapter; Twilio adapters carry the SDK's own
client. Timeouts are short: the outbox retries, a request must not hold a worker for minutes.
"""

from __future__ import annotations

import httpx

from application.conversations.providers import (
    BUSINESS_API,
    TELNYX,
    TWILIO,
    WEB_BRIDGE,
    BridgeSessions,
    CallPlacer,
    Credentials,
    MessageSender,
)
from interfaces.providers import destinations
from interfaces.providers.cloud_api import CloudApiSender
from interfaces.providers.telnyx_voice import TelnyxCalls
from interfaces.providers.twilio_voice import TwilioCalls
from interfaces.providers.waha import WahaBridge


class HttpProviderFactory:
    """Implements ProviderFactory over HTTP; `close()` releases the shared connection pool."""

    def __init__(self, timeout: float = 10.0, *, allow_private: bool = False) -> None:
        self._timeout = timeout
        self._allow_private = allow_private
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
        )

    def _checked(self, credentials: Credentials) -> Credentials:
        # checked at every use, not only at setup: a name may resolve elsewhere later
        destinations.check(credentials.settings.get("base_url"), self._allow_private)
        return credentials

    def message_sender(self, credentials: Credentials) -> MessageSender:
        credentials = self._checked(credentials)
        if credentials.provider_type == BUSINESS_API:
            return CloudApiSender(credentials, self._client)
        if credentials.provider_type == WEB_BRIDGE:
            return WahaBridge(credentials, self._client)
        raise ValueError(f"no message sender for provider {credentials.provider_type!r}")

    def call_placer(self, credentials: Credentials) -> CallPlacer:
        credentials = self._checked(credentials)
        if credentials.provider_type == TWILIO:
            return TwilioCalls(credentials, timeout=self._timeout)
        if credentials.provider_type == TELNYX:
            return TelnyxCalls(credentials, self._client)
        raise ValueError(f"no call placer for provider {credentials.provider_type!r}")

    def bridge_sessions(self, credentials: Credentials) -> BridgeSessions:
        credentials = self._checked(credentials)
        if credentials.provider_type == WEB_BRIDGE:
            return WahaBridge(credentials, self._client)
        raise ValueError(f"provider {credentials.provider_type!r} has no bridge session")

    def close(self) -> None:
        self._client.close()
