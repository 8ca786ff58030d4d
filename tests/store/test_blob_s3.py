"""S3BlobStore against a real SeaweedFS on 127.0.0.1: streaming multipart uploads, aborts,
atomic visibility, listing, missing objects, authentication."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rekam.store import StoreError
from rekam.store.blobs import (
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    InvalidBlobName,
    new_blob_name,
)
from rekam.store.blobs.s3 import S3BlobStore
from support.seaweedfs import SeaweedS3, shared_seaweedfs

pytestmark = pytest.mark.interop

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part S3 allows, so multipart paths run on small files


@pytest.fixture(scope="module")
def seaweed(request: pytest.FixtureRequest) -> SeaweedS3:
    return shared_seaweedfs(request)


@pytest.fixture(scope="module")
def bucket(seaweed: SeaweedS3) -> str:
    return seaweed.create_bucket()


@pytest.fixture
def store(seaweed: SeaweedS3, bucket: str) -> Iterator[S3BlobStore]:
    """A store under a fresh key prefix, so every test starts empty."""
    blobs = S3BlobStore(
        seaweed.endpoint_url,
        bucket,
        seaweed.access_key,
        seaweed.secret_key,
        key_prefix=f"t{uuid.uuid4().hex[:10]}/",
        part_size=PART,
    )
    yield blobs
    blobs.close()


class PartCounter:
    """Counts UploadPart calls on a store's client (without changing what they do)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.sizes: list[int] = []
        original = store.client.upload_part

        def upload_part(**kwargs: Any) -> Any:
            self.sizes.append(len(kwargs["Body"]))
            return original(**kwargs)

        store.client.upload_part = upload_part


def chunked(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(store: BlobStore, name: str) -> bytes:
    with store.open(name) as handle:
        return handle.read()


def pending_uploads(seaweed: SeaweedS3, bucket: str, key: str) -> list[str]:
    answer = seaweed.client().list_multipart_uploads(Bucket=bucket, Prefix=key)
    return [upload["UploadId"] for upload in answer.get("Uploads", []) if upload["Key"] == key]


@pytest.mark.parametrize(
    ("size", "parts"),
    [(0, 0), (1, 0), (65_536, 0), (PART - 1, 0), (PART, 1), (2 * PART + 12_345, 3)],
)
def test_round_trip(store: S3BlobStore, size: int, parts: int) -> None:
    counter = PartCounter(store)
    data = os.urandom(size)
    name = new_blob_name()
    assert store.put(name, chunked(data)) == size
    assert len(counter.sizes) == parts
    assert all(part >= PART for part in counter.sizes[:-1])
    assert store.exists(name)
    assert store.size(name) == size
    assert read_all(store, name) == data


def test_open_streams_in_pieces(store: S3BlobStore) -> None:
    data = os.urandom(3 * MiB + 17)
    name = new_blob_name()
    store.put(name, chunked(data))
    pieces = []
    with store.open(name) as handle:
        assert handle.readable()
        while piece := handle.read(100_003):
            pieces.append(piece)
    assert len(pieces) == 32
    assert b"".join(pieces) == data


def test_is_a_blob_store(store: S3BlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_the_object_is_invisible_until_the_multipart_upload_completes(
    store: S3BlobStore, seaweed: SeaweedS3, bucket: str
) -> None:
    name = new_blob_name()
    key = store.key_of(name)
    during: list[tuple[bool, list[str], int]] = []

    def source() -> Iterator[bytes]:
        yield os.urandom(PART + 10)  # the first part goes up now
        during.append(
            (store.exists(name), list(store.names()), len(pending_uploads(seaweed, bucket, key)))
        )
        yield b"last part"

    store.put(name, source())
    assert during == [(False, [], 1)]
    assert store.size(name) == PART + 10 + len(b"last part")
    assert pending_uploads(seaweed, bucket, key) == []


def test_a_failing_source_aborts_the_multipart_upload(
    store: S3BlobStore, seaweed: SeaweedS3, bucket: str
) -> None:
    name = new_blob_name()
    key = store.key_of(name)
    counter = PartCounter(store)
    in_flight: list[list[str]] = []

    def failing() -> Iterator[bytes]:
        for _ in range(2 * PART // MiB + 1):
            yield os.urandom(MiB)
        in_flight.append(pending_uploads(seaweed, bucket, key))
        raise ConnectionResetError("the scanner was unplugged")

    with pytest.raises(ConnectionResetError, match="unplugged"):
        store.put(name, failing())
    assert len(counter.sizes) == 2
    assert len(in_flight[0]) == 1  # the upload existed, with parts, before the failure
    assert pending_uploads(seaweed, bucket, key) == []
    assert not store.exists(name)
    assert list(store.names()) == []
    listed = seaweed.client().list_objects_v2(Bucket=bucket, Prefix=store.key_prefix)
    assert listed.get("KeyCount", 0) == 0


def test_a_failing_small_source_leaves_nothing(store: S3BlobStore) -> None:
    name = new_blob_name()

    def failing() -> Iterator[bytes]:
        yield b"some bytes"
        raise OSError("read error")

    with pytest.raises(OSError, match="read error"):
        store.put(name, failing())
    assert not store.exists(name)


def test_names_are_sorted_and_filtered(store: S3BlobStore, seaweed: SeaweedS3, bucket: str) -> None:
    names = sorted(new_blob_name() for _ in range(12))
    for name in names:
        store.put(name, [b"x"])
    seaweed.client().put_object(Bucket=bucket, Key=store.key_prefix + "not-a-uuid.txt", Body=b"")
    assert list(store.names()) == names
    first = names[0]
    assert list(store.names(first[:2])) == [n for n in names if n.startswith(first[:2])]
    assert list(store.names(first)) == [first]


def test_key_prefixes_keep_stores_apart(
    store: S3BlobStore, seaweed: SeaweedS3, bucket: str
) -> None:
    name = new_blob_name()
    store.put(name, [b"mine"])
    other = S3BlobStore(
        seaweed.endpoint_url, bucket, seaweed.access_key, seaweed.secret_key, key_prefix="other/"
    )
    assert not other.exists(name)
    assert name not in list(other.names())
    other.close()


def test_missing_objects(store: S3BlobStore) -> None:
    name = new_blob_name()
    assert not store.exists(name)
    with pytest.raises(BlobNotFound, match=f"stored file {name} was not found") as caught:
        store.open(name)
    assert isinstance(caught.value, StoreError)
    with pytest.raises(BlobNotFound):
        store.size(name)
    with pytest.raises(BlobNotFound):
        store.delete(name)
    store.delete(name, missing_ok=True)


def test_delete(store: S3BlobStore) -> None:
    name = new_blob_name()
    store.put(name, [b"x"])
    store.delete(name)
    assert not store.exists(name)
    with pytest.raises(BlobNotFound):
        store.open(name)


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "ab/../x", "/abs", "A" * 36, "name.pdf"])
def test_invalid_names_are_refused(store: S3BlobStore, bad: str) -> None:
    with pytest.raises(InvalidBlobName):
        store.put(bad, [b"payload"])
    for call in (store.open, store.exists, store.size, store.delete, store.key_of):
        with pytest.raises(InvalidBlobName):
            call(bad)
    with pytest.raises(InvalidBlobName):
        list(store.names("../"))


def test_requests_are_authenticated(store: S3BlobStore, seaweed: SeaweedS3, bucket: str) -> None:
    name = new_blob_name()
    store.put(name, [b"secret-ish"])
    wrong = S3BlobStore(seaweed.endpoint_url, bucket, seaweed.access_key, "not-the-secret")
    with pytest.raises(BlobStoreError, match="refused to read a file: SignatureDoesNotMatch"):
        wrong.open(name)
    wrong.close()
    anonymous = f"{seaweed.endpoint_url}/{bucket}/{store.key_of(name)}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=10)  # noqa: S310 - loopback test server
    assert refused.value.code == 403


def test_ensure_bucket_creates_a_missing_bucket(seaweed: SeaweedS3) -> None:
    bucket = f"rekam-new-{uuid.uuid4().hex[:8]}"
    blobs = S3BlobStore(seaweed.endpoint_url, bucket, seaweed.access_key, seaweed.secret_key)
    blobs.ensure_bucket()
    blobs.ensure_bucket()  # idempotent
    name = new_blob_name()
    blobs.put(name, [b"ok"])
    assert read_all(blobs, name) == b"ok"
    blobs.delete(name)
    seaweed.client().delete_bucket(Bucket=bucket)
    blobs.close()


def test_an_unreachable_store_is_a_store_error(seaweed: SeaweedS3) -> None:
    blobs = S3BlobStore(
        "http://127.0.0.1:9", "b", "k", "s", timeout_seconds=2.0
    )  # port 9 (discard): nothing listens
    with pytest.raises(BlobStoreError, match="could not read a file"):
        blobs.open(new_blob_name())
    blobs.close()


def test_part_size_is_checked() -> None:
    with pytest.raises(ValueError, match="between 5 MiB"):
        S3BlobStore("http://127.0.0.1:1", "b", "k", "s", part_size=MiB)
    with pytest.raises(ValueError, match="key prefix"):
        S3BlobStore("http://127.0.0.1:1", "b", "k", "s", key_prefix="../")
