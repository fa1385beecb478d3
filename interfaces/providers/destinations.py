"""Where provider requests may go: never into the server's own network by a tenant's setting.

Provider base URLs are organization settings (a WhatsApp Web bridge is the tenant's own server;
the others are overridable for regional endpoints and tests). An address on loopback, a private
or link-local network (cloud metadata at 169.254.169.254 included) is refused unless the
operator allows it with CRM_PROVIDER_PRIVATE_URLS=1 (local bridges, the test servers).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from application.conversations.providers import ProviderError


def refusal(url: str, allow_private: bool) -> str | None:
    """Why requests to `url` are not allowed, or None when they are."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s):// URL with a host"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return "names a host that does not resolve"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            return "points into a private network, which providers are not reached through"
    return None


def check(url: str | None, allow_private: bool) -> None:
    """Raise a non-retryable ProviderError before any request to a refused destination."""
    if url is None:
        return
    reason = refusal(url, allow_private)
    if reason is not None:
        raise ProviderError(f"base_url {reason}", retryable=False, code="destination_refused")
