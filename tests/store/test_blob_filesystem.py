"""FilesystemBlobStore: layout, permissions, atomic writes, listing, missing objects, names."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rekam.store import StoreError
from rekam.store.blobs import (
    BlobNotFound,
    BlobStore,
    FilesystemBlobStore,
    InvalidBlobName,
    new_blob_name,
)

BAD_NAMES = [
    "",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "ab/../../x",
    "ab/cdef",
    ".hidden",
    "0123456789abcdef0123456789abcdef",  # a UUID without hyphens is not canonical
    "3F2504E0-4F89-11D3-9A0C-0305E82C3301",  # upper case is not canonical
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301/..",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301\x00",
    " 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301.partial",
    "Siti Rahmawati 1975-03-02.pdf",
]


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


def chunked(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def read_all(store: BlobStore, name: str) -> bytes:
    with store.open(name) as handle:
        return handle.read()


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 3 * 1024 * 1024 + 7])
def test_round_trip(store: FilesystemBlobStore, size: int) -> None:
    data = os.urandom(size)
    name = new_blob_name()
    assert store.put(name, chunked(data)) == size
    assert store.exists(name)
    assert store.size(name) == size
    assert read_all(store, name) == data
    with store.open(name) as handle:  # streaming: partial reads work
        assert handle.read(10) == data[:10]


def test_layout_and_permissions(store: FilesystemBlobStore) -> None:
    name = new_blob_name()
    store.put(name, [b"ciphertext"])
    path = store.root / name[:2] / name
    assert store.path_of(name) == path
    assert path.read_bytes() == b"ciphertext"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


def test_is_a_blob_store(store: FilesystemBlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_a_reader_never_sees_a_half_written_object(store: FilesystemBlobStore) -> None:
    name = new_blob_name()
    seen: list[tuple[bool, list[str]]] = []

    def slow_source() -> Iterator[bytes]:
        yield b"first half "
        seen.append((store.exists(name), list(store.names())))
        yield b"second half"

    store.put(name, slow_source())
    assert seen == [(False, [])]
    assert read_all(store, name) == b"first half second half"


def test_a_replacement_is_atomic(store: FilesystemBlobStore) -> None:
    name = new_blob_name()
    store.put(name, [b"old version"])
    during: list[bytes] = []

    def source() -> Iterator[bytes]:
        yield b"new "
        during.append(read_all(store, name))
        yield b"version"

    store.put(name, source())
    assert during == [b"old version"]
    assert read_all(store, name) == b"new version"


def test_a_failing_source_leaves_nothing(store: FilesystemBlobStore) -> None:
    name = new_blob_name()

    def failing() -> Iterator[bytes]:
        yield os.urandom(200_000)
        raise ConnectionResetError("upload interrupted")

    with pytest.raises(ConnectionResetError):
        store.put(name, failing())
    assert not store.exists(name)
    assert list(store.names()) == []
    leftovers = [p for p in store.root.rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_failed_replacement_keeps_the_old_object(store: FilesystemBlobStore) -> None:
    name = new_blob_name()
    store.put(name, [b"kept"])

    def failing() -> Iterator[bytes]:
        yield b"lost"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.put(name, failing())
    assert read_all(store, name) == b"kept"


def test_names_are_sorted_filtered_by_prefix_and_skip_strangers(
    store: FilesystemBlobStore,
) -> None:
    names = sorted(new_blob_name() for _ in range(20))
    for name in names:
        store.put(name, [name.encode()])
    (store.root / names[0][:2] / "notes.txt").write_bytes(b"not an object")
    (store.root / names[0][:2] / f".{names[0]}.0123.partial").write_bytes(b"in flight")
    (store.root / "zz").mkdir()
    assert list(store.names()) == names
    first = names[0]
    assert list(store.names(first[:1])) == [n for n in names if n.startswith(first[:1])]
    assert list(store.names(first[:3])) == [n for n in names if n.startswith(first[:3])]
    assert list(store.names(first)) == [first]
    assert list(store.names("ffffffff-ffff")) == [n for n in names if n.startswith("ffffffff-ffff")]


def test_missing_objects(store: FilesystemBlobStore) -> None:
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


def test_delete(store: FilesystemBlobStore) -> None:
    name = new_blob_name()
    store.put(name, [b"x"])
    store.delete(name)
    assert not store.exists(name)
    assert not (store.root / name[:2] / name).exists()


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_invalid_names_are_refused(store: FilesystemBlobStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidBlobName, match="refused object name"):
        store.put(bad, [b"payload"])
    for call in (store.open, store.exists, store.size, store.delete, store.path_of):
        with pytest.raises(InvalidBlobName):
            call(bad)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []


@pytest.mark.parametrize("bad", ["../", "/", "ab/", "G", "3F", "x" * 40, "3f2504e0\x00"])
def test_invalid_prefixes_are_refused(store: FilesystemBlobStore, bad: str) -> None:
    with pytest.raises(InvalidBlobName, match="refused name prefix"):
        list(store.names(bad))


def test_uuid_names_of_any_version_are_accepted(store: FilesystemBlobStore) -> None:
    for name in (str(uuid.uuid1()), str(uuid.uuid5(uuid.NAMESPACE_URL, "x")), new_blob_name()):
        store.put(name, [b"ok"])
        assert read_all(store, name) == b"ok"
