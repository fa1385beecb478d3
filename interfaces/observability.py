"""Error reports to Sentry (`SENTRY_DSN`), with no personal data and no secrets in them.

Reported: unhandled exceptions of requests (the 500 answer, see interfaces/http/problems.py),
tagged with the request id, route template, method, organization and user ids; and failures of
the background threads (projectors, outbox), tagged with their component. Nothing else: no
default or auto-enabled integration (the logging one would send every error log line's raw
fields, the stdlib one providers' URLs as breadcrumbs; the auto-enabled ones patch libraries for
the whole process), no local variables, no request bodies, no breadcrumbs; `scrub` removes
cookies, credential headers and query strings from every event and masks credentials, e-mail
addresses and phone numbers in messages. Without a DSN every function here does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import sentry_sdk
import structlog
from sentry_sdk.integrations.asgi import SentryAsgiMiddleware
from sentry_sdk.integrations.atexit import AtexitIntegration
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.types import Event, Hint

from interfaces.logs import REDACTED, SECRET_NAME, SECRET_TEXT
from interfaces.settings import Settings

#: request headers never sent, besides any whose name looks secret (logs.SECRET_NAME)
DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "cookie",
        "set-cookie",
        "forwarded",
        "x-forwarded-for",
        "x-real-ip",
    }
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
#: an international number (+ and digits, maybe spaced), or a long run of digits
PHONE = re.compile(r"\+\d[\d ()-]{6,}\d|\b\d{9,}\b")
#: organization ids, user ids, request ids: the tags an event may carry
TAGS = ("organization_id", "user_id", "request_id", "route", "method", "component")


def _release() -> str | None:
    try:
        return f"loved-crm@{version('loved-crm')}"
    except PackageNotFoundError:
        return None


def init_sentry(settings: Settings) -> bool:
    """Start reporting to Sentry when a DSN is configured; True if it did."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        release=_release(),
        traces_sample_rate=settings.sentry_traces_sample_rate,
        # personal data off: send_default_pii unset means False (sentry-sdk 2.76 deprecates
        # passing it); the SDK's default denylist scrubber then stays on behind `scrub`
        include_local_variables=False,
        max_request_body_size="never",
        max_breadcrumbs=0,
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[DedupeIntegration(), AtexitIntegration()],
        auto_session_tracking=False,
        before_send=scrub,
        before_send_transaction=scrub,
    )
    return True


def shutdown_sentry(timeout: float = 2.0) -> None:
    """Send what is queued, then stop reporting (a later `init_sentry` starts again)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)


def reporting() -> bool:
    return sentry_sdk.get_client().is_active()


def report_exception(error: BaseException, **tags: object) -> None:
    """Report one exception with these tags (None values left out); nothing without a DSN."""
    if not reporting():
        return
    sentry_sdk.capture_exception(
        error, tags={k: str(v)[:200] for k, v in tags.items() if v is not None}
    )


def report_request_error(scope: Any, error: BaseException) -> None:
    """An unhandled exception of a request: tagged with who and where, never with what was sent.

    The request id is the one the request-log middleware bound; the organization and user are
    the tenant guard's (absent before it ran or on routes without it).
    """
    if not reporting():
        return
    ctx = scope.get("state", {}).get("ctx")
    report_exception(
        error,
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        organization_id=getattr(ctx, "organization_id", None),
        user_id=getattr(ctx, "user_id", None),
        route=scope.get("path_template") or "unmatched",
        method=scope.get("method"),
    )


def background_reporter(component: str) -> Callable[[BaseException], None]:
    """A failure callback for a background thread (projector runner, outbox worker)."""

    def report(error: BaseException) -> None:
        report_exception(error, component=component)

    return report


def sentry_asgi(app: Any) -> Any:
    """Wrap the ASGI app when reporting: one Sentry scope per request, transactions (if sampled)
    named by the route template, never by the path (which holds ids)."""
    if not reporting():
        return app

    async def named(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        finally:
            if scope.get("type") in ("http", "websocket"):
                sentry_sdk.get_current_scope().set_transaction_name(
                    scope.get("path_template") or "unmatched", source="route"
                )

    return SentryAsgiMiddleware(named, transaction_style="url")


def scrub(event: Event, _hint: Hint) -> Event | None:
    """The last look at every event before it leaves: drop what could be personal or secret."""
    data: Any = event
    request = data.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: value
                for name, value in headers.items()
                if name.lower() not in DROPPED_HEADERS and not SECRET_NAME.search(name)
            }
    for key in ("user", "breadcrumbs", "extra"):
        data.pop(key, None)
    for exception in (data.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = mask_text(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for key in ("message", "logentry"):
        value = data.get(key)
        if isinstance(value, str):
            data[key] = mask_text(value)
        elif isinstance(value, dict):
            data[key] = {
                k: mask_text(v) if isinstance(v, str) else v
                for k, v in value.items()
                if k != "params"
            }
    return event


def mask_text(text: str) -> str:
    """Credentials, e-mail addresses and phone numbers out of a free text (an error message)."""
    for pattern, replacement in SECRET_TEXT:
        text = pattern.sub(replacement, text)
    text = EMAIL.sub(REDACTED, text)
    return PHONE.sub(REDACTED, text)
