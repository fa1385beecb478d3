"""Twilio click-to-call through the official SDK (`twilio.rest.Client`).

The SDK builds every URL on `https://api.twilio.com`; `RoutedHttpClient` (the SDK's own
requests-based client) swaps that origin for the `base_url` setting, which is how tests put a
local server speaking the Twilio REST API behind the real SDK. The SDK's `create` methods take no
extra headers, so the call's idempotency key reaches the client through a context variable and
leaves as `I-Twilio-Idempotency-Token` (Twilio documents that header on the webhooks it sends;
the Calls resource does not document honouring it, so a retried create may still place a second
call — the outbox keeps retries rare by treating only 429/5xx/transport failures as retryable).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from application.conversations.providers import (
    TWILIO,
    CallAccepted,
    Credentials,
    OutboundCall,
    ProviderError,
)
from interfaces.providers import is_retryable_status, secret, setting

PROVIDER = "Twilio"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
EVENTS = ["initiated", "ringing", "answered", "completed"]
GREETING = "Please hold while we connect your call."

_extra_headers: ContextVar[tuple[tuple[str, str], ...]] = ContextVar(
    "twilio_extra_headers", default=()
)


class RoutedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # untyped SDK
    """The SDK's HTTP client, sent to `base_url` instead of Twilio, plus per-call headers."""

    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self._base is not None:
            target = urlsplit(url)
            path = self._base.path + target.path
            url = urlunsplit((self._base.scheme, self._base.netloc, path, target.query, ""))
        merged = {**(headers or {}), **dict(_extra_headers.get())}
        return super().request(
            method, url, params, data, merged, auth, timeout, allow_redirects=allow_redirects
        )


class TwilioCalls:
    """Implements CallPlacer with the Twilio SDK; status callbacks go to the call's URL."""

    provider_type = TWILIO

    def __init__(self, credentials: Credentials, *, timeout: float = 10.0) -> None:
        account_sid = setting(credentials, "account_sid")
        auth_token = secret(credentials, "auth_token")
        self._http = RoutedHttpClient(credentials.settings.get("base_url"), timeout)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        # TWILIO_EDGE/TWILIO_REGION from the environment would rename the host under us
        self._client.edge = credentials.settings.get("edge")
        self._client.region = credentials.settings.get("region")
        self._answer = answer_instructions(credentials)

    def place_call(self, call: OutboundCall) -> CallAccepted:
        token = _extra_headers.set(((IDEMPOTENCY_HEADER, call.idempotency_key),))
        try:
            created = self._client.api.v2010.account.calls.create(
                to=call.to_number,
                from_=call.from_number,
                status_callback=call.status_callback_url,
                status_callback_event=EVENTS,
                status_callback_method="POST",
                **(bridge(call) if call.connect_to else self._answer),
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            raise rest_error(exc) from exc
        except requests.RequestException as exc:
            raise ProviderError(
                f"{PROVIDER}: {type(exc).__name__} placing a call",
                retryable=True,
                code="unreachable",
            ) from exc
        except ValueError as exc:  # a 2xx whose body is not JSON
            raise ProviderError(
                f"{PROVIDER}: unreadable answer", retryable=False, code="bad_response"
            ) from exc
        finally:
            _extra_headers.reset(token)
        if not created.sid:
            raise ProviderError(f"{PROVIDER}: no call sid", retryable=False, code="bad_response")
        return CallAccepted(provider_call_id=created.sid)

    def close(self) -> None:
        if self._http.session is not None:
            self._http.session.close()


def bridge(call: OutboundCall) -> dict[str, Any]:
    """When the lead answers, ring the rep's phone and join them (the lead sees our number)."""
    rep = escape(call.connect_to or "")
    caller = escape(call.from_number, {'"': "&quot;"})
    return {"twiml": f'<Response><Dial callerId="{caller}">{rep}</Dial></Response>'}


def answer_instructions(credentials: Credentials) -> dict[str, Any]:
    """What Twilio runs when the callee answers: a TwiML URL if configured, else a greeting."""
    url = credentials.settings.get("twiml_url")
    if url:
        return {"url": url}
    return {"twiml": f"<Response><Say>{escape(GREETING)}</Say></Response>"}


def rest_error(exc: TwilioRestException | TwilioServiceException) -> ProviderError:
    service = isinstance(exc, TwilioServiceException)
    message = (exc.detail or exc.title) if service else exc.msg
    return ProviderError(
        f"{PROVIDER} answered {exc.status}: {message}",
        retryable=is_retryable_status(int(exc.status)),
        code=str(exc.code) if exc.code is not None else str(exc.status),
    )
