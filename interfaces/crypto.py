"""Sealing of provider secrets with AES-256-GCM under a key derived from CRM_MASTER_KEY.

A sealed value is `v1:<base64url(nonce ‖ ciphertext ‖ tag)>`; the associated data binds it to
its organization and secret name, so a value copied into another organization's or another
field's configuration does not open. Without CRM_MASTER_KEY (outside the embedded demo, which
keeps a random one beside its database) the key is derived from CRM_SECRET_KEY under a
distinct label — set CRM_MASTER_KEY in production so rotating the token key keeps secrets.
"""

from __future__ import annotations

import base64
import os
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1:"


def derive_key(master: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(master.encode())


class AesGcmSecretBox:
    """Implements application.providers.SecretBox."""

    def __init__(self, master_key: str) -> None:
        self._aead = AESGCM(derive_key(master_key, b"loved-crm/provider-secrets/v1"))

    def seal(self, organization_id: UUID, name: str, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _aad(organization_id, name))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, organization_id: UUID, name: str, sealed: str) -> str:
        if not sealed.startswith(PREFIX):
            raise ValueError("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(PREFIX))
            plain = self._aead.decrypt(raw[:12], raw[12:], _aad(organization_id, name))
        except (InvalidTag, ValueError):
            raise ValueError("the sealed value does not open with this key here") from None
        return plain.decode()

    def __repr__(self) -> str:
        return "AesGcmSecretBox(<key hidden>)"


def _aad(organization_id: UUID, name: str) -> bytes:
    return f"{organization_id}:{name}".encode()


def secret_box_for(master_key: str, secret_key: str) -> AesGcmSecretBox:
    return AesGcmSecretBox(master_key or f"derived-from-secret-key:{secret_key}")
