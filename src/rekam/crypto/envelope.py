"""Field encryption: AES-256-GCM under a per-patient data key, with key commitment and context.

Ciphertext format, version 1 (all integers big-endian)::

    offset size  field
    0      2     magic "RK"
    2      1     format version (1)
    3      1     algorithm (1 = AES-256-GCM, HKDF-SHA256 per-message key, key commitment)
    4      16    data key id (UUID)
    20     8     context fingerprint: SHA-256(canonical context)[:8]
    28     32    salt (random)
    60     32    key commitment
    92     n     ciphertext
    92+n   16    GCM tag

HKDF-SHA256(data key, salt, info = "rekam-field-v1" | header[0:28]) yields 76 bytes: the message
key (32), the nonce (12) and the commitment (32). The commitment is stored and checked in
constant time before decryption, so a ciphertext opens under one key only (key commitment).
Associated data = header[0:92] | canonical context, where the canonical context is
"rekam-field-v1" followed by the length-prefixed table, column, record id and patient id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rekam.crypto.data_keys import DataKeyManager
from rekam.crypto.errors import (
    CiphertextMalformed,
    CiphertextTampered,
    WrongContext,
)

MAGIC = b"RK"
FORMAT_VERSION = 1
ALGORITHM_AES256GCM_HKDF_COMMIT = 1
_HEADER_PREFIX = 28
_HEADER = 92
_TAG = 16
OVERHEAD = _HEADER + _TAG


@dataclass(frozen=True)
class FieldContext:
    """Where a value lives; bound to its ciphertext so it cannot be moved."""

    table: str
    column: str
    record_id: str
    patient_id: str

    def canonical(self, label: bytes = b"rekam-field-v1") -> bytes:
        parts = [label]
        for text in (self.table, self.column, self.record_id, self.patient_id):
            data = text.encode()
            parts.append(struct.pack(">H", len(data)) + data)
        return b"".join(parts)

    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.canonical()).digest()[:8]

    @property
    def owner(self) -> str:
        return patient_owner(self.patient_id)


def patient_owner(patient_id: str) -> str:
    return f"patient:{patient_id}"


def derive_message_keys(data_key: bytes, salt: bytes, info: bytes) -> tuple[bytes, bytes, bytes]:
    material = HKDF(algorithm=SHA256(), length=76, salt=salt, info=info).derive(data_key)
    return material[:32], material[32:44], material[44:76]


class FieldCipher:
    """encrypt_field / decrypt_field: the only way Rekam stores a sensitive value."""

    def __init__(self, keys: DataKeyManager) -> None:
        self.keys = keys

    def encrypt_field(self, value: str | bytes, context: FieldContext) -> bytes:
        plaintext = value.encode() if isinstance(value, str) else value
        key_id, data_key = self.keys.key_for_owner(context.owner)
        salt = os.urandom(32)
        prefix = (
            MAGIC
            + bytes([FORMAT_VERSION, ALGORITHM_AES256GCM_HKDF_COMMIT])
            + key_id.bytes
            + context.fingerprint()
        )
        message_key, nonce, commitment = derive_message_keys(
            data_key, salt, b"rekam-field-v1" + prefix
        )
        header = prefix + salt + commitment
        sealed = AESGCM(message_key).encrypt(nonce, plaintext, header + context.canonical())
        return header + sealed

    def decrypt_field(self, ciphertext: bytes, context: FieldContext) -> bytes:
        key_id = field_key_id(ciphertext)
        if not hmac.compare_digest(ciphertext[20:28], context.fingerprint()):
            raise WrongContext(
                "this encrypted value belongs to another record, column or patient "
                f"(expected {context.table}.{context.column} of record {context.record_id})"
            )
        data_key = self.keys.key_by_id(key_id, expected_owner=context.owner)
        prefix, salt, commitment = (
            ciphertext[:_HEADER_PREFIX],
            ciphertext[_HEADER_PREFIX:60],
            ciphertext[60:_HEADER],
        )
        message_key, nonce, expected = derive_message_keys(
            data_key, salt, b"rekam-field-v1" + prefix
        )
        if not hmac.compare_digest(commitment, expected):
            raise CiphertextTampered("the encrypted value was altered (key commitment mismatch)")
        try:
            return AESGCM(message_key).decrypt(
                nonce, ciphertext[_HEADER:], ciphertext[:_HEADER] + context.canonical()
            )
        except InvalidTag as exc:
            raise CiphertextTampered(
                "the encrypted value was altered (authentication tag mismatch)"
            ) from exc

    def decrypt_text(self, ciphertext: bytes, context: FieldContext) -> str:
        return self.decrypt_field(ciphertext, context).decode()


def field_key_id(ciphertext: bytes) -> uuid.UUID:
    """The data key id in a field ciphertext's header (validating the header first)."""
    if len(ciphertext) < OVERHEAD:
        raise CiphertextMalformed("the encrypted value is truncated")
    if ciphertext[:2] != MAGIC:
        raise CiphertextMalformed("this is not a Rekam encrypted value")
    if ciphertext[2] != FORMAT_VERSION or ciphertext[3] != ALGORITHM_AES256GCM_HKDF_COMMIT:
        raise CiphertextMalformed(
            f"unsupported ciphertext format {ciphertext[2]} / algorithm {ciphertext[3]}"
        )
    return uuid.UUID(bytes=ciphertext[4:20])
