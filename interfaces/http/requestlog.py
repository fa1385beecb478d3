"""One access line per request, and the request id that ties a request's lines together.

Wraps the whole ASGI handler (routing included), so 404s, 405s and CORS preflights are logged
too. Never logs headers or bodies; the query string only with secret-looking values masked.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode
from uuid import uuid4

import structlog
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from interfaces.http.ratelimit import client_address
from interfaces.logs import REDACTED

log = structlog.get_logger("crm.access")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SECRET_QUERY = re.compile(r"token|pass|secret|key|auth|code|signature|cookie|ticket", re.IGNORECASE)


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-Id when it is a plain token (it ends up in logs), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            if REQUEST_ID.fullmatch(text):
                return text
    return uuid4().hex


def safe_query(raw: bytes) -> str | None:
    if not raw:
        return None
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    masked = [(k, REDACTED if SECRET_QUERY.search(k) else v) for k, v in pairs]
    return urlencode(masked, safe="[]")


class RequestLog:
    """ASGI wrapper: binds request_id for every log line of the request, then logs the outcome."""

    def __init__(self, app: ASGIApp, *, trust_proxy: bool = False) -> None:
        self.app = app
        self.trust_proxy = trust_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["x-request-id"] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except asyncio.CancelledError:  # a live stream ended by the server's shutdown
                log.info("request cancelled", **self._fields(scope, status, started))
                raise
            except BaseException:
                log.exception("request failed", **self._fields(scope, status, started))
                raise
            fields = self._fields(scope, status, started)
            if status >= 500:
                log.error("request", **fields)
            else:
                log.info("request", **fields)

    def _fields(self, scope: Scope, status: int, started: float) -> dict[str, Any]:
        ctx = scope.get("state", {}).get("ctx")
        # webhooks have no caller context: their organization is the one in the path
        org = getattr(ctx, "organization_id", None) or scope.get("path_params", {}).get(
            "organization_id"
        )
        return {
            "method": scope.get("method"),
            "route": scope.get("path_template"),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "organization_id": _str_or_none(org),
            "user_id": _str_or_none(getattr(ctx, "user_id", None)),
            "client_ip": client_address(ASGIConnection(scope), self.trust_proxy),
            "query": safe_query(scope.get("query_string", b"")),
        }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
