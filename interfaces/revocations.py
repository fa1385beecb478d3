"""Revoked access tokens: durable in the database, cached in Redis and in the process.

The table `revoked_access_tokens` is the source of truth: a logout writes its row before
answering, and a check that no cache can answer reads it. With CRM_REDIS_URL, Redis caches every
answer for all processes (`revoked:jti:{jti}` holds the token's expiry, or "0" for a token found
not revoked, kept NEGATIVE_TTL seconds); while Redis does not answer, checks read the database
and a revocation Redis missed is written to it as soon as it answers again. In-process, a
revocation is remembered until the token expires and a "not revoked" answer from the database
is trusted for LOCAL_TTL seconds (that is how long another process's revocation may take to be
seen while Redis is down or not configured). Revocations of expired tokens are pruned.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from interfaces.redis_circuit import ERRORS, RedisCircuit
from projections.base import UtcDateTime, metadata

#: token ids are random and global (a token is not tenant data): no organization column
revoked_access_tokens = sa.Table(
    "revoked_access_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires_at", UtcDateTime, nullable=False, index=True),
    sa.Column("revoked_at", UtcDateTime, nullable=False),
)

PREFIX = "revoked:jti:"
#: seconds Redis keeps a "not revoked" answer (bounds how stale a cache that lived through an
#: outage can be about a revocation made meanwhile by a process that is gone)
NEGATIVE_TTL = 10
#: seconds this process trusts a "not revoked" answer of the database
LOCAL_TTL = 1.0
PRUNE_EVERY = 60.0
CACHE_SIZE = 10_000

T = TypeVar("T")


class StoredRevocations:
    """The Revocations port of interfaces.security on the database, Redis as its cache."""

    def __init__(self, engine: Engine, circuit: RedisCircuit | None = None) -> None:
        self.engine = engine
        self.circuit = circuit
        self._lock = threading.Lock()
        self._revoked: OrderedDict[str, float] = OrderedDict()  # jti -> expiry (epoch)
        self._clear: OrderedDict[str, float] = OrderedDict()  # jti -> when found (monotonic)
        self._unsent: dict[str, float] = {}  # revocations Redis missed, jti -> expiry
        self._pruned = 0.0

    def revoke(self, jti: str, until: float) -> None:
        if until <= time.time():
            return
        self._insert(jti, until)
        self._remember(jti, until)
        if self.circuit is not None:
            with self._lock:
                self._unsent[jti] = until
            self._flush()
        self._prune()

    def is_revoked(self, jti: str) -> bool:
        if self._unsent:
            self._flush()  # Redis may be back: tell it what it missed
        until = self._revoked.get(jti)
        if until is not None:
            return until > time.time()
        if self.circuit is not None and self.circuit.allows():
            cached = self._redis_call(lambda: self._redis_get(jti))
            if cached is not None:
                return cached
        elif (found := self._clear.get(jti)) is not None and time.monotonic() - found < LOCAL_TTL:
            return False
        until = self._select(jti)
        if until is None:
            with self._lock:
                self._clear[jti] = time.monotonic()
                self._trim(self._clear)
            return False
        self._remember(jti, until)
        return until > time.time()

    def close(self) -> None:
        with self._lock:
            self._revoked.clear()
            self._clear.clear()

    # --- Redis, through the circuit ---

    def _redis_call(self, call: Callable[[], T]) -> T | None:
        assert self.circuit is not None
        try:
            result = call()
        except ERRORS as error:
            self.circuit.failed(error)
            return None
        self.circuit.succeeded()
        return result

    def _redis_get(self, jti: str) -> bool | None:
        """True/False from the cache; on a miss, the database's answer, then cached."""
        assert self.circuit is not None
        client = self.circuit.client()
        value: bytes | None = client.get(PREFIX + jti)  # type: ignore[assignment]
        if value is not None:
            cached = float(value)
            if cached > 0:
                self._remember(jti, cached)
            return cached > time.time()
        until = self._select(jti)
        if until is None:
            # NX: a revocation written meanwhile is not overwritten by this older answer
            client.set(PREFIX + jti, b"0", px=NEGATIVE_TTL * 1000, nx=True)
            return False
        self._remember(jti, until)
        ttl_ms = int((until - time.time()) * 1000)
        if ttl_ms > 0:
            client.set(PREFIX + jti, repr(until).encode(), px=ttl_ms)
        return until > time.time()

    def _flush(self) -> None:
        if self.circuit is not None and self.circuit.allows():
            self._redis_call(self._send_unsent)

    def _send_unsent(self) -> None:
        """Write the revocations Redis missed (a PING when there are none left: every call
        through the circuit must ask Redis, or it would be believed back unasked)."""
        assert self.circuit is not None
        with self._lock:
            unsent, self._unsent = self._unsent, {}
        try:
            client = self.circuit.client()
            now = time.time()
            due = {jti: until for jti, until in unsent.items() if until > now}
            if not due:
                client.ping()
                return
            pipe = client.pipeline(transaction=False)
            for jti, until in due.items():
                pipe.set(PREFIX + jti, repr(until).encode(), px=int((until - now) * 1000))
            pipe.execute()
        except BaseException:
            with self._lock:  # kept for the next time Redis answers
                self._unsent = unsent | self._unsent
            raise

    # --- the database ---

    def _insert(self, jti: str, until: float) -> None:
        row = {
            "jti": jti,
            "expires_at": datetime.fromtimestamp(until, UTC),
            "revoked_at": datetime.now(UTC),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(revoked_access_tokens.insert().values(**row))
        except sa.exc.IntegrityError:
            pass  # revoked already

    def _select(self, jti: str) -> float | None:
        t = revoked_access_tokens.c
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(t.expires_at).where(t.jti == jti)).scalar()
        return None if found is None else found.timestamp()

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        t = revoked_access_tokens.c
        with self.engine.begin() as conn:
            conn.execute(revoked_access_tokens.delete().where(t.expires_at <= datetime.now(UTC)))

    # --- in-process ---

    def _remember(self, jti: str, until: float) -> None:
        with self._lock:
            self._revoked[jti] = until
            self._clear.pop(jti, None)
            self._trim(self._revoked)

    @staticmethod
    def _trim(cache: OrderedDict[str, float]) -> None:
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
