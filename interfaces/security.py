"""Password hashing (argon2), access tokens (JWT, HS256) and their revocation list."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

import jwt
import msgspec
from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Hasher:
    def __init__(self) -> None:
        self._argon = Argon2()

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


class TokenClaims(msgspec.Struct, frozen=True):
    user_id: UUID
    organization_id: UUID
    expires_at: float = 0.0
    jti: str = ""
    #: the refresh-token family the access token was issued with (logout revokes it)
    family_id: UUID | None = None


class InvalidTokenError(Exception):
    pass


class Revocations(Protocol):
    def revoke(self, jti: str, until: float) -> None:
        """Refuse the token with this id until `until` (epoch seconds, its expiry)."""

    def is_revoked(self, jti: str) -> bool: ...

    def close(self) -> None: ...


class MemoryRevocations:
    """One process only, lost on restart: for tests and tools (the server stores revocations
    in the database, interfaces.revocations)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def revoke(self, jti: str, until: float) -> None:
        with self._lock:
            now = time.time()
            for key in [k for k, t in self._until.items() if t <= now]:
                del self._until[key]
            self._until[jti] = until

    def is_revoked(self, jti: str) -> bool:
        until = self._until.get(jti)
        return until is not None and until > time.time()

    def close(self) -> None:
        self._until.clear()


#: revocations of whole sessions share the token ids' store under this prefix
SESSION = "session:"


class Tokens:
    algorithm = "HS256"

    cache_size = 4096

    def __init__(
        self, secret: str, ttl_seconds: int, revocations: Revocations | None = None
    ) -> None:
        self.secret = secret
        self.ttl = timedelta(seconds=ttl_seconds)
        self.revocations: Revocations = revocations or MemoryRevocations()
        # a verified token's claims, so a client's next requests skip the HMAC and JSON work
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def ttl_seconds(self) -> int:
        return int(self.ttl.total_seconds())

    def issue(self, user_id: UUID, organization_id: UUID, family_id: UUID | None = None) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "org": str(organization_id),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid4().hex,
        }
        if family_id is not None:
            claims["fam"] = str(family_id)
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def decode(self, token: str) -> TokenClaims:
        """Verified, unexpired and not revoked claims; else InvalidTokenError."""
        verified = self._verified.get(token)
        if verified is not None:
            if verified.expires_at <= time.time():
                raise InvalidTokenError("Signature has expired")
        else:
            verified = self._verify(token)
        if self.revocations.is_revoked(verified.jti):
            raise InvalidTokenError("the token was revoked")
        family = verified.family_id
        if family is not None and self.revocations.is_revoked(SESSION + str(family)):
            raise InvalidTokenError("the session was ended")
        return verified

    def revoke(self, claims: TokenClaims) -> None:
        """Refuse this access token everywhere until it expires."""
        self.revocations.revoke(claims.jti, claims.expires_at)

    def revoke_session(self, family_id: UUID) -> None:
        """Refuse every access token issued in this session (refresh family) until the last
        one could expire."""
        self.revocations.revoke(SESSION + str(family_id), time.time() + self.ttl_seconds)

    def _verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["exp", "sub", "jti"]},
            )
            family = claims.get("fam")
            verified = TokenClaims(
                UUID(claims["sub"]),
                UUID(claims["org"]),
                float(claims["exp"]),
                str(claims["jti"]),
                UUID(family) if family else None,
            )
        except (jwt.PyJWTError, KeyError, ValueError, TypeError, AttributeError) as error:
            raise InvalidTokenError(str(error)) from None
        with self._lock:
            self._verified[token] = verified
            while len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return verified
