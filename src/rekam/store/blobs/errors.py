"""The exceptions of rekam.store.blobs. Decryption problems are rekam.crypto's errors."""

from __future__ import annotations

from rekam.store.database import StoreError


class BlobStoreError(StoreError):
    """The file store could not store, find or read an object."""


class BlobNotFound(BlobStoreError):
    """A stored file does not exist (it was deleted, or never saved)."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"the stored file {name} was not found in {where}; it may have been deleted "
            "or never saved"
        )
        self.name = name


class InvalidBlobName(BlobStoreError, ValueError):
    """An object name that is not an opaque id (a UUID); such names are refused."""
