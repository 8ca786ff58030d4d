"""The passphrase-sealed local keyring file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rekam.crypto import (
    KeyringError,
    KeyringUnavailable,
    LocalKeyring,
    PassphraseError,
    UnknownKeyVersion,
    WrappedKeyInvalid,
)

from .conftest import PASSPHRASE


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keyring.json"


def test_file_is_private_and_holds_no_plain_key(path: Path) -> None:
    keyring = LocalKeyring.create(path, PASSPHRASE)
    assert path.stat().st_mode & 0o077 == 0
    document = json.loads(path.read_text())
    assert document["kdf"]["name"] == "scrypt" and document["kdf"]["n"] >= 2**15
    wrapped = keyring.wrap(1, b"k" * 32, b"ctx")
    # the KEK material is sealed: a wrap made with a guessed all-zero KEK would differ
    assert b"k" * 32 not in wrapped
    assert all(len(e["sealed"]) > 40 for e in document["keks"])


def test_refuses_to_overwrite(path: Path) -> None:
    LocalKeyring.create(path, PASSPHRASE)
    with pytest.raises(KeyringError):
        LocalKeyring.create(path, PASSPHRASE)


def test_wrong_passphrase_and_missing_file(path: Path, tmp_path: Path) -> None:
    LocalKeyring.create(path, PASSPHRASE)
    with pytest.raises(PassphraseError):
        LocalKeyring(path, b"another-passphrase-0123456789")
    with pytest.raises(KeyringUnavailable) as missing:
        LocalKeyring(tmp_path / "absent.json", PASSPHRASE)
    assert "missing" in str(missing.value)


def test_altered_file_is_refused(path: Path) -> None:
    LocalKeyring.create(path, PASSPHRASE)
    document = json.loads(path.read_text())
    document["keks"][0]["version"] = 7  # re-labelling a sealed KEK breaks its binding
    path.write_text(json.dumps(document))
    with pytest.raises(PassphraseError):
        LocalKeyring(path, PASSPHRASE)


def test_wrap_binds_context(path: Path) -> None:
    keyring = LocalKeyring.create(path, PASSPHRASE)
    wrapped = keyring.wrap(1, os.urandom(32), b"owner-a")
    with pytest.raises(WrappedKeyInvalid):
        keyring.unwrap(1, wrapped, b"owner-b")


def test_rotation_retire_and_reload_by_another_process(path: Path) -> None:
    server = LocalKeyring.create(path, PASSPHRASE)
    cli = LocalKeyring(path, PASSPHRASE)
    old = server.wrap(1, b"d" * 32, b"c")
    new_version = cli.rotate()
    assert new_version.version == 2
    # the other instance picks up the new version when asked to use it
    assert server.unwrap(1, old, b"c") == b"d" * 32
    wrapped2 = server.wrap(2, b"e" * 32, b"c")
    assert cli.unwrap(2, wrapped2, b"c") == b"e" * 32
    cli.retire(1)
    server._checked_at = 0  # skip the once-a-second re-check for the test
    assert [v.retired for v in server.versions()] == [True, False]
    with pytest.raises(UnknownKeyVersion):
        server.unwrap(1, old, b"c")
    with pytest.raises(KeyringError):
        cli.retire(2)
    assert server.active_version().version == 2
