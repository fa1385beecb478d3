"""WhatsApp Web bridge through WAHA: send text, create/start the session, read its state and QR.

A bridge speaks as a logged-in phone, so it has no templates and no idempotency key: the
outbox's key stays on our side. WAHA signs the webhooks it posts with the session's HMAC key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from application.conversations.providers import (
    WEB_BRIDGE,
    Credentials,
    MessageAccepted,
    OutboundMessage,
    ProviderError,
    SessionState,
)
from interfaces.providers import bad_response, exchange, secret, setting

PROVIDER = "WAHA"
EVENTS = ["message", "message.ack", "session.status"]
STATUSES = {
    "STOPPED": "stopped",
    "STARTING": "connecting",
    "SCAN_QR_CODE": "qr_required",
    "WORKING": "connected",
    "FAILED": "failed",
}


class WahaBridge:
    """Implements MessageSender and BridgeSessions for one organization's WAHA session."""

    provider_type = WEB_BRIDGE

    def __init__(self, credentials: Credentials, client: httpx.Client) -> None:
        self._base = setting(credentials, "base_url").rstrip("/")
        self._session = credentials.settings.get("session") or "default"
        self._headers = {"X-Api-Key": secret(credentials, "api_key"), "Accept": "application/json"}
        self._hmac_key = credentials.secrets.get("hmac_key")
        self._client = client

    def send_message(self, message: OutboundMessage) -> MessageAccepted:
        if message.template_name:
            raise ProviderError(
                "a WhatsApp Web bridge cannot send templates",
                retryable=False,
                code="template_unsupported",
            )
        if not message.text:
            raise ProviderError("a message needs a text", retryable=False, code="empty")
        body: dict[str, Any] = {
            "session": self._session,
            "chatId": chat_id(message.to),
            "text": message.text,
        }
        if message.reply_to:
            body["reply_to"] = message.reply_to
        answer = self._call("POST", "/api/sendText", body)
        return MessageAccepted(provider_message_id=message_id(answer))

    def start_session(self, webhook_url: str) -> SessionState:
        if not self._hmac_key:
            raise ProviderError(
                "web_bridge: secret 'hmac_key' is not configured",
                retryable=False,
                code="misconfigured",
            )
        webhook = {"url": webhook_url, "events": EVENTS, "hmac": {"key": self._hmac_key}}
        config = {"webhooks": [webhook]}
        try:
            self._call("POST", "/api/sessions", {"name": self._session, "config": config})
        except ProviderError as error:
            if error.code not in ("409", "422"):
                raise
            # the session exists (set up before): bring its webhook up to date and start it
            self._call("PUT", self._session_path(), {"name": self._session, "config": config})
            if self.session_state().status == "stopped":
                self._call("POST", f"{self._session_path()}/start")
        return self.session_state()

    def session_state(self) -> SessionState:
        try:
            info = self._call("GET", self._session_path())
        except ProviderError as error:
            if error.code == "404":
                return SessionState(status="stopped")
            raise
        raw = info.get("status") if isinstance(info, dict) else None
        # an unknown status cannot vouch for a working connection
        status = STATUSES.get(str(raw), "failed")
        if status != "qr_required":
            return SessionState(status=status)
        return SessionState(status=status, qr=self._qr())

    def _qr(self) -> str | None:
        path = f"/api/{quote(self._session, safe='')}/auth/qr"
        try:
            answer = self._call("GET", path, params={"format": "raw"})
        except ProviderError as error:
            if error.retryable:
                raise
            return None  # the QR rotated or the session moved on between the two calls
        if not isinstance(answer, dict):
            return None
        value = answer.get("value") or answer.get("data")
        return str(value) if value else None

    def _session_path(self) -> str:
        return f"/api/sessions/{quote(self._session, safe='')}"

    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        return exchange(
            self._client,
            method,
            self._base + path,
            provider=PROVIDER,
            headers=self._headers,
            body=body,
            params=params,
            read_error=waha_error,
        )


def chat_id(phone: str) -> str:
    """`+55 11 98765-4321` → `5511987654321@c.us`; a chat id passes through."""
    if "@" in phone:
        return phone
    return "".join(ch for ch in phone if ch.isdigit()) + "@c.us"


def message_id(answer: Any) -> str:
    """The serialized id acks will carry, from any engine's answer.

    WEBJS answers `id: {"_serialized": "true_<chat>_<id>", …}`, some versions a plain string;
    NOWEB/GOWS answer a Baileys `key: {remoteJid, fromMe, id}`, serialized the same way.
    """
    if isinstance(answer, dict):
        ident = answer.get("id")
        if isinstance(ident, str) and ident:
            return ident
        if isinstance(ident, dict) and isinstance(ident.get("_serialized"), str):
            return str(ident["_serialized"])
        key = answer.get("key")
        if isinstance(key, dict) and key.get("id") and key.get("remoteJid"):
            chat = str(key["remoteJid"]).replace("@s.whatsapp.net", "@c.us")
            return f"{'true' if key.get('fromMe', True) else 'false'}_{chat}_{key['id']}"
    raise bad_response(PROVIDER, "the answer carries no message id")


def waha_error(answer: Any) -> tuple[str | None, str | None]:
    """NestJS errors: `{"statusCode", "message", "error"}` (message may be a list)."""
    if not isinstance(answer, dict):
        return None, None
    message = answer.get("message") or answer.get("error")
    if isinstance(message, list):
        message = "; ".join(str(part) for part in message)
    return (str(message) if message else None), None
