"""WAHA (WhatsApp Web bridge) webhooks: HMAC-SHA512 signature and envelope parsing.

WAHA signs the raw body only (`X-Webhook-Hmac`, hex HMAC-SHA512 with the session's hmac key);
`X-Webhook-Timestamp` is not covered by the HMAC, so the freshness check is a cheap filter and
deduplication on the envelope `id` (`request_id`) and the message id is the real replay defence.
Timestamps: the envelope's and the header's are unix milliseconds, a message's are seconds;
both are accepted everywhere (a value above 10^11 is taken as milliseconds).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from application.conversations.providers import (
    BridgeSessionUpdate,
    InboundMessage,
    MessageStatusUpdate,
)
from interfaces.webhooks import header_value
from interfaces.webhooks.errors import FORBIDDEN, MISSING, BadPayload, WebhookRejected

SIGNATURE_HEADER = "X-Webhook-Hmac"
ALGORITHM_HEADER = "X-Webhook-Hmac-Algorithm"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
REQUEST_ID_HEADER = "X-Webhook-Request-Id"
_HEX = frozenset("0123456789abcdef")
_MS_THRESHOLD = 10**11  # 1973 in milliseconds, year 5138 in seconds

# whatsapp-web.js acks: ERROR -1, PENDING 0, SERVER 1, DEVICE 2, READ 3, PLAYED 4
_ACKS = {-1: "failed", 1: "sent", 2: "delivered", 3: "read", 4: "read"}
_ACK_NAMES = {"ERROR": -1, "PENDING": 0, "SERVER": 1, "DEVICE": 2, "READ": 3, "PLAYED": 4}
_SESSION_STATUSES = {
    "STOPPED": "stopped",
    "STARTING": "connecting",
    "SCAN_QR_CODE": "qr_required",
    "WORKING": "connected",
    "FAILED": "failed",
}
# chats that are not one contact: groups, status broadcasts, channels
_NOT_A_CONTACT = ("@g.us", "@broadcast", "@newsletter")


class BridgeBatch(msgspec.Struct, frozen=True):
    """What one WAHA webhook carried; `request_id` (the envelope id) deduplicates retries."""

    messages: list[InboundMessage]
    statuses: list[MessageStatusUpdate]
    sessions: list[BridgeSessionUpdate]
    request_id: str | None
    session: str | None = None  # the WAHA session name, to find the organization


def verify_signature(
    hmac_key: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    tolerance: int = 300,
) -> None:
    """Check `X-Webhook-Hmac` (and `X-Webhook-Timestamp` when present) on the raw body."""
    given = header_value(headers, SIGNATURE_HEADER)
    if not given:
        raise WebhookRejected(MISSING, "X-Webhook-Hmac is missing")
    if not hmac_key:
        raise WebhookRejected(FORBIDDEN, "no hmac key configured")
    algorithm = header_value(headers, ALGORITHM_HEADER)
    if algorithm is not None and algorithm.strip().lower() != "sha512":
        raise WebhookRejected(FORBIDDEN, "unsupported hmac algorithm")
    given = given.strip().lower()
    if len(given) != 128 or not set(given) <= _HEX:
        raise WebhookRejected(FORBIDDEN, "malformed X-Webhook-Hmac")
    expected = hmac.new(hmac_key.encode(), body, hashlib.sha512).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebhookRejected(FORBIDDEN, "signature mismatch")
    stamp = header_value(headers, TIMESTAMP_HEADER)
    if stamp is not None:
        _check_fresh(stamp, time.time() if now is None else now, tolerance)


def _check_fresh(stamp: str, now: float, tolerance: int) -> None:
    try:
        sent = int(stamp.strip())
    except ValueError:
        raise WebhookRejected(FORBIDDEN, "malformed X-Webhook-Timestamp") from None
    seconds = sent / 1000 if sent > _MS_THRESHOLD else sent
    if abs(now - seconds) > tolerance:
        raise WebhookRejected(FORBIDDEN, "timestamp outside tolerance")


# wire shapes


class _Media(msgspec.Struct):
    url: str | None = None
    mimetype: str | None = None
    filename: str | None = None


class _Location(msgspec.Struct):
    latitude: float | str | None = None
    longitude: float | str | None = None


class _Message(msgspec.Struct):
    id: str
    timestamp: float | None = None
    sender: str | None = msgspec.field(name="from", default=None)
    from_me: bool = msgspec.field(name="fromMe", default=False)
    to: str | None = None
    body: str | None = None
    has_media: bool = msgspec.field(name="hasMedia", default=False)
    media: _Media | None = None
    location: _Location | None = None
    vcards: list[str] | None = msgspec.field(name="vCards", default=None)


class _Ack(msgspec.Struct):
    id: str
    sender: str | None = msgspec.field(name="from", default=None)
    to: str | None = None
    participant: str | None = None
    from_me: bool | None = msgspec.field(name="fromMe", default=None)
    ack: int | None = None
    ack_name: str | None = msgspec.field(name="ackName", default=None)


class _Session(msgspec.Struct):
    status: str
    name: str | None = None


class _Envelope(msgspec.Struct):
    event: str
    payload: msgspec.Raw = msgspec.Raw()
    id: str | None = None
    timestamp: float | None = None
    session: str | None = None


_envelope = msgspec.json.Decoder(_Envelope)
_message = msgspec.json.Decoder(_Message)
_ack = msgspec.json.Decoder(_Ack)
_session = msgspec.json.Decoder(_Session)


def parse(
    body: bytes, *, request_id: str | None = None, received_at: datetime | None = None
) -> BridgeBatch:
    """The envelope's message, ack or session status; other events give an empty batch.

    `request_id` (the `X-Webhook-Request-Id` header) is used when the envelope has no `id`;
    `received_at` stamps events that carry no time of their own (default: now).
    """
    try:
        envelope = _envelope.decode(body)
        payload = envelope.payload
        message = _message.decode(payload) if envelope.event == "message" else None
        ack = _ack.decode(payload) if envelope.event == "message.ack" else None
        session = _session.decode(payload) if envelope.event == "session.status" else None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadPayload(f"not a WAHA webhook: {exc}") from None
    at = _when(envelope.timestamp) or received_at or datetime.now(UTC)
    inbound = _inbound(message, at) if message else None
    status = _status(ack, at) if ack else None
    update = _session_update(session, envelope.session, at) if session else None
    return BridgeBatch(
        messages=[inbound] if inbound else [],
        statuses=[status] if status else [],
        sessions=[update] if update else [],
        request_id=envelope.id or request_id,
        session=envelope.session,
    )


def _inbound(raw: _Message, at: datetime) -> InboundMessage | None:
    if raw.from_me or not raw.sender or raw.sender.endswith(_NOT_A_CONTACT):
        return None
    kind, text = _content(raw)
    return InboundMessage(
        provider_message_id=raw.id,
        from_phone=raw.sender,
        sent_at=_when(raw.timestamp) or at,
        text=text,
        message_type=kind,
    )


def _content(raw: _Message) -> tuple[str, str]:
    if raw.location is not None:
        return "location", f"[location] {raw.location.latitude},{raw.location.longitude}"
    if raw.vcards:
        return "contacts", "[contacts]"
    if raw.has_media:
        major = ((raw.media.mimetype if raw.media else None) or "").split("/")[0]
        kind = major if major in ("image", "audio", "video") else "document"
        return kind, raw.body or f"[{kind}]"
    if raw.body:
        return "text", raw.body
    return "unsupported", "[unsupported]"


def _status(raw: _Ack, at: datetime) -> MessageStatusUpdate | None:
    if _from_me(raw) is False:
        return None  # acks of messages the contact sent us (our own read receipts)
    code = raw.ack if raw.ack is not None else _ACK_NAMES.get((raw.ack_name or "").upper())
    status = _ACKS.get(code) if code is not None else None
    if status is None:
        return None  # PENDING or unknown: nothing to record yet
    contact = _acked_contact(raw)
    if contact is None:
        return None  # a group, a broadcast, a hidden (@lid) id: no conversation of ours
    return MessageStatusUpdate(provider_message_id=raw.id, status=status, at=at, recipient=contact)


def _acked_contact(raw: _Ack) -> str | None:
    """The one contact a message of ours was sent to, from its ack; None if it is no contact.

    WEBJS acks carry the whole message (`to` is the contact). NOWEB's one-to-one acks, and the
    minimal payload WAHA documents for every engine, have no `to`: `fromMe: true` and the
    contact in `from` (the chat's id). The serialized id `true_<chat>_<id>` names the chat too;
    it is the last resort. Group acks name the group (`@g.us`) and the reader in
    `participant`; a `@lid` is WhatsApp's hidden user id, not a phone number.
    """
    if raw.participant or (raw.to and not _one_to_one(raw.to)):
        return None
    chat = raw.id.split("_")[1] if raw.id.count("_") >= 2 else None
    for candidate in (raw.to, raw.sender if _from_me(raw) else None, chat):
        if candidate:
            return candidate if _one_to_one(candidate) else None
    return None


def _from_me(raw: _Ack) -> bool | None:
    """`fromMe`, or when absent what the serialized id says (`true_…` / `false_…`)."""
    if raw.from_me is not None:
        return raw.from_me
    prefix = raw.id.split("_", 1)[0] if "_" in raw.id else ""
    return {"true": True, "false": False}.get(prefix)


def _one_to_one(chat: str) -> bool:
    """A phone-number account (`<digits>@c.us`; NOWEB's internal `@s.whatsapp.net`)."""
    return chat.endswith(("@c.us", "@s.whatsapp.net"))


def _session_update(raw: _Session, session: str | None, at: datetime) -> BridgeSessionUpdate | None:
    status = _SESSION_STATUSES.get(raw.status)
    name = raw.name or session
    if status is None or not name:
        return None
    return BridgeSessionUpdate(session=name, status=status, at=at)


def _when(value: float | None) -> datetime | None:
    if value is None or value <= 0:
        return None
    seconds = value / 1000 if value > _MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise BadPayload("timestamp out of range") from None
