"""Data keys: one AES-256 key per owner (a patient, or the clinic for shared files), stored
wrapped by the keyring's KEK, unwrapped on demand into a bounded, short-lived memory cache.

Destroying an owner's data key (crypto-erasure) makes everything encrypted under it unreadable.
The wrapping binds the key's id and owner as associated data, so a wrapped key copied to another
owner does not open.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from rekam.crypto.errors import KeyErased, KeyringError, WrappedKeyInvalid
from rekam.crypto.keyring import Keyring

DATA_KEY_BYTES = 32


@dataclass(frozen=True)
class DataKeyRecord:
    """A data key as stored: wrapped, never in the clear."""

    key_id: uuid.UUID
    owner: str
    kek_id: str
    kek_version: int
    wrapped: bytes | None
    created_at: datetime
    destroyed_at: datetime | None = None
    destroyed_reason: str | None = None


class DataKeyStore(Protocol):
    """Where wrapped data keys are kept (the database, in Rekam)."""

    def load(self, key_id: uuid.UUID) -> DataKeyRecord | None: ...

    def load_for_owner(self, owner: str) -> DataKeyRecord | None: ...

    def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        """Store a new record; if the owner already has one, return that one instead."""
        ...

    def replace_wrappings(self, changes: list[Rewrapped]) -> int:
        """Apply several re-wrappings in one transaction; each only if its record is still on
        its old version (a concurrent rewrap may have moved it). Returns how many applied."""
        ...

    def destroy(self, key_id: uuid.UUID, reason: str, at: datetime) -> None: ...

    def below_version(self, kek_id: str, version: int, limit: int) -> list[DataKeyRecord]: ...

    def count_by_version(self) -> dict[tuple[str, int], int]: ...


@dataclass(frozen=True)
class Rewrapped:
    key_id: uuid.UUID
    old_version: int
    new_version: int
    wrapped: bytes


def wrapping_context(key_id: uuid.UUID, owner: str) -> bytes:
    return b"rekam-data-key-v1|" + key_id.bytes + b"|" + owner.encode()


class DataKeyManager:
    """Creates, unwraps, caches, rewraps and destroys data keys."""

    def __init__(
        self,
        keyring: Keyring,
        store: DataKeyStore,
        cache_size: int = 10_000,
        cache_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.keyring = keyring
        self.store = store
        self.cache_size = cache_size
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._by_id: OrderedDict[uuid.UUID, tuple[bytes, float, str]] = OrderedDict()
        self._id_by_owner: dict[str, uuid.UUID] = {}

    # Cache -------------------------------------------------------------------------------------

    def _cached(self, key_id: uuid.UUID, expected_owner: str | None = None) -> bytes | None:
        with self._lock:
            entry = self._by_id.get(key_id)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._by_id[key_id]
                return None
            if expected_owner is not None and entry[2] != expected_owner:
                raise WrappedKeyInvalid("the data key of this value belongs to another owner")
            self._by_id.move_to_end(key_id)
            return entry[0]

    def _remember(self, record: DataKeyRecord, key: bytes) -> None:
        with self._lock:
            self._by_id[record.key_id] = (key, time.monotonic() + self.cache_seconds, record.owner)
            self._by_id.move_to_end(record.key_id)
            self._id_by_owner[record.owner] = record.key_id
            while len(self._by_id) > self.cache_size:
                self._by_id.popitem(last=False)
            if len(self._id_by_owner) > 4 * self.cache_size:
                self._id_by_owner.clear()

    def forget(self, key_id: uuid.UUID | None = None) -> None:
        """Drop cached plaintext keys (one, or all)."""
        with self._lock:
            if key_id is None:
                self._by_id.clear()
                self._id_by_owner.clear()
            else:
                self._by_id.pop(key_id, None)

    # Use ---------------------------------------------------------------------------------------

    def key_for_owner(self, owner: str) -> tuple[uuid.UUID, bytes]:
        """The owner's data key, created on first use."""
        known = self._id_by_owner.get(owner)
        if known is not None:
            cached = self._cached(known)
            if cached is not None:
                return known, cached
        record = self.store.load_for_owner(owner)
        if record is None:
            record = self._create(owner)
        return record.key_id, self._unwrap(record)

    def key_by_id(self, key_id: uuid.UUID, expected_owner: str | None = None) -> bytes:
        cached = self._cached(key_id, expected_owner)
        if cached is not None:
            return cached
        record = self.store.load(key_id)
        if record is None:
            raise KeyErased("the data key of this value no longer exists (it was erased)")
        if expected_owner is not None and record.owner != expected_owner:
            raise WrappedKeyInvalid("the data key of this value belongs to another owner")
        return self._unwrap(record)

    def _create(self, owner: str) -> DataKeyRecord:
        key = os.urandom(DATA_KEY_BYTES)
        active = self.keyring.active_version()
        key_id = uuid.uuid4()
        record = DataKeyRecord(
            key_id=key_id,
            owner=owner,
            kek_id=active.key_id,
            kek_version=active.version,
            wrapped=self.keyring.wrap(active.version, key, wrapping_context(key_id, owner)),
            created_at=self.clock(),
        )
        stored = self.store.insert(record)
        if stored.key_id != key_id:  # another writer created the owner's key first
            return stored
        self._remember(stored, key)
        return stored

    def _unwrap(self, record: DataKeyRecord) -> bytes:
        if record.destroyed_at is not None or record.wrapped is None:
            when = f" on {record.destroyed_at:%Y-%m-%d}" if record.destroyed_at else ""
            raise KeyErased(f"this data was crypto-erased{when} and can no longer be read")
        if record.kek_id != self.keyring.key_id:
            raise KeyringError(
                f"this data key was wrapped by keyring {record.kek_id}, not the configured "
                f"keyring {self.keyring.key_id}"
            )
        cached = self._cached(record.key_id)
        if cached is not None:
            return cached
        key = self.keyring.unwrap(
            record.kek_version, record.wrapped, wrapping_context(record.key_id, record.owner)
        )
        self._remember(record, key)
        return key

    # Rotation and erasure ----------------------------------------------------------------------

    def rewrap_batch(self, limit: int = 500) -> int:
        """Re-wrap up to ``limit`` data keys still on older KEK versions; returns how many."""
        active = self.keyring.active_version()
        records = self.store.below_version(active.key_id, active.version, limit)
        changes = []
        for record in records:
            if record.wrapped is None:
                continue
            context = wrapping_context(record.key_id, record.owner)
            key = self.keyring.unwrap(record.kek_version, record.wrapped, context)
            wrapped = self.keyring.wrap(active.version, key, context)
            changes.append(Rewrapped(record.key_id, record.kek_version, active.version, wrapped))
        return self.store.replace_wrappings(changes) if changes else 0

    def rewrap_all(self, batch: int = 500) -> Iterator[int]:
        """Re-wrap everything below the active version, yielding progress after each batch."""
        while True:
            done = self.rewrap_batch(batch)
            if done == 0:
                return
            yield done

    def destroy_owner_key(self, owner: str, reason: str) -> DataKeyRecord | None:
        """Crypto-erase: destroy the owner's data key. Returns the destroyed record (or None)."""
        record = self.store.load_for_owner(owner)
        if record is None or record.destroyed_at is not None:
            return record
        now = self.clock()
        self.store.destroy(record.key_id, reason, now)
        self.forget(record.key_id)
        with self._lock:
            self._id_by_owner.pop(owner, None)
        return replace(record, wrapped=None, destroyed_at=now, destroyed_reason=reason)

    def status(self) -> dict[tuple[str, int], int]:
        return self.store.count_by_version()
