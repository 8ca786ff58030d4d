"""Keyrings and data-key stores for the crypto tests.

``keyring`` is parametrised over every provider that can run here; the envelope, blob and
rotation tests run once per provider (the PKCS#11 and Vault-compatible providers join through
``KEYRING_PROVIDERS``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from rekam.crypto import DataKeyManager, DataKeyRecord, FieldCipher, Keyring, LocalKeyring
from rekam.crypto.data_keys import Rewrapped

from .keyring_providers import register_providers

PASSPHRASE = b"crypto-test-passphrase-0123456789"


class MemoryDataKeyStore:
    """A DataKeyStore in a dict: the crypto library's tests need no database."""

    def __init__(self) -> None:
        self.records: dict[uuid.UUID, DataKeyRecord] = {}
        self.lock = threading.Lock()

    def load(self, key_id: uuid.UUID) -> DataKeyRecord | None:
        return self.records.get(key_id)

    def load_for_owner(self, owner: str) -> DataKeyRecord | None:
        return next((r for r in self.records.values() if r.owner == owner), None)

    def insert(self, record: DataKeyRecord) -> DataKeyRecord:
        with self.lock:
            existing = self.load_for_owner(record.owner)
            if existing is not None:
                return existing
            self.records[record.key_id] = record
            return record

    def replace_wrappings(self, changes: list[Rewrapped]) -> int:
        applied = 0
        with self.lock:
            for change in changes:
                record = self.records[change.key_id]
                if record.kek_version != change.old_version or record.wrapped is None:
                    continue
                self.records[change.key_id] = replace(
                    record, kek_version=change.new_version, wrapped=change.wrapped
                )
                applied += 1
        return applied

    def destroy(self, key_id: uuid.UUID, reason: str, at: datetime) -> None:
        record = self.records[key_id]
        self.records[key_id] = replace(
            record, wrapped=None, destroyed_at=at, destroyed_reason=reason
        )

    def below_version(self, kek_id: str, version: int, limit: int) -> list[DataKeyRecord]:
        rows = [
            r
            for r in self.records.values()
            if r.kek_id == kek_id and r.kek_version < version and r.wrapped is not None
        ]
        return rows[:limit]

    def count_by_version(self) -> dict[tuple[str, int], int]:
        counts: dict[tuple[str, int], int] = {}
        for r in self.records.values():
            if r.wrapped is not None:
                counts[(r.kek_id, r.kek_version)] = counts.get((r.kek_id, r.kek_version), 0) + 1
        return counts


def make_local_keyring(directory: Path) -> Iterator[Keyring]:
    yield LocalKeyring.create(directory / "keyring.json", PASSPHRASE)


#: provider name -> factory(tmp directory) yielding a fresh keyring
KEYRING_PROVIDERS: dict[str, Callable[[Path], Iterator[Keyring]]] = {
    "local": make_local_keyring,
}

# the providers that need a real token (SoftHSM2) or server (OpenBao) register themselves
register_providers(KEYRING_PROVIDERS)


@pytest.fixture(params=sorted(KEYRING_PROVIDERS))
def keyring(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Keyring]:
    yield from KEYRING_PROVIDERS[request.param](tmp_path)


@pytest.fixture
def store() -> MemoryDataKeyStore:
    return MemoryDataKeyStore()


@pytest.fixture
def keys(keyring: Keyring, store: MemoryDataKeyStore) -> DataKeyManager:
    return DataKeyManager(keyring, store)


@pytest.fixture
def fields(keys: DataKeyManager) -> FieldCipher:
    return FieldCipher(keys)
