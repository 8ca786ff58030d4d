"""Encrypted file storage: files are encrypted in this process before they reach a store.

``EncryptedFileStore`` (encrypt, name, hash, authenticate) sits on a ``BlobStore`` that only
ever holds ciphertext: ``FilesystemBlobStore`` (the embedded default) or
``rekam.store.blobs.s3.S3BlobStore`` (any S3-compatible service; a module of its own, so its
large client library is loaded only where S3 is used). Decryption problems raise
``rekam.crypto``'s errors (``CiphertextTampered``, ``StreamTruncated``, ``WrongContext``, …);
storage problems raise ``BlobStoreError`` and its subclasses, which are
``rekam.store.StoreError``s.
"""

from rekam.store.blobs.blob_store import BlobStore
from rekam.store.blobs.encrypted import EncryptedFileStore, StoredFile
from rekam.store.blobs.errors import BlobNotFound, BlobStoreError, InvalidBlobName
from rekam.store.blobs.filesystem import FilesystemBlobStore
from rekam.store.blobs.names import new_blob_name, validate_blob_name

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "EncryptedFileStore",
    "FilesystemBlobStore",
    "InvalidBlobName",
    "StoredFile",
    "new_blob_name",
    "validate_blob_name",
]
