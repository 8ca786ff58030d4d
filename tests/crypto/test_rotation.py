"""Rotation: new writes use the new KEK; rewrap moves every data key; old versions retire."""

from __future__ import annotations

import threading
import uuid

import pytest

from rekam.crypto import DataKeyManager, FieldCipher, FieldContext, Keyring, UnknownKeyVersion

from .conftest import MemoryDataKeyStore


def _context(patient: str) -> FieldContext:
    return FieldContext("patients", "address", patient, patient)


def test_rotate_then_rewrap_everything(
    keyring: Keyring, store: MemoryDataKeyStore, keys: DataKeyManager, fields: FieldCipher
) -> None:
    patients = [str(uuid.uuid4()) for _ in range(30)]
    texts = {p: fields.encrypt_field(f"Jl. Mawar {i}", _context(p)) for i, p in enumerate(patients)}
    old = keyring.active_version().version
    new = keyring.rotate().version
    assert new == old + 1
    fresh_patient = str(uuid.uuid4())
    fields.encrypt_field("baru", _context(fresh_patient))
    assert store.load_for_owner(f"patient:{fresh_patient}").kek_version == new  # type: ignore[union-attr]
    assert keys.status()[(keyring.key_id, old)] == 30

    progress = list(keys.rewrap_all(batch=7))
    assert sum(progress) == 30 and max(progress) <= 7
    assert set(keys.status()) == {(keyring.key_id, new)}

    keyring.retire(old)
    reader = DataKeyManager(keyring, store)  # a fresh process: nothing cached
    for i, p in enumerate(patients):
        assert FieldCipher(reader).decrypt_text(texts[p], _context(p)) == f"Jl. Mawar {i}"


def test_retired_version_cannot_open_keys_left_behind(
    keyring: Keyring, store: MemoryDataKeyStore, fields: FieldCipher
) -> None:
    patient = str(uuid.uuid4())
    text = fields.encrypt_field("x", _context(patient))
    old = keyring.active_version().version
    keyring.rotate()
    keyring.retire(old)
    with pytest.raises(UnknownKeyVersion):
        FieldCipher(DataKeyManager(keyring, store)).decrypt_field(text, _context(patient))


def test_interrupted_rewrap_resumes(
    keyring: Keyring, store: MemoryDataKeyStore, keys: DataKeyManager, fields: FieldCipher
) -> None:
    for _ in range(20):
        patient = str(uuid.uuid4())
        fields.encrypt_field("y", _context(patient))
    keyring.rotate()
    assert keys.rewrap_batch(limit=8) == 8  # "interrupted" after one batch
    remaining = DataKeyManager(keyring, store).rewrap_batch(limit=100)
    assert remaining == 12
    assert DataKeyManager(keyring, store).rewrap_batch(limit=100) == 0


def test_reads_and_writes_continue_during_rewrap(
    keyring: Keyring, store: MemoryDataKeyStore, keys: DataKeyManager, fields: FieldCipher
) -> None:
    patients = [str(uuid.uuid4()) for _ in range(40)]
    texts = {p: fields.encrypt_field(p, _context(p)) for p in patients}
    keyring.rotate()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        cipher = FieldCipher(DataKeyManager(keyring, store, cache_seconds=0))
        while not stop.is_set():
            for p in patients:
                try:
                    assert cipher.decrypt_text(texts[p], _context(p)) == p
                except BaseException as exc:
                    errors.append(exc)

    def writer() -> None:
        cipher = FieldCipher(DataKeyManager(keyring, store, cache_seconds=0))
        while not stop.is_set():
            p = str(uuid.uuid4())
            try:
                assert cipher.decrypt_text(cipher.encrypt_field(p, _context(p)), _context(p)) == p
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        for _ in DataKeyManager(keyring, store).rewrap_all(batch=5):
            pass
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert set(keys.status()) == {(keyring.key_id, keyring.active_version().version)}
