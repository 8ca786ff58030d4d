"""EncryptedFileStore: files are encrypted in this process before any byte reaches a BlobStore.

Each file is one STREAM ciphertext (``rekam.crypto.blob_stream``) under the patient's data key,
bound to its ``FieldContext`` (table, column, record id, patient id): an object copied to another
record or patient does not open (``WrongContext``). Objects are named by a fresh UUID, so
nothing about the patient or the file appears in the store.

Reading: ``open_plaintext`` yields chunks as each is authenticated, but truncation is only known
at the end of the stream. ``load_to`` and ``load_to_path`` hand out nothing until the whole
stream has authenticated: they decrypt into a temporary file (mode 0600) first.

Example::

    store = EncryptedFileStore(FilesystemBlobStore(root), BlobCipher(keys))
    with open("report.pdf", "rb") as source:
        stored = store.save(source, context, "application/pdf")
    store.load_to_path(stored.name, context, Path("copy.pdf"))
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rekam.crypto.blob_stream import BlobCipher, ciphertext_size
from rekam.crypto.envelope import FieldContext
from rekam.crypto.errors import CiphertextTampered
from rekam.store.blobs.blob_store import BlobStore
from rekam.store.blobs.errors import BlobStoreError
from rekam.store.blobs.names import new_blob_name, validate_blob_name

_COPY_BUFFER = 1024 * 1024
_MEDIA_NAME = r"[A-Za-z0-9!#$&^_.+-]{1,127}"
_PARAMETER = rf"\s*;\s*{_MEDIA_NAME}=[\x21-\x7e]{{1,127}}"
_CONTENT_TYPE = re.compile(rf"{_MEDIA_NAME}/{_MEDIA_NAME}(?:{_PARAMETER})*")


@dataclass(frozen=True)
class StoredFile:
    """What the database keeps about a stored file (none of it is secret)."""

    name: str
    ciphertext_size: int
    plaintext_size: int
    sha256: str
    """Hex SHA-256 of the plaintext, computed while it streamed in."""
    content_type: str


class EncryptedFileStore:
    """Save, read and delete encrypted files in any BlobStore."""

    def __init__(self, blobs: BlobStore, cipher: BlobCipher, spool_dir: Path | None = None) -> None:
        """``spool_dir`` holds ``load_to``'s temporary plaintext (default: the system's
        temporary directory); put it on an encrypted volume in production."""
        self.blobs = blobs
        self.cipher = cipher
        self.spool_dir = spool_dir

    # Saving ------------------------------------------------------------------------------------

    def save(self, source: BinaryIO, context: FieldContext, content_type: str) -> StoredFile:
        """Encrypt ``source`` (read to its end) into a new object; memory stays constant."""
        if _CONTENT_TYPE.fullmatch(content_type) is None:
            raise ValueError(f"not a media type: {content_type[:80]!r}")
        name = new_blob_name()
        digest = hashlib.sha256()
        plaintext_size = 0

        def plaintext() -> Iterator[bytes]:
            nonlocal plaintext_size
            while block := source.read(self.cipher.chunk_size):
                digest.update(block)
                plaintext_size += len(block)
                yield block

        stored = self.blobs.put(name, self.cipher.encrypt_chunks(plaintext(), context))
        expected = ciphertext_size(plaintext_size, self.cipher.chunk_size)
        if stored != expected:
            self.blobs.delete(name, missing_ok=True)
            raise BlobStoreError(
                f"the file store kept {stored} bytes where {expected} were written; "
                "the file was not saved"
            )
        return StoredFile(
            name=name,
            ciphertext_size=stored,
            plaintext_size=plaintext_size,
            sha256=digest.hexdigest(),
            content_type=content_type,
        )

    # Reading -----------------------------------------------------------------------------------

    def open_plaintext(self, stored_name: str, context: FieldContext) -> Iterator[bytes]:
        """Plaintext chunks, each authenticated before it is yielded.

        ``BlobNotFound`` is raised here; decryption errors while iterating. A truncated object
        raises only at its end, after earlier chunks were yielded: callers that must not act on
        partial content use ``load_to`` or ``load_to_path``.
        """
        source = self.blobs.open(validate_blob_name(stored_name))
        return self._decrypt(source, context)

    def _decrypt(self, source: BinaryIO, context: FieldContext) -> Generator[bytes, None, None]:
        with source:
            yield from self.cipher.decrypt_chunks(source, context)

    def _decrypt_into(
        self,
        stored_name: str,
        context: FieldContext,
        sink: BinaryIO,
        expected_sha256: str | None,
    ) -> int:
        digest = hashlib.sha256()
        size = 0
        source = self.blobs.open(validate_blob_name(stored_name))
        with contextlib.closing(self._decrypt(source, context)) as chunks:
            for chunk in chunks:
                digest.update(chunk)
                sink.write(chunk)
                size += len(chunk)
        if expected_sha256 is not None and not hmac.compare_digest(
            digest.hexdigest(), expected_sha256.lower()
        ):
            raise CiphertextTampered(
                "the stored file authenticates but is not the file that was saved "
                "(its SHA-256 differs from the recorded one: it was replaced)"
            )
        return size

    def load_to(
        self,
        stored_name: str,
        context: FieldContext,
        sink: BinaryIO,
        expected_sha256: str | None = None,
    ) -> int:
        """Write the plaintext to ``sink`` only after the whole object authenticated; returns
        its size. On any error nothing has been written to ``sink``."""
        with tempfile.TemporaryFile(dir=self.spool_dir) as spool:
            size = self._decrypt_into(stored_name, context, spool, expected_sha256)
            spool.seek(0)
            shutil.copyfileobj(spool, sink, _COPY_BUFFER)
        return size

    def load_to_path(
        self,
        stored_name: str,
        context: FieldContext,
        path: Path,
        expected_sha256: str | None = None,
    ) -> int:
        """Decrypt into ``path`` (mode 0600), which appears only once the whole object has
        authenticated (temporary file, fsync, rename). On error ``path`` is left as it was."""
        path = Path(path)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.partial")
        try:
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
            with os.fdopen(fd, "wb") as out:
                size = self._decrypt_into(stored_name, context, out, expected_sha256)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        return size

    # Deleting ----------------------------------------------------------------------------------

    def delete(self, stored_name: str, *, missing_ok: bool = False) -> None:
        self.blobs.delete(validate_blob_name(stored_name), missing_ok=missing_ok)

    def exists(self, stored_name: str) -> bool:
        return self.blobs.exists(validate_blob_name(stored_name))
