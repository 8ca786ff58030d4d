"""The BlobStore interface: named, opaque ciphertext objects; nothing here sees plaintext."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    """Where encrypted files are kept: a directory on disk, or an S3 bucket.

    Names are canonical lowercase UUIDs (see ``rekam.store.blobs.names``); anything else is
    refused with ``InvalidBlobName``. A missing object raises ``BlobNotFound``.
    """

    def put(self, name: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenation of ``chunks`` under ``name``; return the bytes stored.

        Streams (memory does not grow with the object) and is atomic: until it returns, readers
        see the previous object or none; if ``chunks`` or the store fails, nothing of the new
        object remains and the error propagates. An existing object of that name is replaced.
        """
        ...

    def open(self, name: str) -> BinaryIO:
        """A readable, streaming file object over the stored bytes; close it when done."""
        ...

    def delete(self, name: str, *, missing_ok: bool = False) -> None: ...

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def names(self, prefix: str = "") -> Iterator[str]:
        """Stored object names starting with ``prefix``, in sorted order."""
        ...
