"""Per-subject data keys for personal data in events (crypto-shredding).

Each person (a lead, an invitee) gets a random 256-bit AES-GCM data key the first time a value
of theirs is stored. The key is kept only wrapped - encrypted by a master key - in
`privacy_subject_keys`, one row per (organization, subject). Wrapping is a port (`KeyWrapper`):
`LocalKeyWrapper` derives the master key from CRM_MASTER_KEY with HKDF; a cloud KMS
(AWS KMS Encrypt/Decrypt, GCP Cloud KMS, Vault transit) can implement the same two calls.

Erasing a subject overwrites its wrapped key with NULL and stamps `erased_at`: every value ever
sealed for that person then reads as "[erased]", while the append-only event log is untouched.
A sealed value is `base64url(nonce ‖ ciphertext ‖ tag)`, bound to its organization and subject
as associated data, so a token copied under another subject does not open.

Opened keys are cached in the process for `ttl` seconds (and dropped at once when this process
erases): another process may still open a just-erased subject's values until its entry expires.
The cache holds at most `cache_size` keys: projectors and exports fetch a batch's keys in one
query, so a small cache costs little and keeps a long export's memory flat.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Engine

from domain.privacy import PersonalDataErasedError
from interfaces.crypto import derive_key
from projections.base import UtcDateTime, metadata

subject_keys = sa.Table(
    "privacy_subject_keys",
    metadata,
    sa.Column("organization_id", sa.Uuid, primary_key=True),
    sa.Column("subject_id", sa.Uuid, primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("erased_at", UtcDateTime, nullable=True),
)


class KeyWrapper(Protocol):
    """Encrypts data keys with a master key that never leaves it (a KMS, or CRM_MASTER_KEY)."""

    def wrap(self, organization_id: UUID, subject_id: UUID, key: bytes) -> bytes: ...

    def unwrap(self, organization_id: UUID, subject_id: UUID, wrapped: bytes) -> bytes: ...


class LocalKeyWrapper:
    """AES-256-GCM key wrapping under a key derived from CRM_MASTER_KEY."""

    def __init__(self, master_key: str) -> None:
        self._aead = AESGCM(derive_key(master_key, b"loved-crm/subject-keys/v1"))

    def wrap(self, organization_id: UUID, subject_id: UUID, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, key, _aad(organization_id, subject_id))

    def unwrap(self, organization_id: UUID, subject_id: UUID, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:12], wrapped[12:], _aad(organization_id, subject_id))
        except InvalidTag:
            raise ValueError("the subject key does not unwrap with this master key") from None

    def __repr__(self) -> str:
        return "LocalKeyWrapper(<key hidden>)"


def _aad(organization_id: UUID, subject_id: UUID) -> bytes:
    return f"{organization_id}:{subject_id}".encode()


_ERASED = object()


class SubjectKeyring:
    """Implements application.ports.PersonalDataCipher over `privacy_subject_keys`.

    Without an engine the wrapped keys live in memory (tests and one-off tools only).
    """

    def __init__(
        self,
        engine: Engine | None,
        wrapper: KeyWrapper,
        *,
        ttl: float = 30.0,
        cache_size: int = 20_000,
    ) -> None:
        self._engine = engine
        self._wrapper = wrapper
        self._ttl = ttl
        self._cache_size = cache_size
        # raw 32-byte keys (an AESGCM object holds ~1.8 KB; making one takes ~0.5 µs)
        self._cache: OrderedDict[tuple[UUID, UUID], tuple[float, bytes | object]] = OrderedDict()
        self._lock = threading.Lock()
        self._memory: dict[tuple[UUID, UUID], tuple[bytes | None, datetime]] = {}
        #: keys made for a commit still in flight, and subjects whose commit failed
        #: keys made for commits still in flight: (key, wrapped key) by subject
        self._pending: dict[tuple[UUID, UUID], tuple[bytes, bytes]] = {}
        self._suspect: set[tuple[UUID, UUID]] = set()

    # -- the port --------------------------------------------------------------------------

    def seal(self, organization_id: UUID, subject_id: UUID, plaintext: bytes) -> str:
        aead = self._key(organization_id, subject_id, create=True)
        if aead is None:
            raise PersonalDataErasedError(f"subject {subject_id}: the person's data was erased")
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, plaintext, _aad(organization_id, subject_id))
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, organization_id: UUID, subject_id: UUID, sealed: str) -> bytes | None:
        aead = self._key(organization_id, subject_id, create=False)
        if aead is None:
            return None
        raw = base64.urlsafe_b64decode(sealed)
        try:
            return aead.decrypt(raw[:12], raw[12:], _aad(organization_id, subject_id))
        except InvalidTag:
            raise ValueError(f"a sealed value of subject {subject_id} does not open") from None

    def erase(self, organization_id: UUID, subject_id: UUID) -> bool:
        now = datetime.now(UTC)
        with self._lock:
            self._cache[(organization_id, subject_id)] = (time.monotonic(), _ERASED)
        if self._engine is None:
            before = self._memory.get((organization_id, subject_id))
            self._memory[(organization_id, subject_id)] = (None, now)
            return before is None or before[0] is not None
        with self._engine.begin() as conn:
            changed = conn.execute(
                subject_keys.update()
                .where(
                    subject_keys.c.organization_id == organization_id,
                    subject_keys.c.subject_id == subject_id,
                    subject_keys.c.wrapped_key.is_not(None),
                )
                .values(wrapped_key=None, erased_at=now)
            ).rowcount
            if changed:
                return True
            # never sealed anything yet, or already erased: leave a tombstone either way
            inserted = conn.execute(
                _insert_ignore(conn.dialect.name)
                .values(
                    organization_id=organization_id,
                    subject_id=subject_id,
                    wrapped_key=None,
                    created_at=now,
                    erased_at=now,
                )
                .returning(subject_keys.c.subject_id)
            ).first()
            return inserted is not None

    def prepare(
        self,
        subjects: Collection[tuple[UUID, UUID]],
        *,
        fresh: Collection[tuple[UUID, UUID]] = (),
    ) -> list[tuple[UUID, UUID, bytes]]:
        """Ready the keys of subjects about to be sealed; make the missing ones.

        The new keys come back wrapped, for the event store to write in the same transaction
        as the events sealed with them; until `settle` they are this process's alone. `fresh`
        subjects were just created (a new lead): they are not looked up first, unless a commit
        of theirs failed before.
        """
        if self._engine is None:  # in memory: made and kept at once
            for organization_id, subject_id in self._uncached(subjects):
                self._key(organization_id, subject_id, create=True)
            return []
        uncached = self._uncached(subjects)
        with self._lock:
            missing = [p for p in uncached if p not in self._pending]
            look = [p for p in missing if p not in fresh or p in self._suspect]
            # a key another thread made for its own commit still in flight: this commit seals
            # with it too, so it writes the key as well (whichever commits first stores it, the
            # other fails whole and retries) - else this commit could store values sealed with
            # a key that the other's failure then never stores
            rows = [
                (o, s, self._pending[(o, s)][1]) for o, s in uncached if (o, s) in self._pending
            ]
        if look:
            self.prefetch(look)
        with self._lock:
            erased = [p for p in subjects if (hit := self._cache.get(p)) and hit[1] is _ERASED]
        if erased:  # refused before the commit: it would fail everyone's group
            raise PersonalDataErasedError(f"subject {erased[0][1]}: the person's data was erased")
        for organization_id, subject_id in self._uncached(missing):
            key = AESGCM.generate_key(256)
            wrapped = self._wrapper.wrap(organization_id, subject_id, key)
            with self._lock:
                made = self._pending.setdefault((organization_id, subject_id), (key, wrapped))
            rows.append((organization_id, subject_id, made[1]))
        return rows

    def settle(self, subjects: Iterable[tuple[UUID, UUID]], *, stored: bool) -> None:
        """The commit that wrote these subjects' new keys succeeded (`stored`) or failed."""
        now = time.monotonic()
        with self._lock:
            for pair in subjects:
                made = self._pending.pop(pair, None)
                if made is None:
                    continue
                if stored:
                    self._cache[pair] = (now, made[0])
                    self._suspect.discard(pair)
                else:  # another writer may have made its key meanwhile: look it up next time
                    self._suspect.add(pair)

    def _uncached(self, subjects: Iterable[tuple[UUID, UUID]]) -> list[tuple[UUID, UUID]]:
        now = time.monotonic()
        with self._lock:
            return [
                pair
                for pair in set(subjects)
                if (hit := self._cache.get(pair)) is None or now - hit[0] >= self._ttl
            ]

    def prefetch(self, subjects: Iterable[tuple[UUID, UUID]]) -> None:
        """Load the keys of many subjects at once (a projector's batch, an export page)."""
        now = time.monotonic()
        missing = self._uncached(subjects)
        if not missing:
            return
        if self._engine is None:
            for organization_id, subject_id in missing:
                self._key(organization_id, subject_id, create=False)
            return
        c = subject_keys.c
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            with self._engine.connect() as conn:
                rows = conn.execute(
                    sa.select(c.organization_id, c.subject_id, c.wrapped_key).where(
                        c.subject_id.in_({s for _, s in chunk}),
                        c.organization_id.in_({o for o, _ in chunk}),
                    )
                ).all()
            for organization_id, subject_id, wrapped in rows:
                self._remember(organization_id, subject_id, wrapped, now)

    def is_erased(self, organization_id: UUID, subject_id: UUID) -> bool:
        row = self._load(organization_id, subject_id)
        return row is not None and row[0] is None

    # -- keys ------------------------------------------------------------------------------

    def _key(self, organization_id: UUID, subject_id: UUID, *, create: bool) -> AESGCM | None:
        cache_key = (organization_id, subject_id)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None and now - hit[0] < self._ttl:
                self._cache.move_to_end(cache_key)
                return None if hit[1] is _ERASED else AESGCM(hit[1])  # type: ignore[arg-type]
            pending = self._pending.get(cache_key)
            if pending is not None and create:
                return AESGCM(pending[0])
        row = self._load(organization_id, subject_id)
        if row is None and create:
            row = self._create(organization_id, subject_id)
        if row is None:
            return None  # never had a key: nothing can have been sealed for it
        return self._remember(organization_id, subject_id, row[0], now)

    def _remember(
        self, organization_id: UUID, subject_id: UUID, wrapped: bytes | None, now: float
    ) -> AESGCM | None:
        entry: bytes | object = (
            _ERASED
            if wrapped is None
            else self._wrapper.unwrap(organization_id, subject_id, wrapped)
        )
        cache_key = (organization_id, subject_id)
        with self._lock:
            self._cache[cache_key] = (now, entry)
            self._cache.move_to_end(cache_key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return None if entry is _ERASED else AESGCM(entry)  # type: ignore[arg-type]

    def _load(self, organization_id: UUID, subject_id: UUID) -> tuple[bytes | None] | None:
        if self._engine is None:
            found = self._memory.get((organization_id, subject_id))
            return None if found is None else (found[0],)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(subject_keys.c.wrapped_key).where(
                    subject_keys.c.organization_id == organization_id,
                    subject_keys.c.subject_id == subject_id,
                )
            ).first()
        return None if row is None else (row[0],)

    def _create(self, organization_id: UUID, subject_id: UUID) -> tuple[bytes | None]:
        wrapped = self._wrapper.wrap(organization_id, subject_id, AESGCM.generate_key(256))
        now = datetime.now(UTC)
        if self._engine is None:
            self._memory.setdefault((organization_id, subject_id), (wrapped, now))
            return (self._memory[(organization_id, subject_id)][0],)
        with self._engine.begin() as conn:
            conn.execute(
                _insert_ignore(conn.dialect.name).values(
                    organization_id=organization_id,
                    subject_id=subject_id,
                    wrapped_key=wrapped,
                    created_at=now,
                )
            )
        # a concurrent writer may have made the key first: everyone uses the stored one
        stored = self._load(organization_id, subject_id)
        assert stored is not None
        return stored

    def __repr__(self) -> str:
        return f"SubjectKeyring({self._wrapper!r})"


def _insert_ignore(dialect: str) -> sa.Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(subject_keys).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(subject_keys).on_conflict_do_nothing()


def keyring_for(engine: Engine | None, master_key: str, secret_key: str) -> SubjectKeyring:
    """The keyring of this deployment: CRM_MASTER_KEY wraps (as it seals provider secrets)."""
    return SubjectKeyring(
        engine, LocalKeyWrapper(master_key or f"derived-from-secret-key:{secret_key}")
    )
