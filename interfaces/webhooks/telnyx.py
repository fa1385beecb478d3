"""Telnyx Call Control webhooks: ed25519 signature check and call-event parsing.

The signed message is `"{telnyx-timestamp}|{raw body}"`, verified with the account's public key
(base64) via PyNaCl directly rather than the SDK's `verify_webhook_signature`: the SDK reads the
clock itself (no injectable `now`, so stale/future windows cannot be tested or tuned), raises one
error type for a missing header and a forgery alike (we answer 401 vs 403), and decodes the body
as UTF-8 outside its error handling (a non-UTF-8 body escapes as UnicodeDecodeError). We verify
the exact raw bytes. Deduplicate on `data.id` (`CallUpdate.event_id`).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from application.conversations.providers import CallUpdate
from interfaces.webhooks import header_value
from interfaces.webhooks.errors import FORBIDDEN, MISSING, BadPayload, WebhookRejected

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"

_STATUSES = {
    "call.initiated": "initiated",
    "call.ringing": "ringing",  # not a Call Control event today; mapped should it appear
    "call.answered": "answered",
    "call.hangup": "ended",
    "call.recording.saved": "recording",  # may arrive before the hangup: it ends nothing
}
# hangup_cause -> outcome; call_rejected depends on who rejected (see _outcome)
_OUTCOMES = {
    "normal_clearing": "completed",
    "time_limit": "completed",  # connected, then cut at the maximum duration
    "user_busy": "busy",
    "no_answer": "no_answer",
    "timeout": "no_answer",
    "originator_cancel": "canceled",
    "not_found": "failed",
    "unspecified": "failed",
}
_DIRECTIONS = {"incoming": "inbound", "outgoing": "outbound"}


def verify_signature(
    public_key_b64: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    tolerance: int = 300,
) -> None:
    """Check `telnyx-signature-ed25519` over `"{telnyx-timestamp}|{body}"` and the time window."""
    signature_b64 = header_value(headers, SIGNATURE_HEADER)
    stamp = header_value(headers, TIMESTAMP_HEADER)
    if not signature_b64 or not stamp:
        raise WebhookRejected(MISSING, "telnyx signature or timestamp is missing")
    key = _decode(public_key_b64, 32, "public key is not configured correctly")
    signature = _decode(signature_b64, 64, "malformed signature")
    stamp = stamp.strip()
    if not stamp.isdigit():
        raise WebhookRejected(FORBIDDEN, "malformed timestamp")
    try:
        VerifyKey(key).verify(stamp.encode() + b"|" + body, signature)
    except BadSignatureError:
        raise WebhookRejected(FORBIDDEN, "signature mismatch") from None
    # the timestamp is signed, so this bounds replays of a captured request to +/- tolerance
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        raise WebhookRejected(FORBIDDEN, "timestamp outside tolerance")


def _decode(value: str | None, size: int, reason: str) -> bytes:
    try:
        raw = base64.b64decode((value or "").strip(), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected(FORBIDDEN, reason) from None
    if len(raw) != size:
        raise WebhookRejected(FORBIDDEN, reason)
    return raw


# wire shapes


class _Urls(msgspec.Struct):
    mp3: str | None = None
    wav: str | None = None


class _Payload(msgspec.Struct):
    call_control_id: str | None = None
    call_leg_id: str | None = None
    call_session_id: str | None = None
    caller: str | None = msgspec.field(name="from", default=None)
    to: str | None = None
    direction: str | None = None
    hangup_cause: str | None = None
    hangup_source: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    recording_urls: _Urls | None = None
    public_recording_urls: _Urls | None = None
    recording_started_at: datetime | None = None
    recording_ended_at: datetime | None = None


class _Data(msgspec.Struct):
    id: str
    event_type: str
    record_type: str = "event"
    occurred_at: datetime | None = None
    payload: _Payload | None = None


class _Envelope(msgspec.Struct):
    data: _Data


_envelope = msgspec.json.Decoder(_Envelope)


def parse(body: bytes, now: datetime | None = None) -> CallUpdate | None:
    """The call progress in a Call Control webhook; None for events we do not track."""
    try:
        data = _envelope.decode(body).data
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadPayload(f"not a Telnyx webhook: {exc}") from None
    status = _STATUSES.get(data.event_type)
    if status is None or data.record_type != "event":
        return None
    payload = data.payload or _Payload()
    # call_control_id is what dialling returns (outbound calls are stored with it); the
    # recording event may omit it, so fall back to the leg, then the session id
    call_id = payload.call_control_id or payload.call_leg_id or payload.call_session_id
    if not call_id:
        raise BadPayload("no call id in payload")
    at = _aware(data.occurred_at) or now or datetime.now(UTC)
    update = CallUpdate(
        provider_call_id=call_id,
        event_id=data.id,
        status=status,
        at=at,
        direction=_DIRECTIONS.get(payload.direction or ""),
        from_number=payload.caller,
        to_number=payload.to,
    )
    if data.event_type == "call.hangup":
        outcome = _outcome(payload)
        duration = _seconds(payload.start_time, payload.end_time or data.occurred_at)
        return msgspec.structs.replace(
            update,
            outcome=outcome,
            duration_seconds=duration if outcome == "completed" else None,
        )
    if data.event_type == "call.recording.saved":
        # public URLs (when enabled) last; the signed recording_urls expire after 10 minutes
        urls = [u for u in (payload.public_recording_urls, payload.recording_urls) if u]
        return msgspec.structs.replace(
            update,
            recording_url=next((u.mp3 for u in urls if u.mp3), None),
            recording_duration=_seconds(payload.recording_started_at, payload.recording_ended_at),
        )
    return update


def _outcome(payload: _Payload) -> str:
    if payload.hangup_cause == "call_rejected":
        # the callee declining is a busy line to the caller; otherwise the network refused it
        return "busy" if payload.hangup_source == "callee" else "failed"
    return _OUTCOMES.get(payload.hangup_cause or "", "failed")


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    start, end = _aware(start), _aware(end)
    if start is None or end is None or end < start:
        return None
    return int((end - start).total_seconds())


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
