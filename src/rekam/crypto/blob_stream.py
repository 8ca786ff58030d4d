"""Streaming file encryption: constant memory, every chunk authenticated, truncation and
reordering detected (the STREAM construction over AES-256-GCM).

Format, version 1::

    offset size  field
    0      3     magic "RKB"
    3      1     format version (1)
    4      1     algorithm (1 = AES-256-GCM STREAM, HKDF-SHA256 per-file key, key commitment)
    5      16    data key id (UUID)
    21     8     context fingerprint: SHA-256(canonical context)[:8]
    29     4     plaintext bytes per chunk (big-endian)
    33     32    salt (random)
    65     32    key commitment
    97     ...   chunks: AES-256-GCM(chunk) | tag (16); every chunk full-size except the last

HKDF-SHA256(data key, salt, info = "rekam-blob-v1" | header[0:33]) yields the file key (32),
a 7-byte nonce prefix and the commitment (32). Chunk i uses the nonce
prefix | i (4 bytes, big-endian) | final flag (1 byte: 1 on the last chunk, else 0), and
SHA-256(header | canonical context) as associated data. A file cut at a chunk boundary lacks its
final chunk; a moved chunk has the wrong counter; both fail.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rekam.crypto.data_keys import DataKeyManager
from rekam.crypto.envelope import FieldContext, derive_message_keys
from rekam.crypto.errors import (
    CiphertextMalformed,
    CiphertextTampered,
    StreamTruncated,
    WrongContext,
)

MAGIC = b"RKB"
FORMAT_VERSION = 1
ALGORITHM_STREAM = 1
DEFAULT_CHUNK = 64 * 1024
_PREFIX = 33
HEADER_BYTES = 97
_TAG = 16
_MAX_CHUNKS = 2**32


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">I", index) + (b"\x01" if final else b"\x00")


class BlobCipher:
    """Encrypt and decrypt files as streams of chunks."""

    def __init__(self, keys: DataKeyManager, chunk_size: int = DEFAULT_CHUNK) -> None:
        if not 1024 <= chunk_size <= 16 * 1024 * 1024:
            raise ValueError("chunk size must be between 1 KiB and 16 MiB")
        self.keys = keys
        self.chunk_size = chunk_size

    # Encryption --------------------------------------------------------------------------------

    def encrypt_chunks(self, chunks: Iterable[bytes], context: FieldContext) -> Iterator[bytes]:
        """Yield the header, then one encrypted chunk per ``chunk_size`` bytes of input."""
        key_id, data_key = self.keys.key_for_owner(context.owner)
        salt = os.urandom(32)
        prefix = (
            MAGIC
            + bytes([FORMAT_VERSION, ALGORITHM_STREAM])
            + key_id.bytes
            + context.fingerprint()
            + struct.pack(">I", self.chunk_size)
        )
        file_key, nonce_prefix, commitment = _derive(data_key, salt, prefix)
        header = prefix + salt + commitment
        associated = hashlib.sha256(header + context.canonical()).digest()
        aead = AESGCM(file_key)
        yield header
        index = 0
        buffer = bytearray()
        for piece in chunks:
            buffer += piece
            # keep at least one byte back: the last chunk must be the one marked final
            while len(buffer) > self.chunk_size:
                chunk = bytes(buffer[: self.chunk_size])
                del buffer[: self.chunk_size]
                yield aead.encrypt(_nonce(nonce_prefix, index, False), chunk, associated)
                index += 1
                if index >= _MAX_CHUNKS:
                    raise ValueError("file too large for one encrypted stream")
        yield aead.encrypt(_nonce(nonce_prefix, index, True), bytes(buffer), associated)

    def encrypt_stream(self, source: BinaryIO, sink: BinaryIO, context: FieldContext) -> int:
        """Encrypt ``source`` into ``sink``; returns the ciphertext size."""
        written = 0
        for block in self.encrypt_chunks(_read_blocks(source, self.chunk_size), context):
            sink.write(block)
            written += len(block)
        return written

    # Decryption --------------------------------------------------------------------------------

    def decrypt_chunks(self, source: BinaryIO, context: FieldContext) -> Iterator[bytes]:
        """Yield plaintext chunk by chunk; raises before yielding anything unauthenticated."""
        header = _read_exactly(source, HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:3] != MAGIC:
            raise CiphertextMalformed("this is not a Rekam encrypted file (or it is truncated)")
        if header[3] != FORMAT_VERSION or header[4] != ALGORITHM_STREAM:
            raise CiphertextMalformed(
                f"unsupported encrypted file format {header[3]} / algorithm {header[4]}"
            )
        if not hmac.compare_digest(header[21:29], context.fingerprint()):
            raise WrongContext("this encrypted file belongs to another record or patient")
        chunk_size = struct.unpack(">I", header[29:33])[0]
        if not 1024 <= chunk_size <= 16 * 1024 * 1024:
            raise CiphertextMalformed("the encrypted file declares an impossible chunk size")
        key_id = uuid.UUID(bytes=header[5:21])
        data_key = self.keys.key_by_id(key_id, expected_owner=context.owner)
        file_key, nonce_prefix, expected = _derive(data_key, header[33:65], header[:_PREFIX])
        if not hmac.compare_digest(header[65:97], expected):
            raise CiphertextTampered("the encrypted file was altered (key commitment mismatch)")
        associated = hashlib.sha256(header + context.canonical()).digest()
        aead = AESGCM(file_key)
        record = chunk_size + _TAG
        index = 0
        current = _read_exactly(source, record)
        while True:
            following = _read_exactly(source, record) if len(current) == record else b""
            final = not following
            if len(current) < _TAG:
                raise StreamTruncated(
                    f"the encrypted file ends inside chunk {index}: it was truncated"
                )
            try:
                plaintext = aead.decrypt(_nonce(nonce_prefix, index, final), current, associated)
            except InvalidTag as exc:
                if final:
                    raise StreamTruncated(
                        f"the encrypted file is truncated or altered at chunk {index}"
                    ) from exc
                raise CiphertextTampered(
                    f"chunk {index} of the encrypted file was altered or moved"
                ) from exc
            yield plaintext
            if final:
                return
            index += 1
            current = following

    def decrypt_stream(self, source: BinaryIO, sink: BinaryIO, context: FieldContext) -> int:
        """Decrypt ``source`` into ``sink``; returns the plaintext size.

        Chunks are written as they are authenticated; if a later chunk fails, the caller must
        discard what was written (the blob stores write to a temporary file first)."""
        written = 0
        for block in self.decrypt_chunks(source, context):
            sink.write(block)
            written += len(block)
        return written


def ciphertext_size(plaintext_size: int, chunk_size: int = DEFAULT_CHUNK) -> int:
    chunks = max(1, -(-plaintext_size // chunk_size))
    return HEADER_BYTES + plaintext_size + chunks * _TAG


def _derive(data_key: bytes, salt: bytes, prefix: bytes) -> tuple[bytes, bytes, bytes]:
    key, nonce, commitment = derive_message_keys(data_key, salt, b"rekam-blob-v1" + prefix)
    return key, nonce[:7], commitment


def _read_blocks(source: BinaryIO, size: int) -> Iterator[bytes]:
    while True:
        block = source.read(size)
        if not block:
            return
        yield block


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining:
        block = source.read(remaining)
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)
