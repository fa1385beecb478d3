"""Sliding-window rate limits: per client IP on /auth/*, per organization on tenant routes.

With CRM_REDIS_URL the window is a sorted set updated by one Lua script, so every worker and
process shares it exactly; without Redis, or while Redis does not answer (the process's
RedisCircuit is open), each process keeps its own window in memory. An exhausted window
answers 429 with Retry-After.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any
from uuid import uuid4

import redis.asyncio as aioredis
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException

from interfaces.redis_circuit import ERRORS, RedisCircuit
from interfaces.settings import RateLimit, Settings

# the server's clock, so that workers with skewed clocks still share one window
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class LocalWindow:
    """One process's sliding windows: timestamps of the accepted requests, per bucket."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._calls = 0

    def hit(self, bucket: str, limit: RateLimit) -> float:
        """Count a request; 0 when accepted, else the seconds until one would be."""
        now = time.monotonic()
        with self._lock:
            self._calls += 1
            if self._calls % 10_000 == 0:
                self._forget_idle(now, limit.window_seconds)
            hits = self._hits.setdefault(bucket, deque())
            while hits and hits[0] <= now - limit.window_seconds:
                hits.popleft()
            if len(hits) < limit.requests:
                hits.append(now)
                return 0.0
            return hits[0] + limit.window_seconds - now

    def _forget_idle(self, now: float, window: float) -> None:
        idle = [b for b, hits in self._hits.items() if not hits or hits[-1] <= now - window]
        for bucket in idle:
            del self._hits[bucket]


class RateLimiter:
    """Decides whether a request may proceed; started and closed with the app."""

    def __init__(self, settings: Settings, circuit: RedisCircuit | None = None) -> None:
        self.settings = settings
        self.local = LocalWindow()
        if circuit is None and settings.redis_url:
            circuit = RedisCircuit(settings.redis_url)
        self.circuit = circuit
        self._redis: aioredis.Redis | None = None
        self._script: Any = None

    async def start(self) -> None:
        # created inside the serving loop: an asyncio client belongs to the loop that made it
        if self.circuit is not None and self._redis is None:
            self._redis = self.circuit.async_client()
            self._script = self._redis.register_script(SLIDING_WINDOW)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = self._script = None

    async def check(self, request: Request[Any, Any, Any]) -> None:
        """Raise 429 when the caller's window is full; org limits need the guard's ctx."""
        ctx = request.scope.get("state", {}).get("ctx")
        if ctx is not None and self.settings.rate_limit_org is not None:
            bucket = f"org:{ctx.organization_id}:ratelimit:requests"
            await self._enforce(bucket, self.settings.rate_limit_org, "this organization")
        elif request.scope["path"].startswith("/auth/") and self.settings.rate_limit_auth:
            bucket = f"ratelimit:ip:{client_address(request, self.settings.trust_proxy)}:auth"
            await self._enforce(bucket, self.settings.rate_limit_auth, "this address")

    async def _enforce(self, bucket: str, limit: RateLimit, who: str) -> None:
        wait = await self._hit(bucket, limit)
        if wait > 0:
            raise TooManyRequestsException(
                f"too many requests from {who}: at most {limit.requests} in "
                f"{limit.window_seconds:g} seconds",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def _hit(self, bucket: str, limit: RateLimit) -> float:
        if self._script is not None and self.circuit is not None and self.circuit.allows():
            try:
                window_ms = max(1, round(limit.window_seconds * 1000))
                waited = await self._script(
                    keys=[bucket], args=[window_ms, limit.requests, uuid4().hex]
                )
            except ERRORS as error:
                self.circuit.failed(error)
            else:
                self.circuit.succeeded()
                return int(waited) / 1000
        return self.local.hit(bucket, limit)


def client_address(connection: ASGIConnection[Any, Any, Any, Any], trust_proxy: bool) -> str:
    """The peer's address; behind a trusted proxy, the address that proxy saw (the last hop)."""
    if trust_proxy:
        forwarded = connection.headers.get("x-forwarded-for", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return connection.client.host if connection.client else "unknown"
