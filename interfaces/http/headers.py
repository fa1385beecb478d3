"""Security headers on every response, and CORS from configuration.

A `before_send` hook, because it is the only place that sees every response: routing 404/405,
the guard's 401/403, the 500 of the exception handler and the CORS middleware's preflight answer.
"""

from __future__ import annotations

from typing import Any

from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from interfaces.settings import Settings

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
# the schema UIs (Swagger, ReDoc, …) load their scripts, styles and fonts from CDNs
SCHEMA_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https:; "
    "style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; "
    "font-src 'self' data: https:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
ALWAYS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
REQUEST_HEADERS = ["Authorization", "Content-Type", "X-API-Key", "X-Min-Position", "X-Org-Id"]
EXPOSED_HEADERS = ["Retry-After", "X-Export-Position", "X-Request-Id", "X-Stale"]


def is_tls(scope: Scope, trust_proxy: bool) -> bool:
    """Served over TLS: by this server, or by a proxy we were told to trust."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    if not trust_proxy:
        return False
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            # a chain of proxies appends: the last one is the proxy in front of us
            return value.decode("latin-1").rsplit(",", 1)[-1].strip().lower() == "https"
    return False


def security_headers(settings: Settings) -> Any:
    """The `before_send` hook adding the headers to each response's start message."""
    trust_proxy = settings.trust_proxy

    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        for name, value in ALWAYS.items():
            headers[name] = value
        path = scope.get("path", "")
        headers["content-security-policy"] = (
            SCHEMA_CSP if path == "/schema" or path.startswith("/schema/") else STRICT_CSP
        )
        if is_tls(scope, trust_proxy):
            headers["strict-transport-security"] = HSTS

    return add_security_headers


def cors_config(settings: Settings) -> CORSConfig | None:
    """None (no CORS headers at all) unless CRM_CORS_ORIGINS names origins."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=REQUEST_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,  # tokens travel in headers, never in cookies
        max_age=600,
    )
