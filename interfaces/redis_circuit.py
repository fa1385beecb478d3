"""One process's view of whether Redis answers, shared by every Redis user in the process.

Redis is an accelerator here (revocation cache, shared rate-limit windows, cross-process live
updates), never the source of truth. After a failure the circuit opens: callers skip Redis and
use their fallback for `backoff` seconds; then one caller at a time probes it again. A failed
probe re-opens it, a success closes it. The outage is logged once when it starts and once when
it ends — with the server's address, never its password — not once per request.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import redis
import redis.asyncio as aredis

log = logging.getLogger("crm.redis")

#: seconds a Redis that failed is left alone before one caller tries it again
BACKOFF_SECONDS = 1.5
#: a Redis command answers in well under a millisecond: a stalled one must not add seconds
SOCKET_TIMEOUT = 0.5
CONNECT_TIMEOUT = 0.5

#: what a Redis client raises when the server is gone, stalled or refuses (OSError: sockets)
ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, TimeoutError)


def safe_address(url: str) -> str:
    """host:port/db of a Redis URL, without its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class RedisCircuit:
    """A circuit breaker in front of one Redis server; thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        backoff: float = BACKOFF_SECONDS,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.url = url
        self.address = safe_address(url)
        self.backoff = backoff
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._up_since = 0.0
        self._retry_at = 0.0
        #: how many outages this process saw (a subscriber that lived through one may have
        #: missed messages)
        self.outages = 0
        #: how many calls to Redis failed (a down Redis is asked about once per back-off)
        self.failures = 0
        self._client: redis.Redis | None = None

    @property
    def up(self) -> bool:
        return self._down_since is None

    def client(self) -> redis.Redis:
        """The process's synchronous client (a connection pool), with short timeouts."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_timeout=self.socket_timeout,
                        socket_connect_timeout=self.connect_timeout,
                    )
        return self._client

    def async_client(self) -> aredis.Redis:
        """A new asyncio client: make it on the loop that will use it."""
        client: aredis.Redis = aredis.Redis.from_url(
            self.url,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.connect_timeout,
        )
        return client

    def allows(self) -> bool:
        """Whether to try Redis now: always while it answers; during an outage, once per
        back-off period (that caller is the probe, the others use their fallback)."""
        if self._down_since is None:
            return True
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                return True
            if now < self._retry_at:
                return False
            self._retry_at = now + self.backoff
            return True

    def succeeded(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            now = time.monotonic()
            down_for = now - self._down_since
            self._down_since = None
            self._up_since = now
        log.warning(
            "Redis at %s answers again after %.1f s: shared revocations, rate limits and live "
            "updates use it again",
            self.address,
            down_for,
        )

    def failed(self, error: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            self.failures += 1
            if self._down_since is not None:
                self._retry_at = now + self.backoff
                return
            if now - self._up_since < self.socket_timeout + self.connect_timeout:
                # a call that set out before Redis came back (it waited out its timeout, or
                # used a socket of the old server): not a new outage
                return
            self._retry_at = now + self.backoff
            self._down_since = now
            self.outages += 1
        log.warning(
            "Redis at %s does not answer (%s: %s): revocations read from the database, rate "
            "limits kept in-process, live updates fanned out in-process until it is back",
            self.address,
            type(error).__name__,
            error,
        )

    def ping(self) -> float | None:
        """Milliseconds a PING took, or None when Redis does not answer (ignores the circuit)."""
        started = time.perf_counter()
        try:
            self.client().ping()
        except ERRORS as error:
            self.failed(error)
            return None
        self.succeeded()
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
