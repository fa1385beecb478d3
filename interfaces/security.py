"""Password hashing (argon2) and access tokens (JWT, HS256)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
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


class InvalidTokenError(Exception):
    pass


class Tokens:
    algorithm = "HS256"

    cache_size = 4096

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self.secret = secret
        self.ttl = timedelta(seconds=ttl_seconds)
        # a verified token's claims, so a client's next requests skip the HMAC and JSON work
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, user_id: UUID, organization_id: UUID) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "org": str(organization_id),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid4().hex,
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def decode(self, token: str) -> TokenClaims:
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            raise InvalidTokenError("Signature has expired")
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[self.algorithm], options={"require": ["exp", "sub"]}
            )
            verified = TokenClaims(UUID(claims["sub"]), UUID(claims["org"]), float(claims["exp"]))
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as error:
            raise InvalidTokenError(str(error)) from None
        with self._lock:
            self._verified[token] = verified
            while len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return verified
