"""The SQL data-key store on SQLite and PostgreSQL: create, rewrap in batches, destroy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from rekam.crypto import DataKeyManager, KeyErased, LocalKeyring
from rekam.store import Database, upgrade_to_latest
from rekam.store.data_key_store import SqlDataKeyStore


@pytest.fixture
def manager(database_url: str, tmp_path: Path) -> DataKeyManager:
    database = Database(database_url)
    upgrade_to_latest(database)
    keyring = LocalKeyring.create(tmp_path / "keyring.json", b"store-test-passphrase-123")
    return DataKeyManager(keyring, SqlDataKeyStore(database), cache_seconds=0)


def test_owner_keys_rewrap_and_destroy(manager: DataKeyManager) -> None:
    owners = [f"patient:{uuid.uuid4()}" for _ in range(25)]
    keys = {owner: manager.key_for_owner(owner) for owner in owners}
    assert manager.key_for_owner(owners[0]) == keys[owners[0]]  # the same key, not a new one
    manager.keyring.rotate()
    assert sum(manager.rewrap_all(batch=10)) == 25
    assert manager.status() == {(manager.keyring.key_id, 2): 25}
    for owner, (key_id, key) in keys.items():
        assert manager.key_by_id(key_id, expected_owner=owner) == key
    manager.destroy_owner_key(owners[0], "test")
    with pytest.raises(KeyErased):
        manager.key_by_id(keys[owners[0]][0])
    assert manager.status() == {(manager.keyring.key_id, 2): 24}


def test_a_rewrap_racing_another_counts_only_its_own(manager: DataKeyManager) -> None:
    for _ in range(5):
        manager.key_for_owner(f"patient:{uuid.uuid4()}")
    manager.keyring.rotate()
    records = manager.store.below_version(manager.keyring.key_id, 2, 100)
    assert manager.rewrap_batch(100) == 5
    # replaying the first rewrap's view (records on v1) changes nothing any more
    from rekam.crypto.data_keys import Rewrapped

    stale = [Rewrapped(r.key_id, 1, 2, b"x" * 60) for r in records]
    assert manager.store.replace_wrappings(stale) == 0
