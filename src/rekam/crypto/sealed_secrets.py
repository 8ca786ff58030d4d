"""Seal small secrets (such as TOTP seeds) under a key derived from the installation passphrase.

The format is ``0x01 | nonce (12 bytes) | AES-256-GCM ciphertext and tag``; the purpose string
(for example ``users.totp_secret:<user id>``) is bound as associated data, so a sealed value copied
to another row or column does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from rekam.crypto.errors import SealedSecretInvalid

_FORMAT_VERSION = b"\x01"
_NONCE_BYTES = 12
SCRYPT_N = 2**15


class SecretSealer:
    """Encrypts and opens small secrets; callers never see keys or nonces."""

    def __init__(self, passphrase: bytes, salt: bytes) -> None:
        if len(salt) < 16:
            raise ValueError("the sealing salt must be at least 16 bytes")
        key = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=8, p=1).derive(passphrase)
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        associated = _FORMAT_VERSION + purpose.encode()
        return _FORMAT_VERSION + nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, purpose: str) -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _FORMAT_VERSION:
            raise SealedSecretInvalid("the sealed secret is truncated or of an unknown format")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(
                nonce, sealed[1 + _NONCE_BYTES :], _FORMAT_VERSION + purpose.encode()
            )
        except InvalidTag as exc:
            raise SealedSecretInvalid(
                "the sealed secret does not open: wrong passphrase, wrong record, or altered bytes"
            ) from exc
