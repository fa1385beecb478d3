"""Provider webhook payloads shaped as the providers send them, signed with their algorithms."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator

PHONE_NUMBER_ID = "106540352242922"


def meta_message(wamid: str, sender: str, text: str, ts: int | None = None) -> dict[str, Any]:
    return {
        "from": sender,
        "id": wamid,
        "timestamp": str(ts or int(time.time())),
        "type": "text",
        "text": {"body": text},
    }


def meta_status(wamid: str, status: str, recipient: str, ts: int | None = None) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": status,
        "timestamp": str(ts or int(time.time())),
        "recipient_id": recipient,
    }


def meta_payload(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    *,
    name: str = "Maria Silva",
    phone_number_id: str = PHONE_NUMBER_ID,
) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
    }
    if messages:
        senders = sorted({m["from"] for m in messages})
        value["contacts"] = [{"profile": {"name": name}, "wa_id": s} for s in senders]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }
    # Meta sends escaped unicode: the signature is over exactly these bytes
    return json.dumps(body, ensure_ascii=True).encode()


def meta_signature(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def waha_message(msg_id: str, sender: str, text: str, session: str = "default") -> bytes:
    now = int(time.time())
    return json.dumps(
        {
            "id": "evt_" + msg_id,
            "timestamp": now * 1000,
            "session": session,
            "event": "message",
            "payload": {
                "id": msg_id,
                "timestamp": now,
                "from": f"{sender}@c.us",
                "fromMe": False,
                "to": "15550001111@c.us",
                "body": text,
                "hasMedia": False,
                "ack": 1,
                "ackName": "SERVER",
            },
            "me": {"id": "15550001111@c.us", "pushName": "Acme"},
            "engine": "WEBJS",
            "environment": {"version": "2025.11.1", "engine": "WEBJS", "tier": "CORE"},
        }
    ).encode()


def waha_signature(key: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha512).hexdigest()
    return {
        "X-Webhook-Hmac": digest,
        "X-Webhook-Hmac-Algorithm": "sha512",
        "Content-Type": "application/json",
    }


def twilio_signed(token: str, url: str, params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The form body and headers Twilio would send to `url` (the public URL)."""
    signature = RequestValidator(token).compute_signature(url, params)
    headers = {
        "X-Twilio-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return urlencode(params), headers


def twilio_call(sid: str, status: str, caller: str, callee: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "1" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "Called": callee,
        "Caller": caller,
        "Direction": "inbound",
        "From": caller,
        "To": callee,
        "CallbackSource": "call-progress-events",
        "Timestamp": "Tue, 24 Nov 2026 12:00:00 +0000",
        **extra,
    }


class TelnyxSigner:
    def __init__(self) -> None:
        self.key = SigningKey.generate()
        self.public_key = base64.b64encode(bytes(self.key.verify_key)).decode()

    def headers(self, body: bytes, ts: int | None = None) -> dict[str, str]:
        stamp = str(ts if ts is not None else int(time.time()))
        signature = self.key.sign(f"{stamp}|".encode() + body).signature
        return {
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
            "telnyx-timestamp": stamp,
            "Content-Type": "application/json",
        }


def telnyx_event(event_id: str, event_type: str, call_id: str, **payload: Any) -> bytes:
    return json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": event_id,
                "event_type": event_type,
                "occurred_at": "2026-11-24T12:00:00.000000Z",
                "payload": {
                    "call_control_id": call_id,
                    "call_leg_id": "leg-" + call_id,
                    "call_session_id": "session-" + call_id,
                    "connection_id": "conn-1",
                    **payload,
                },
            },
            "meta": {"attempt": 1, "delivered_to": "https://example.com"},
        }
    ).encode()
