"""Field encryption: round trips, context binding, tampering, key commitment, erasure."""

from __future__ import annotations

import hashlib
import os
import struct
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rekam.crypto import (
    CiphertextMalformed,
    CiphertextTampered,
    DataKeyManager,
    FieldCipher,
    FieldContext,
    KeyErased,
    WrappedKeyInvalid,
    WrongContext,
)
from rekam.crypto.data_keys import wrapping_context

from .conftest import MemoryDataKeyStore

PATIENT_A = str(uuid.uuid4())
PATIENT_B = str(uuid.uuid4())


def ctx(column: str = "diagnosis", record: str = "rec-1", patient: str = PATIENT_A) -> FieldContext:
    return FieldContext("consultations", column, record, patient)


def test_round_trip_and_fresh_randomness(fields: FieldCipher) -> None:
    value = "Diagnosis: I10 hipertensi esensial (primer) — kontrol 2 minggu"
    one = fields.encrypt_field(value, ctx())
    two = fields.encrypt_field(value, ctx())
    assert one != two
    assert value.encode() not in one
    assert fields.decrypt_text(one, ctx()) == value
    assert fields.decrypt_text(two, ctx()) == value
    assert fields.decrypt_field(fields.encrypt_field(b"", ctx()), ctx()) == b""


def test_format_is_as_documented(fields: FieldCipher, keys: DataKeyManager) -> None:
    """Decrypt with an independent implementation of the documented format (HKDF + AES-GCM)."""
    context = ctx()
    ciphertext = fields.encrypt_field("NIK 3171234567890123", context)
    assert ciphertext[:2] == b"RK" and ciphertext[2] == 1 and ciphertext[3] == 1
    key_id = uuid.UUID(bytes=ciphertext[4:20])
    canonical = b"rekam-field-v1" + b"".join(
        struct.pack(">H", len(p.encode())) + p.encode()
        for p in ("consultations", "diagnosis", "rec-1", PATIENT_A)
    )
    assert ciphertext[20:28] == hashlib.sha256(canonical).digest()[:8]
    data_key = keys.key_by_id(key_id)
    material = HKDF(SHA256(), 76, ciphertext[28:60], b"rekam-field-v1" + ciphertext[:28]).derive(
        data_key
    )
    assert ciphertext[60:92] == material[44:76]
    plaintext = AESGCM(material[:32]).decrypt(
        material[32:44], ciphertext[92:], ciphertext[:92] + canonical
    )
    assert plaintext == b"NIK 3171234567890123"


@pytest.mark.parametrize(
    "moved_to",
    [
        ctx(column="history"),
        ctx(record="rec-2"),
        ctx(patient=PATIENT_B),
        FieldContext("lab_results", "diagnosis", "rec-1", PATIENT_A),
    ],
)
def test_moving_a_ciphertext_fails_with_wrong_context(
    fields: FieldCipher, moved_to: FieldContext
) -> None:
    fields.encrypt_field("warm-up so both patients have keys", ctx(patient=PATIENT_B))
    ciphertext = fields.encrypt_field("secret", ctx())
    with pytest.raises(WrongContext):
        fields.decrypt_field(ciphertext, moved_to)


def test_forged_fingerprint_still_fails(fields: FieldCipher) -> None:
    ciphertext = fields.encrypt_field("secret", ctx())
    other = ctx(column="history")
    forged = ciphertext[:20] + other.fingerprint() + ciphertext[28:]
    with pytest.raises(CiphertextTampered):
        fields.decrypt_field(forged, other)


def test_every_single_bit_flip_is_detected(fields: FieldCipher) -> None:
    ciphertext = fields.encrypt_field("BPJS 0001234567890", ctx())
    for position in range(len(ciphertext)):
        for bit in (0, 7):
            damaged = bytearray(ciphertext)
            damaged[position] ^= 1 << bit
            with pytest.raises(
                (
                    CiphertextTampered,
                    CiphertextMalformed,
                    WrongContext,
                    KeyErased,
                    WrappedKeyInvalid,
                )
            ):
                fields.decrypt_field(bytes(damaged), ctx())


def test_truncation_and_garbage(fields: FieldCipher) -> None:
    ciphertext = fields.encrypt_field("alamat: Jl. Merdeka No. 1", ctx())
    for cut in (0, 1, 50, 107, len(ciphertext) - 1):
        with pytest.raises((CiphertextMalformed, CiphertextTampered)):
            fields.decrypt_field(ciphertext[:cut], ctx())
    with pytest.raises(CiphertextMalformed):
        fields.decrypt_field(os.urandom(200), ctx())
    with pytest.raises(CiphertextMalformed):
        fields.decrypt_field(b"RK\x02\x01" + ciphertext[4:], ctx())


def test_key_commitment(fields: FieldCipher, keys: DataKeyManager) -> None:
    """A ciphertext re-pointed at another data key is refused before any decryption."""
    fields.encrypt_field("b", ctx(patient=PATIENT_B))
    ciphertext = fields.encrypt_field("a", ctx())
    b_key_id, _ = keys.key_for_owner(f"patient:{PATIENT_B}")
    repointed = ciphertext[:4] + b_key_id.bytes + ciphertext[20:]
    with pytest.raises((CiphertextTampered, WrappedKeyInvalid)):
        fields.decrypt_field(repointed, ctx())


def test_wrapped_key_swapped_between_patients(
    fields: FieldCipher, keys: DataKeyManager, store: MemoryDataKeyStore
) -> None:
    a_text = fields.encrypt_field("pasien A", ctx())
    fields.encrypt_field("pasien B", ctx(patient=PATIENT_B))
    a = store.load_for_owner(f"patient:{PATIENT_A}")
    b = store.load_for_owner(f"patient:{PATIENT_B}")
    assert a is not None and b is not None and b.wrapped is not None
    from dataclasses import replace

    store.records[a.key_id] = replace(a, wrapped=b.wrapped)
    keys.forget()
    with pytest.raises(WrappedKeyInvalid):
        fields.decrypt_field(a_text, ctx())


def test_wrapping_binds_key_id_and_owner(keys: DataKeyManager) -> None:
    key_id = uuid.uuid4()
    assert wrapping_context(key_id, "patient:x") != wrapping_context(key_id, "patient:y")
    assert wrapping_context(key_id, "patient:x") != wrapping_context(uuid.uuid4(), "patient:x")


def test_crypto_erasure(fields: FieldCipher, keys: DataKeyManager) -> None:
    a = fields.encrypt_field("riwayat A", ctx())
    b = fields.encrypt_field("riwayat B", ctx(patient=PATIENT_B))
    keys.destroy_owner_key(f"patient:{PATIENT_A}", "patient request, UU PDP")
    with pytest.raises(KeyErased) as erased:
        fields.decrypt_field(a, ctx())
    assert "crypto-erased" in str(erased.value)
    assert fields.decrypt_text(b, ctx(patient=PATIENT_B)) == "riwayat B"


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.binary(max_size=5000), column=st.text(min_size=1, max_size=30))
def test_any_value_round_trips(fields: FieldCipher, value: bytes, column: str) -> None:
    context = ctx(column=column)
    assert fields.decrypt_field(fields.encrypt_field(value, context), context) == value
