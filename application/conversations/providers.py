"""Ports to the messaging and voice providers, and the provider-neutral shapes they speak.

Adapters in `interfaces/providers/` implement these Protocols for the WhatsApp Cloud API, a
WhatsApp Web bridge (WAHA), Twilio and Telnyx. Webhook parsers in `interfaces/webhooks/` turn
each provider's payload into the neutral `Inbound*` / `*Update` structs below, which the
command handlers of `application/conversations/messages.py` and `…/calls.py` record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

import msgspec

# provider types, as recorded on every message and call (`provider_type`)
BUSINESS_API = "business_api"
WEB_BRIDGE = "web_bridge"
TWILIO = "twilio"
TELNYX = "telnyx"


class ProviderError(Exception):
    """A provider refused or failed a request.

    `retryable` is True for timeouts, connection errors, 429 and 5xx (the outbox tries again
    later with backoff) and False for a request the provider will never accept (4xx).
    """

    def __init__(self, message: str, *, retryable: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class Credentials(msgspec.Struct, frozen=True):
    """One organization's provider configuration with its secrets opened (never logged)."""

    organization_id: UUID
    kind: str
    provider_type: str
    settings: dict[str, str]
    secrets: dict[str, str]
    numbers: tuple[str, ...] = ()

    def __repr__(self) -> str:  # secrets never reach a log line or a traceback
        return f"Credentials({self.organization_id}, {self.kind}, {self.provider_type})"


# outbound


class OutboundMessage(msgspec.Struct, frozen=True):
    """A WhatsApp message to deliver. `idempotency_key` is the message id: same key, same send."""

    idempotency_key: str
    to: str  # E.164, e.g. "+5511987654321"
    text: str | None = None
    template_name: str | None = None
    template_language: str = "en_US"
    template_variables: dict[str, str] = {}
    reply_to: str | None = None  # a provider message id


class MessageAccepted(msgspec.Struct, frozen=True):
    provider_message_id: str


class OutboundCall(msgspec.Struct, frozen=True):
    """A click-to-call to place. `idempotency_key` is the call id."""

    idempotency_key: str
    from_number: str  # E.164: one of the organization's provider numbers
    to_number: str  # E.164
    status_callback_url: str  # where the provider posts call progress for this organization
    connect_to: str | None = None  # E.164 of the rep to bridge when the callee answers


class CallAccepted(msgspec.Struct, frozen=True):
    provider_call_id: str


class SessionState(msgspec.Struct, frozen=True):
    """A WhatsApp Web bridge session: qr_required | connecting | connected | failed | stopped."""

    status: str
    qr: str | None = None  # the raw QR value to render, when status is qr_required


class MessageSender(Protocol):
    provider_type: str

    def send_message(self, message: OutboundMessage) -> MessageAccepted:
        """Deliver one message; raise ProviderError on failure."""


class CallPlacer(Protocol):
    provider_type: str

    def place_call(self, call: OutboundCall) -> CallAccepted:
        """Ask the provider to place a call; raise ProviderError on failure."""


class BridgeSessions(Protocol):
    def start_session(self, webhook_url: str) -> SessionState:
        """Create/start the bridge session with our webhook (signed with the HMAC key)."""

    def session_state(self) -> SessionState:
        """The session's status, with the QR value when a scan is required."""


class ProviderFactory(Protocol):
    """Builds an adapter for one organization's configured provider."""

    def message_sender(self, credentials: Credentials) -> MessageSender: ...

    def call_placer(self, credentials: Credentials) -> CallPlacer: ...

    def bridge_sessions(self, credentials: Credentials) -> BridgeSessions: ...


class SecretBox(Protocol):
    """Seals provider secrets for storage; bound to the organization and the secret's name."""

    def seal(self, organization_id: UUID, name: str, plaintext: str) -> str: ...

    def open(self, organization_id: UUID, name: str, sealed: str) -> str:
        """The plaintext; raise ValueError if the value was not sealed for this org and name."""


# inbound (what webhook parsers produce)


class InboundMessage(msgspec.Struct, frozen=True):
    """A message a contact sent us. `from_phone` as the provider gave it (digits, +E.164,
    `whatsapp:+…` or `…@c.us`); handlers normalise it to E.164."""

    provider_message_id: str
    from_phone: str
    sent_at: datetime
    text: str
    message_type: str = "text"  # text, image, audio, …; non-text kinds get a short text
    contact_name: str | None = None


class MessageStatusUpdate(msgspec.Struct, frozen=True):
    """A delivery status of a message we sent: sent | delivered | read | failed."""

    provider_message_id: str
    status: str
    at: datetime
    recipient: str | None = None
    error: str | None = None
    #: our message id when the provider echoes it (Meta's `biz_opaque_callback_data`): a status
    #: may arrive before the outbox has recorded the provider's id for the message
    our_message_id: str | None = None


class CallUpdate(msgspec.Struct, frozen=True):
    """A call progress callback, normalised.

    status: initiated | ringing | answered | ended | recording (a recording is ready; it says
    nothing of the call's end). `event_id` deduplicates retries
    (Twilio idempotency token or CallSid+status+sequence; Telnyx `data.id`).
    outcome (when ended): completed | no_answer | busy | failed | canceled | voicemail.
    """

    provider_call_id: str
    event_id: str
    status: str
    at: datetime
    direction: str | None = None  # inbound | outbound
    from_number: str | None = None
    to_number: str | None = None
    duration_seconds: int | None = None
    outcome: str | None = None
    recording_url: str | None = None
    recording_duration: int | None = None


class BridgeSessionUpdate(msgspec.Struct, frozen=True):
    """A WhatsApp Web bridge session status change (session.status)."""

    session: str
    status: str  # qr_required | connecting | connected | failed | stopped
    at: datetime
