"""WhatsApp Business Platform (Cloud API) webhooks: handshake, signature and payload parsing.

Meta signs the raw body (`X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 with the app secret)
and has no timestamp, so idempotency on the wamid is the replay defence. One POST may carry many
entries, changes, messages and statuses; every one of them is parsed. Decoding uses our own
msgspec structs that accept both the current payload (contacts with `user_id`) and older ones
(no `user_id`, no `contacts` at all); fields other than `messages` are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import msgspec

from application.conversations.providers import InboundMessage, MessageStatusUpdate
from interfaces.webhooks.errors import FORBIDDEN, MISSING, BadPayload, WebhookRejected

MAX_BODY_BYTES = 3 * 1024 * 1024  # Meta: a webhook payload can be up to 3 MB
SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX = frozenset("0123456789abcdef")

# statuses only move forward downstream; `played` (voice messages) counts as read
_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
_MEDIA = ("image", "video", "document", "audio", "sticker")


class CloudBatch(msgspec.Struct, frozen=True):
    """Everything one POST carried. `phone_number_ids` lists the business numbers involved;
    `number_of` maps each message's and status's wamid to its business number, since one POST
    may batch changes for several numbers (and so several organizations)."""

    messages: list[InboundMessage]
    statuses: list[MessageStatusUpdate]
    phone_number_ids: list[str]
    number_of: dict[str, str] = {}


def verify_handshake(
    mode: str | None, token: str | None, challenge: str | None, verify_token: str
) -> str:
    """The challenge to echo (200, text/plain) for the `GET ?hub.mode=subscribe&...` handshake."""
    if mode != "subscribe":
        raise WebhookRejected(FORBIDDEN, "handshake mode is not subscribe")
    if not verify_token or token is None:
        raise WebhookRejected(FORBIDDEN, "verify token mismatch")
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise WebhookRejected(FORBIDDEN, "verify token mismatch")
    if challenge is None:
        raise BadPayload("hub.challenge is missing")
    return challenge


def verify_signature(app_secret: str, body: bytes, header: str | None) -> None:
    """Check `X-Hub-Signature-256` over the raw bytes (never a re-serialised body)."""
    if not header:
        raise WebhookRejected(MISSING, "X-Hub-Signature-256 is missing")
    if not app_secret:
        raise WebhookRejected(FORBIDDEN, "no app secret configured")
    scheme, _, given = header.strip().partition("=")
    given = given.lower()
    if scheme.lower() != _PREFIX[:-1] or len(given) != 64 or not set(given) <= _HEX:
        raise WebhookRejected(FORBIDDEN, "malformed X-Hub-Signature-256")
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebhookRejected(FORBIDDEN, "signature mismatch")


# wire shapes (unknown fields are ignored; everything Meta may omit is optional)


class _Profile(msgspec.Struct):
    name: str | None = None


class _Contact(msgspec.Struct):
    profile: _Profile | None = None
    wa_id: str | None = None
    user_id: str | None = None


class _Text(msgspec.Struct):
    body: str = ""


class _Media(msgspec.Struct):
    id: str | None = None
    caption: str | None = None
    filename: str | None = None


class _Location(msgspec.Struct):
    latitude: float | str | None = None
    longitude: float | str | None = None
    name: str | None = None


class _CardName(msgspec.Struct):
    formatted_name: str | None = None
    first_name: str | None = None


class _Card(msgspec.Struct):
    name: _CardName | None = None


class _Reply(msgspec.Struct):
    id: str | None = None
    title: str = ""


class _Interactive(msgspec.Struct):
    type: str = ""
    button_reply: _Reply | None = None
    list_reply: _Reply | None = None


class _Button(msgspec.Struct):
    text: str = ""
    payload: str | None = None


class _Reaction(msgspec.Struct):
    message_id: str | None = None
    emoji: str | None = None


class _System(msgspec.Struct):
    body: str = ""


class _Error(msgspec.Struct):
    code: int | str | None = None
    title: str | None = None
    message: str | None = None


class _Message(msgspec.Struct):
    id: str
    timestamp: str | int
    type: str = "unknown"
    sender: str | None = msgspec.field(name="from", default=None)
    from_user_id: str | None = None
    text: _Text | None = None
    image: _Media | None = None
    video: _Media | None = None
    document: _Media | None = None
    audio: _Media | None = None
    sticker: _Media | None = None
    location: _Location | None = None
    contacts: list[_Card] | None = None
    interactive: _Interactive | None = None
    button: _Button | None = None
    reaction: _Reaction | None = None
    system: _System | None = None


class _Status(msgspec.Struct):
    id: str
    status: str
    timestamp: str | int
    recipient_id: str | None = None
    errors: list[_Error] | None = None
    biz_opaque_callback_data: str | None = None


class _Metadata(msgspec.Struct):
    phone_number_id: str | None = None


class _Value(msgspec.Struct):
    metadata: _Metadata | None = None
    contacts: list[_Contact] | None = None
    messages: list[_Message] | None = None
    statuses: list[_Status] | None = None


class _Change(msgspec.Struct):
    field: str = ""
    value: msgspec.Raw = msgspec.Raw()  # decoded only for field == "messages"


class _Entry(msgspec.Struct):
    id: str | None = None
    changes: list[_Change] = []


class _Envelope(msgspec.Struct):
    object: str | None = None
    entry: list[_Entry] = []


_envelope = msgspec.json.Decoder(_Envelope)
_value = msgspec.json.Decoder(_Value)


def parse(body: bytes) -> CloudBatch:
    """Every message and status of every entry and change; BadPayload if malformed."""
    try:
        envelope = _envelope.decode(body)
        values = [_value.decode(c.value) for e in envelope.entry for c in e.changes if _wanted(c)]
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadPayload(f"not a WhatsApp Cloud webhook: {exc}") from None
    messages: list[InboundMessage] = []
    statuses: list[MessageStatusUpdate] = []
    numbers: list[str] = []
    number_of: dict[str, str] = {}
    for value in values:
        number = value.metadata.phone_number_id if value.metadata else None
        if number and number not in numbers:
            numbers.append(number)
        names = _contact_names(value.contacts or [])
        found = [m for m in (_message(raw, names) for raw in value.messages or []) if m]
        updates = [s for s in (_status(raw) for raw in value.statuses or []) if s]
        messages.extend(found)
        statuses.extend(updates)
        if number:
            number_of.update((m.provider_message_id, number) for m in found)
            number_of.update((s.provider_message_id, number) for s in updates)
    return CloudBatch(messages, statuses, numbers, number_of)


def _wanted(change: _Change) -> bool:
    return change.field == "messages" and len(change.value) > 0


def _contact_names(contacts: list[_Contact]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in contacts:
        name = contact.profile.name if contact.profile else None
        for key in (contact.wa_id, contact.user_id):
            if name and key:
                names[key] = name
    return names


def _message(raw: _Message, names: dict[str, str]) -> InboundMessage | None:
    sender = raw.sender or raw.from_user_id  # user_id only when the number is not shared
    if not sender:
        return None
    name = names.get(raw.sender or "") or names.get(raw.from_user_id or "")
    return InboundMessage(
        provider_message_id=raw.id,
        from_phone=sender,
        sent_at=_unix(raw.timestamp),
        text=_text_of(raw),
        message_type=raw.type,
        contact_name=name,
    )


def _text_of(raw: _Message) -> str:
    kind = raw.type
    if kind == "text":
        return raw.text.body if raw.text else ""
    if kind in _MEDIA:
        media: _Media | None = getattr(raw, kind)
        if media and media.caption:
            return media.caption
        if media and media.filename:
            return f"[{kind}] {media.filename}"
        return f"[{kind}]"
    if kind == "location" and raw.location:
        where = f"[location] {raw.location.latitude},{raw.location.longitude}"
        return f"{where} ({raw.location.name})" if raw.location.name else where
    if kind == "contacts":
        cards = [c.name.formatted_name or c.name.first_name for c in raw.contacts or [] if c.name]
        return " ".join(["[contacts]", ", ".join(n for n in cards if n)]).strip()
    if kind == "interactive" and raw.interactive:
        reply = raw.interactive.button_reply or raw.interactive.list_reply
        return reply.title if reply and reply.title else "[interactive]"
    if kind == "button" and raw.button:
        return raw.button.text or raw.button.payload or "[button]"
    if kind == "reaction":
        emoji = raw.reaction.emoji if raw.reaction else None
        return f"[reaction] {emoji}" if emoji else "[reaction removed]"
    if kind == "system" and raw.system and raw.system.body:
        return raw.system.body
    return f"[{kind}]"


def _status(raw: _Status) -> MessageStatusUpdate | None:
    status = _STATUSES.get(raw.status)
    if status is None:
        return None  # statuses we do not track (e.g. "deleted", "warning") are skipped
    error = None
    if raw.errors:
        first = raw.errors[0]
        error = f"{first.code}: {first.title or first.message or 'error'}"
    return MessageStatusUpdate(
        provider_message_id=raw.id,
        status=status,
        at=_unix(raw.timestamp),
        recipient=raw.recipient_id,
        error=error,
        our_message_id=raw.biz_opaque_callback_data,
    )


def _unix(value: str | int) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise BadPayload("timestamp is not unix seconds") from None
