"""Twilio Voice webhooks: `X-Twilio-Signature` check, incoming-call and status-callback parsing.

The signature covers the public URL Twilio requested plus every POST parameter, including ones
Twilio adds without notice, so it is checked over all received params with the SDK's own
`RequestValidator`. Retries carry `I-Twilio-Idempotency-Token`; without it, the dedupe key is
(CallSid, CallStatus, SequenceNumber).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.voice_response import VoiceResponse

from application.conversations.providers import CallUpdate
from interfaces.webhooks.errors import FORBIDDEN, MISSING, BadPayload, WebhookRejected

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"

Params = Mapping[str, str] | Sequence[tuple[str, str]]

# CallStatus -> (status, outcome)
_STATUSES: dict[str, tuple[str, str | None]] = {
    "queued": ("initiated", None),
    "initiated": ("initiated", None),
    "ringing": ("ringing", None),
    "in-progress": ("answered", None),
    "completed": ("ended", "completed"),
    "busy": ("ended", "busy"),
    "failed": ("ended", "failed"),
    "no-answer": ("ended", "no_answer"),
    "canceled": ("ended", "canceled"),
}


class _Pairs:
    """Form pairs as the validator reads a multidict: names by iteration, values by getall."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = list(pairs)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, _ in self._pairs])

    def __len__(self) -> int:
        return len(self._pairs)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


def verify_signature(
    auth_token: str,
    url: str,
    params: Params,
    signature: str | None,
    signature_settings: str | None = None,
) -> None:
    """Check `X-Twilio-Signature` for the public `url` and all POST `params`.

    `signature_settings` is the `X-Twilio-Webhooks-Signature-Settings` header, if any: it selects
    HMAC-SHA256 (then `auth_token` must be the shared key's secret) instead of HMAC-SHA1.
    """
    if not signature:
        raise WebhookRejected(MISSING, "X-Twilio-Signature is missing")
    if not auth_token:
        raise WebhookRejected(FORBIDDEN, "no auth token configured")
    form = params if isinstance(params, Mapping) else _Pairs(params)
    algorithm = get_signature_algorithm(signature_settings)
    if not RequestValidator(auth_token).validate(url, form, signature, algorithm=algorithm):
        raise WebhookRejected(FORBIDDEN, "signature mismatch")


def parse_voice(params: Params, now: datetime | None = None) -> CallUpdate:
    """The incoming-call webhook (the Voice URL): a new inbound call, initiated or ringing."""
    form = _as_dict(params)
    sid = _call_sid(form)
    status, _ = _STATUSES.get(form.get("CallStatus", ""), ("ringing", None))
    return CallUpdate(
        provider_call_id=sid,
        event_id=f"{sid}:incoming",  # one incoming-call webhook per call, whatever the retries
        status=status if status in ("initiated", "ringing") else "ringing",
        at=_timestamp(form) or now or datetime.now(UTC),
        direction=_direction(form.get("Direction")) or "inbound",
        from_number=form.get("From") or None,
        to_number=form.get("To") or None,
    )


def parse_status(
    params: Params, idempotency_token: str | None, now: datetime | None = None
) -> CallUpdate:
    """A voice status callback; BadPayload without a CallSid or with an unknown CallStatus."""
    form = _as_dict(params)
    sid = _call_sid(form)
    call_status = form.get("CallStatus", "")
    if call_status not in _STATUSES:
        raise BadPayload("unknown CallStatus")
    status, outcome = _STATUSES[call_status]
    if outcome == "completed" and form.get("AnsweredBy", "").startswith("machine"):
        outcome = "voicemail"  # answering-machine detection said a machine took the call
    sequence = form.get("SequenceNumber", "")
    return CallUpdate(
        provider_call_id=sid,
        event_id=idempotency_token or f"{sid}:{call_status}:{sequence}",
        status=status,
        at=_timestamp(form) or now or datetime.now(UTC),
        direction=_direction(form.get("Direction")),
        from_number=form.get("From") or None,
        to_number=form.get("To") or None,
        duration_seconds=_int(form.get("CallDuration")) if status == "ended" else None,
        outcome=outcome,
        recording_url=form.get("RecordingUrl") or None,
        recording_duration=_int(form.get("RecordingDuration")),
    )


def twiml_response(say: str | None = None, dial: str | None = None) -> str:
    """A minimal TwiML document answering the incoming-call webhook: say, then connect."""
    response = VoiceResponse()
    if say:
        response.say(say)
    if dial:
        response.dial(dial)
    return str(response)


def _as_dict(params: Params) -> dict[str, str]:
    return dict(params.items()) if isinstance(params, Mapping) else dict(params)


def _call_sid(form: Mapping[str, str]) -> str:
    sid = form.get("CallSid")
    if not sid:
        raise BadPayload("CallSid is missing")
    return sid


def _direction(value: str | None) -> str | None:
    if value == "inbound":
        return "inbound"
    if value and value.startswith("outbound"):  # outbound-api, outbound-dial
        return "outbound"
    return None


def _timestamp(form: Mapping[str, str]) -> datetime | None:
    value = form.get("Timestamp")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)  # RFC 2822, e.g. "Tue, 12 Nov 2024 14:02:11 +0000"
    except (TypeError, ValueError):
        raise BadPayload("Timestamp is not an RFC 2822 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
