"""Blind indexes of NIK and BPJS numbers."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from rekam.crypto import BlindIndexer, Keyring, LocalKeyring, normalise_identifier

from .conftest import PASSPHRASE

NIK = "3171 0123 4567 8901"


def test_normalisation() -> None:
    assert normalise_identifier(" 3171-0123.4567/8901 ") == "3171012345678901"
    assert normalise_identifier("abc") == "ABC"


def test_index_is_stable_truncated_and_not_the_value(keyring: Keyring) -> None:
    indexer = BlindIndexer(keyring)
    value = indexer.index("nik", NIK)
    assert value == indexer.index("nik", "3171012345678901")
    assert len(value) == 16
    assert b"3171012345678901" not in value
    assert value != hashlib.sha256(b"3171012345678901").digest()[:16]  # keyed, not a plain hash
    assert value != indexer.index("bpjs", NIK)  # domain separation
    assert value != indexer.index("nik", "3171012345678902")


def test_clinics_with_different_keys_differ(tmp_path: Path) -> None:
    a = LocalKeyring.create(tmp_path / "a.json", PASSPHRASE)
    b = LocalKeyring.create(tmp_path / "b.json", PASSPHRASE)
    assert BlindIndexer(a).index("nik", NIK) != BlindIndexer(b).index("nik", NIK)


def test_local_keyring_uses_the_documented_hmac(tmp_path: Path) -> None:
    keyring = LocalKeyring.create(tmp_path / "k.json", PASSPHRASE)
    key = keyring._blind_key  # the test peeks at the unsealed key to recompute independently
    expected = hmac.new(key, b"rekam-blind-index-v1|nik|3171012345678901", hashlib.sha256).digest()
    assert BlindIndexer(keyring).index("nik", NIK) == expected[:16]
