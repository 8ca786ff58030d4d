"""Encrypted file storage: files are encrypted in this process before they reach a store.

``EncryptedFileStore`` (encrypt, name, hash, authenticate) sits on a ``BlobStore`` that only
ever holds ciphertext: ``FilesystemBlobStore`` (the embedded default) or ``S3BlobStore``
(any S3-compatible service). Decryption problems raise ``rekam.crypto``'s errors
(``CiphertextTampered``, ``StreamTruncated``, ``WrongContext``, …); storage problems raise
``BlobStoreError`` and its subclasses, which are ``rekam.store.StoreError``s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rekam.store.blobs.blob_store import BlobStore
from rekam.store.blobs.encrypted import EncryptedFileStore, StoredFile
from rekam.store.blobs.errors import BlobNotFound, BlobStoreError, InvalidBlobName
from rekam.store.blobs.filesystem import FilesystemBlobStore
from rekam.store.blobs.names import new_blob_name, validate_blob_name

if TYPE_CHECKING:
    from rekam.store.blobs.s3 import S3BlobStore

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "EncryptedFileStore",
    "FilesystemBlobStore",
    "InvalidBlobName",
    "S3BlobStore",
    "StoredFile",
    "new_blob_name",
    "validate_blob_name",
]


def __getattr__(name: str) -> Any:
    # The S3 client library is large; only an installation that stores files in S3 loads it.
    if name == "S3BlobStore":
        from rekam.store.blobs.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
