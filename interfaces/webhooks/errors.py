"""Errors raised by webhook verification and parsing; routes map them to HTTP statuses once."""

from __future__ import annotations

MISSING = 401  # no signature (or no timestamp) at all
FORBIDDEN = 403  # a signature, token or timestamp that does not check out


class WebhookRejected(Exception):
    """The request is not proven to come from the provider.

    `status` is 401 (unsigned) or 403 (bad signature, stale timestamp, wrong token); `reason` is
    short and safe to log: it never contains a secret, a signature or an expected value.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class BadPayload(Exception):
    """The body is correctly signed but malformed (invalid JSON, wrong shape): answer 400."""
