"""Streaming file encryption: chunks authenticated, truncation and reordering detected."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from rekam.crypto import (
    BlobCipher,
    CiphertextMalformed,
    CiphertextTampered,
    DataKeyManager,
    FieldContext,
    StreamTruncated,
    WrongContext,
)
from rekam.crypto.blob_stream import HEADER_BYTES, ciphertext_size

CHUNK = 4096
PATIENT = str(uuid.uuid4())
CONTEXT = FieldContext("files", "content", "file-1", PATIENT)


@pytest.fixture
def blobs(keys: DataKeyManager) -> BlobCipher:
    return BlobCipher(keys, chunk_size=CHUNK)


def encrypt(blobs: BlobCipher, data: bytes, context: FieldContext = CONTEXT) -> bytes:
    out = io.BytesIO()
    blobs.encrypt_stream(io.BytesIO(data), out, context)
    return out.getvalue()


def decrypt(blobs: BlobCipher, data: bytes, context: FieldContext = CONTEXT) -> bytes:
    out = io.BytesIO()
    blobs.decrypt_stream(io.BytesIO(data), out, context)
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 17])
def test_round_trip_sizes(blobs: BlobCipher, size: int) -> None:
    data = os.urandom(size)
    sealed = encrypt(blobs, data)
    assert len(sealed) == ciphertext_size(size, CHUNK)
    assert decrypt(blobs, sealed) == data


def test_canary_not_in_ciphertext(blobs: BlobCipher) -> None:
    data = b"CANARY-ECG-" * 1000
    assert b"CANARY" not in encrypt(blobs, data)


def _chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    body = sealed[HEADER_BYTES:]
    record = CHUNK + 16
    return sealed[:HEADER_BYTES], [body[i : i + record] for i in range(0, len(body), record)]


def test_truncation_at_a_chunk_boundary(blobs: BlobCipher) -> None:
    header, chunks = _chunks(encrypt(blobs, os.urandom(3 * CHUNK + 100)))
    with pytest.raises(StreamTruncated):
        decrypt(blobs, header + b"".join(chunks[:2]))
    with pytest.raises(StreamTruncated):
        decrypt(blobs, header + b"".join(chunks)[:-1])
    with pytest.raises(CiphertextMalformed):
        decrypt(blobs, header[:50])


def test_reordered_and_altered_chunks(blobs: BlobCipher) -> None:
    header, chunks = _chunks(encrypt(blobs, os.urandom(3 * CHUNK + 100)))
    swapped = header + chunks[1] + chunks[0] + b"".join(chunks[2:])
    with pytest.raises(CiphertextTampered):
        decrypt(blobs, swapped)
    altered = bytearray(header + b"".join(chunks))
    altered[HEADER_BYTES + CHUNK + 100] ^= 0x01
    with pytest.raises(CiphertextTampered):
        decrypt(blobs, bytes(altered))
    with pytest.raises((CiphertextTampered, StreamTruncated)):
        decrypt(blobs, header + b"".join(chunks) + b"extra")


def test_header_tampering(blobs: BlobCipher) -> None:
    sealed = bytearray(encrypt(blobs, b"x" * 100))
    sealed[40] ^= 0x80  # salt
    with pytest.raises(CiphertextTampered):
        decrypt(blobs, bytes(sealed))


def test_file_moved_to_another_context(blobs: BlobCipher) -> None:
    sealed = encrypt(blobs, b"hasil EKG")
    with pytest.raises(WrongContext):
        decrypt(blobs, sealed, FieldContext("files", "content", "file-2", PATIENT))
