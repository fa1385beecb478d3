"""WhatsApp Business Platform (Cloud API) sender: `POST /{version}/{phone_number_id}/messages`.

Graph has no idempotency header. The outbox's key is our message id; it travels as
`biz_opaque_callback_data`, which Meta does not process but echoes in every status webhook of
that message, so a status can be matched to our message even before the wamid is recorded.
"""

from __future__ import annotations

from typing import Any

import httpx

from application.conversations.providers import (
    BUSINESS_API,
    Credentials,
    MessageAccepted,
    OutboundMessage,
    ProviderError,
)
from interfaces.providers import bad_response, exchange, secret, setting

GRAPH = "https://graph.facebook.com"
API_VERSION = "v23.0"
PROVIDER = "WhatsApp Cloud API"
MAX_TEXT = 4096
# throttling errors may come with a 400; they clear with time, so they are retried
THROTTLED = frozenset({"4", "80007", "130429", "131048", "131056"})


class CloudApiSender:
    """Implements MessageSender for the Cloud API; one instance per organization's number."""

    provider_type = BUSINESS_API

    def __init__(self, credentials: Credentials, client: httpx.Client) -> None:
        base = (credentials.settings.get("base_url") or GRAPH).rstrip("/")
        version = credentials.settings.get("api_version") or API_VERSION
        number = setting(credentials, "phone_number_id")
        self._url = f"{base}/{version}/{number}/messages"
        self._headers = {"Authorization": f"Bearer {secret(credentials, 'access_token')}"}
        self._client = client

    def send_message(self, message: OutboundMessage) -> MessageAccepted:
        body = message_body(message)
        try:
            answer = exchange(
                self._client,
                "POST",
                self._url,
                provider=PROVIDER,
                headers=self._headers,
                body=body,
                read_error=graph_error,
            )
        except ProviderError as error:
            if error.code in THROTTLED and not error.retryable:
                raise ProviderError(str(error), retryable=True, code=error.code) from error
            raise
        try:
            return MessageAccepted(provider_message_id=str(answer["messages"][0]["id"]))
        except (KeyError, IndexError, TypeError) as exc:
            raise bad_response(PROVIDER, "the answer carries no message id") from exc


def message_body(message: OutboundMessage) -> dict[str, Any]:
    """The Graph request body of one message (text or template)."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.to,
    }
    if message.template_name:
        body["type"] = "template"
        body["template"] = template(message)
    elif message.text:
        if len(message.text) > MAX_TEXT:
            raise ProviderError(
                f"text longer than {MAX_TEXT} characters", retryable=False, code="text_too_long"
            )
        body["type"] = "text"
        body["text"] = {"preview_url": False, "body": message.text}
    else:
        raise ProviderError("a message needs a text or a template", retryable=False, code="empty")
    if message.reply_to:
        body["context"] = {"message_id": message.reply_to}
    body["biz_opaque_callback_data"] = message.idempotency_key
    return body


def template(message: OutboundMessage) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": message.template_name,
        "language": {"code": message.template_language},
    }
    variables = list(message.template_variables.items())
    if variables:
        found["components"] = [{"type": "body", "parameters": parameters(variables)}]
    return found


def parameters(variables: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Positional ({{1}}, {{2}}…) in numeric order; named ones keep their order and name."""
    if all(name.isdigit() for name, _ in variables):
        return [{"type": "text", "text": value} for _, value in sorted(variables, key=_position)]
    return [{"type": "text", "parameter_name": name, "text": value} for name, value in variables]


def _position(variable: tuple[str, str]) -> int:
    return int(variable[0])


def graph_error(answer: Any) -> tuple[str | None, str | None]:
    """`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None, None
    code = error.get("code")
    message = error.get("message")
    details = error.get("error_data", {})
    if isinstance(details, dict) and details.get("details"):
        message = f"{message} ({details['details']})"
    return (str(message) if message else None), (str(code) if code is not None else None)
