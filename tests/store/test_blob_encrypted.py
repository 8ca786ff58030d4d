"""EncryptedFileStore on both blob stores (filesystem and SeaweedFS S3): round trips, no
plaintext at rest, tampering, context binding, constant memory, missing objects, names."""

from __future__ import annotations

import hashlib
import io
import random
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rekam.crypto import (
    BlobCipher,
    CiphertextMalformed,
    CiphertextTampered,
    DataKeyManager,
    DecryptionFailed,
    FieldContext,
    KeyErased,
    LocalKeyring,
    StreamTruncated,
    WrappedKeyInvalid,
    WrongContext,
)
from rekam.crypto.blob_stream import HEADER_BYTES
from rekam.store.blobs import (
    BlobNotFound,
    BlobStore,
    EncryptedFileStore,
    FilesystemBlobStore,
    InvalidBlobName,
    StoredFile,
)
from rekam.store.blobs.s3 import S3BlobStore
from support.memory_keys import MemoryDataKeyStore
from support.seaweedfs import SeaweedS3, find_on_disk, shared_seaweedfs

MB = 1_000_000
MiB = 1024 * 1024
CHUNK = 64 * 1024
RECORD = CHUNK + 16
PATIENT_A = str(uuid.uuid4())
PATIENT_B = str(uuid.uuid4())


def context(patient: str = PATIENT_A, record: str = "report-1") -> FieldContext:
    return FieldContext("documents", "file", record, patient)


@dataclass
class Backend:
    """A blob store plus an independent way to read and overwrite its raw objects."""

    kind: str
    blobs: BlobStore
    read_raw: Callable[[str], bytes]
    write_raw: Callable[[str, bytes], None]
    disk_root: Path


@pytest.fixture(scope="module")
def seaweed(request: pytest.FixtureRequest) -> SeaweedS3:
    return shared_seaweedfs(request)


@pytest.fixture(scope="module")
def bucket(seaweed: SeaweedS3) -> str:
    return seaweed.create_bucket()


def filesystem_backend(root: Path) -> Backend:
    blobs = FilesystemBlobStore(root)

    def write_raw(name: str, data: bytes) -> None:
        path = blobs.path_of(name)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)

    return Backend(
        "filesystem", blobs, lambda name: blobs.path_of(name).read_bytes(), write_raw, root
    )


def s3_backend(seaweed: SeaweedS3, bucket: str) -> Backend:
    blobs = S3BlobStore(
        seaweed.endpoint_url,
        bucket,
        seaweed.access_key,
        seaweed.secret_key,
        key_prefix=f"t{uuid.uuid4().hex[:10]}/",
    )
    plain = seaweed.client()  # a plain boto3 client: the tests' own view of the bucket

    def read_raw(name: str) -> bytes:
        body: bytes = plain.get_object(Bucket=bucket, Key=blobs.key_of(name))["Body"].read()
        return body

    def write_raw(name: str, data: bytes) -> None:
        plain.put_object(Bucket=bucket, Key=blobs.key_of(name), Body=data)

    return Backend("s3", blobs, read_raw, write_raw, seaweed.data_dir)


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.interop)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "filesystem":
        yield filesystem_backend(tmp_path / "blobs")
        return
    seaweed = request.getfixturevalue("seaweed")
    made = s3_backend(seaweed, request.getfixturevalue("bucket"))
    yield made
    assert isinstance(made.blobs, S3BlobStore)
    made.blobs.close()


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> LocalKeyring:
    directory = tmp_path_factory.mktemp("keyring")
    return LocalKeyring.create(directory / "keyring.json", b"blob-store-test-passphrase-42")


@pytest.fixture
def keys(keyring: LocalKeyring) -> DataKeyManager:
    return DataKeyManager(keyring, MemoryDataKeyStore())


@pytest.fixture
def files(backend: Backend, keys: DataKeyManager, tmp_path: Path) -> EncryptedFileStore:
    spool = tmp_path / "spool"
    spool.mkdir()
    return EncryptedFileStore(backend.blobs, BlobCipher(keys, CHUNK), spool_dir=spool)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def plaintext_of(files: EncryptedFileStore, name: str, ctx: FieldContext) -> bytes:
    return b"".join(files.open_plaintext(name, ctx))


# Round trips -----------------------------------------------------------------------------------

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 123, 20 * MB + 7]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s}B")
def test_round_trip(files: EncryptedFileStore, backend: Backend, out_dir: Path, size: int) -> None:
    data = random.randbytes(size)
    ctx = context()
    stored = files.save(io.BytesIO(data), ctx, "application/pdf")
    assert uuid.UUID(stored.name).version == 4
    assert stored.plaintext_size == size
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.content_type == "application/pdf"
    chunks = max(1, -(-size // CHUNK))
    assert stored.ciphertext_size == HEADER_BYTES + size + 16 * chunks
    assert backend.blobs.size(stored.name) == stored.ciphertext_size
    assert plaintext_of(files, stored.name, ctx) == data
    sink = io.BytesIO()
    assert files.load_to(stored.name, ctx, sink, expected_sha256=stored.sha256) == size
    assert sink.getvalue() == data
    target = out_dir / "report.pdf"
    assert files.load_to_path(stored.name, ctx, target, expected_sha256=stored.sha256) == size
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o077 == 0
    assert [p.name for p in out_dir.iterdir()] == ["report.pdf"]


def test_each_save_is_a_new_object(files: EncryptedFileStore, backend: Backend) -> None:
    first = files.save(io.BytesIO(b"same bytes"), context(), "text/plain")
    second = files.save(io.BytesIO(b"same bytes"), context(), "text/plain")
    assert first.name != second.name
    assert first.sha256 == second.sha256
    assert backend.read_raw(first.name) != backend.read_raw(second.name)  # fresh salt and key


def test_delete(files: EncryptedFileStore) -> None:
    stored = files.save(io.BytesIO(b"x"), context(), "text/plain")
    assert files.exists(stored.name)
    files.delete(stored.name)
    assert not files.exists(stored.name)
    with pytest.raises(BlobNotFound):
        files.delete(stored.name)
    files.delete(stored.name, missing_ok=True)


def test_content_type_is_checked(files: EncryptedFileStore) -> None:
    assert files.save(io.BytesIO(b"x"), context(), "text/plain; charset=utf-8").content_type
    for bad in ("", "pdf", "text/plain\r\nX-Injected: 1", "a/b/c"):
        with pytest.raises(ValueError, match="not a media type"):
            files.save(io.BytesIO(b"x"), context(), bad)


# No plaintext at rest --------------------------------------------------------------------------


def test_no_plaintext_reaches_the_store(
    files: EncryptedFileStore, backend: Backend, request: pytest.FixtureRequest
) -> None:
    canary = f"CANARY-{uuid.uuid4()}-Siti-Rahmawati".encode()
    document = b"".join(canary + random.randbytes(4000) for _ in range(100))  # many chunks
    stored = files.save(io.BytesIO(document), context(), "application/pdf")
    raw = backend.read_raw(stored.name)
    assert len(raw) == stored.ciphertext_size
    assert canary not in raw
    assert canary[:16] not in raw
    assert find_on_disk(backend.disk_root, canary) == []
    assert find_on_disk(backend.disk_root, canary[:16]) == []
    # control: the same search does find the canary when it is stored unencrypted
    control = str(uuid.uuid4())
    backend.write_raw(control, random.randbytes(1000) + canary + random.randbytes(1000))
    if backend.kind == "s3":
        assert canary in backend.read_raw(control)
    assert find_on_disk(backend.disk_root, canary) != []


# Tampering -------------------------------------------------------------------------------------

FIVE_CHUNKS = 4 * CHUNK + 1000  # four full chunks and a short final one


def _flip(offset: int) -> Callable[[bytes], bytes]:
    def tamper(raw: bytes) -> bytes:
        return raw[:offset] + bytes([raw[offset] ^ 0x01]) + raw[offset + 1 :]

    return tamper


def _record(index: int) -> slice:
    start = HEADER_BYTES + index * RECORD
    return slice(start, start + RECORD)


def _swap(first: int, second: int) -> Callable[[bytes], bytes]:
    def tamper(raw: bytes) -> bytes:
        records = [raw[_record(i)] for i in range(5)]
        records[first], records[second] = records[second], records[first]
        return raw[:HEADER_BYTES] + b"".join(records)

    return tamper


TAMPERING: dict[str, tuple[Callable[[bytes], bytes], type[DecryptionFailed]]] = {
    "flip a byte in the middle chunk": (_flip(HEADER_BYTES + 2 * RECORD + 500), CiphertextTampered),
    "flip a tag byte of the first chunk": (_flip(HEADER_BYTES + RECORD - 1), CiphertextTampered),
    "flip a byte in the final chunk": (_flip(HEADER_BYTES + 4 * RECORD + 10), StreamTruncated),
    "flip a byte of the salt": (_flip(40), CiphertextTampered),
    "flip a byte of the commitment": (_flip(80), CiphertextTampered),
    "flip the format version": (_flip(3), CiphertextMalformed),
    "truncate at a chunk boundary": (lambda raw: raw[: HEADER_BYTES + 2 * RECORD], StreamTruncated),
    "drop the last chunk": (lambda raw: raw[: HEADER_BYTES + 4 * RECORD], StreamTruncated),
    "truncate inside a chunk": (lambda raw: raw[: HEADER_BYTES + 3 * RECORD + 9], StreamTruncated),
    "truncate inside the header": (lambda raw: raw[:50], CiphertextMalformed),
    "empty object": (lambda raw: b"", CiphertextMalformed),
    "swap two chunks": (_swap(1, 2), CiphertextTampered),
    "swap the last chunk forward": (_swap(2, 4), CiphertextTampered),
    "append garbage": (lambda raw: raw + b"garbage", StreamTruncated),
    "append a copied chunk": (lambda raw: raw + raw[_record(1)], CiphertextTampered),
    "repeat a chunk": (
        lambda raw: raw[: _record(2).stop] + raw[_record(1)] + raw[_record(3).start :],
        CiphertextTampered,
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_detected_and_nothing_is_written(
    files: EncryptedFileStore, backend: Backend, out_dir: Path, case: str
) -> None:
    tamper, error = TAMPERING[case]
    ctx = context()
    data = random.randbytes(FIVE_CHUNKS)
    stored = files.save(io.BytesIO(data), ctx, "application/octet-stream")
    raw = backend.read_raw(stored.name)
    assert len(raw) == HEADER_BYTES + 5 * RECORD - (CHUNK - 1000)
    altered = tamper(raw)
    assert altered != raw
    backend.write_raw(stored.name, altered)

    with pytest.raises(error):
        plaintext_of(files, stored.name, ctx)
    sink = io.BytesIO()
    with pytest.raises(error):
        files.load_to(stored.name, ctx, sink)
    assert sink.getvalue() == b""
    target = out_dir / "result.bin"
    with pytest.raises(error):
        files.load_to_path(stored.name, ctx, target)
    assert list(out_dir.iterdir()) == []  # neither the file nor a temporary remains
    assert list(out_dir.parent.joinpath("spool").iterdir()) == []


def test_a_failed_load_keeps_the_previous_file(
    files: EncryptedFileStore, backend: Backend, out_dir: Path
) -> None:
    ctx = context()
    stored = files.save(io.BytesIO(random.randbytes(FIVE_CHUNKS)), ctx, "application/pdf")
    backend.write_raw(stored.name, backend.read_raw(stored.name)[: HEADER_BYTES + 3 * RECORD])
    target = out_dir / "report.pdf"
    target.write_bytes(b"the copy the clinician already has")
    with pytest.raises(StreamTruncated):
        files.load_to_path(stored.name, ctx, target)
    assert target.read_bytes() == b"the copy the clinician already has"
    assert [p.name for p in out_dir.iterdir()] == ["report.pdf"]


def test_a_replaced_object_is_caught_by_its_checksum(
    files: EncryptedFileStore, backend: Backend, out_dir: Path
) -> None:
    """An older, valid version of the same record's file authenticates; its SHA-256 does not."""
    ctx = context()
    old = files.save(io.BytesIO(b"version 1: no allergy"), ctx, "text/plain")
    new = files.save(io.BytesIO(b"version 2: penicillin allergy"), ctx, "text/plain")
    backend.write_raw(new.name, backend.read_raw(old.name))
    assert plaintext_of(files, new.name, ctx) == b"version 1: no allergy"
    with pytest.raises(CiphertextTampered, match="SHA-256 differs"):
        files.load_to_path(new.name, ctx, out_dir / "note.txt", expected_sha256=new.sha256)
    assert list(out_dir.iterdir()) == []
    with pytest.raises(CiphertextTampered):
        files.load_to(new.name, ctx, io.BytesIO(), expected_sha256=new.sha256)


# Context binding -------------------------------------------------------------------------------


def test_another_patients_context_does_not_open(
    files: EncryptedFileStore, backend: Backend, out_dir: Path
) -> None:
    stored = files.save(io.BytesIO(b"ECG report of patient A"), context(PATIENT_A), "text/plain")
    for wrong in (context(PATIENT_B), context(PATIENT_A, record="report-2")):
        with pytest.raises(WrongContext, match="another record or patient"):
            plaintext_of(files, stored.name, wrong)
    # moved: the raw object copied under a new name, opened as patient B's file
    moved = str(uuid.uuid4())
    backend.write_raw(moved, backend.read_raw(stored.name))
    with pytest.raises(WrongContext):
        files.load_to_path(moved, context(PATIENT_B), out_dir / "moved.txt")
    assert list(out_dir.iterdir()) == []
    assert plaintext_of(files, moved, context(PATIENT_A)) == b"ECG report of patient A"


def test_forging_the_context_fingerprint_does_not_help(
    files: EncryptedFileStore, backend: Backend, keys: DataKeyManager
) -> None:
    stored = files.save(io.BytesIO(b"patient A"), context(PATIENT_A), "text/plain")
    files.save(io.BytesIO(b"patient B"), context(PATIENT_B), "text/plain")  # B has a key too
    raw = backend.read_raw(stored.name)
    forged = raw[:21] + context(PATIENT_B).fingerprint() + raw[29:]
    backend.write_raw(stored.name, forged)
    # with A's key in the cache the owner check is skipped, and the key commitment catches it
    with pytest.raises((WrappedKeyInvalid, CiphertextTampered)):
        plaintext_of(files, stored.name, context(PATIENT_B))
    keys.forget()
    with pytest.raises(WrappedKeyInvalid):
        plaintext_of(files, stored.name, context(PATIENT_B))


def test_crypto_erasure_makes_files_unreadable(
    files: EncryptedFileStore, keys: DataKeyManager
) -> None:
    stored = files.save(io.BytesIO(b"to be erased"), context(), "text/plain")
    keys.destroy_owner_key(context().owner, "patient asked for erasure")
    with pytest.raises(KeyErased):
        plaintext_of(files, stored.name, context())


# Missing objects, names, failing sources -------------------------------------------------------


def test_a_missing_object_is_blob_not_found(files: EncryptedFileStore, out_dir: Path) -> None:
    name = str(uuid.uuid4())
    with pytest.raises(BlobNotFound, match=f"stored file {name} was not found"):
        files.open_plaintext(name, context())  # raised at once, not on first iteration
    with pytest.raises(BlobNotFound):
        files.load_to_path(name, context(), out_dir / "x.pdf")
    with pytest.raises(BlobNotFound):
        files.load_to(name, context(), io.BytesIO())
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/shadow", "ab/../..", ""])
def test_invalid_names_are_refused(files: EncryptedFileStore, out_dir: Path, bad: str) -> None:
    with pytest.raises(InvalidBlobName):
        files.open_plaintext(bad, context())
    with pytest.raises(InvalidBlobName):
        files.load_to_path(bad, context(), out_dir / "x")
    with pytest.raises(InvalidBlobName):
        files.delete(bad)
    assert list(out_dir.iterdir()) == []


class FailingSource(io.RawIOBase):
    """Gives ``good`` bytes, then fails like a dropped upload."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise ConnectionResetError("the upload from the browser was cut")
        n = min(len(buffer), self.left)
        buffer[:n] = random.randbytes(n)
        self.left -= n
        return n


@pytest.mark.parametrize("good", [100, 12 * MiB], ids=["small", "multipart"])
def test_a_failing_source_leaves_nothing(
    files: EncryptedFileStore, backend: Backend, good: int
) -> None:
    with pytest.raises(ConnectionResetError):
        files.save(io.BufferedReader(FailingSource(good)), context(), "application/pdf")
    assert list(backend.blobs.names()) == []
    if backend.kind == "filesystem":
        assert [p for p in backend.disk_root.rglob("*") if p.is_file()] == []


# Constant memory -------------------------------------------------------------------------------


class GeneratedSource(io.RawIOBase):
    """``size`` pseudo-random bytes made on demand (never held whole), hashed as they go."""

    def __init__(self, size: int, seed: int) -> None:
        self.left = size
        self.random = random.Random(seed)
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        block = self.random.randbytes(n)
        buffer[:n] = block
        self.digest.update(block)
        self.left -= n
        return n


class HashingSink(io.RawIOBase):
    """A writable sink that keeps only a hash and a count."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.size += len(data)
        return len(data)


@dataclass
class Measured:
    stored: StoredFile
    source_sha256: str
    save_peak: int
    load_peak: int
    save_seconds: float
    load_seconds: float


def _measure(files: EncryptedFileStore, size: int) -> Measured:
    ctx = context(record=f"stream-{size}")
    source = GeneratedSource(size, seed=size)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        stored = files.save(source, ctx, "application/octet-stream")  # type: ignore[arg-type]
        save_seconds = time.perf_counter() - started
        save_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        sink = HashingSink()
        started = time.perf_counter()
        loaded = files.load_to(stored.name, ctx, sink)  # type: ignore[arg-type]
        load_seconds = time.perf_counter() - started
        load_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert loaded == sink.size == size
    assert sink.digest.hexdigest() == source.digest.hexdigest() == stored.sha256
    return Measured(
        stored, source.digest.hexdigest(), save_peak, load_peak, save_seconds, load_seconds
    )


def test_memory_stays_constant_for_large_files(files: EncryptedFileStore, backend: Backend) -> None:
    small = _measure(files, 10 * MB)
    large = _measure(files, 100 * MB)
    for label, result in (("10 MB", small), ("100 MB", large)):
        size = result.stored.plaintext_size
        print(
            f"\n[{backend.kind} {label}] save {size / MB / result.save_seconds:.0f} MB/s, "
            f"peak {result.save_peak / MiB:.2f} MiB; load {size / MB / result.load_seconds:.0f}"
            f" MB/s, peak {result.load_peak / MiB:.2f} MiB"
        )
    for peak in (large.save_peak, large.load_peak):
        assert peak < 16 * MiB
    assert large.save_peak < small.save_peak + 2 * MiB
    assert large.load_peak < small.load_peak + 2 * MiB
    assert backend.blobs.size(large.stored.name) == large.stored.ciphertext_size
