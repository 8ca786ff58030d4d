"""The embedded keyring: a JSON file whose keys are sealed under the installation passphrase.

File layout (``rekam-data/keyring.json``, mode 600)::

    {"format": "rekam-keyring", "format_version": 1, "key_id": "<uuid>",
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<base64>"},
     "keks": [{"version": 1, "created_at": "<iso>", "retired": false, "sealed": "<base64>"}],
     "blind_index_key": "<base64>"}

Each sealed value is ``nonce (12) | AES-256-GCM(ciphertext | tag)`` under a key derived from the
passphrase with scrypt, with ``rekam-keyring-v1|<key_id>|<purpose>`` as associated data, so a
sealed KEK cannot be moved to another version or keyring. Wrapped data keys are
``nonce (12) | AES-256-GCM(data key) | tag (16)`` under the KEK, with the caller's context
(data key id and owner) as associated data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from rekam.crypto.errors import (
    KeyringError,
    KeyringUnavailable,
    PassphraseError,
    UnknownKeyVersion,
    WrappedKeyInvalid,
)
from rekam.crypto.keyring import BLIND_INDEX_BYTES, KekVersion, newest_usable
from rekam.crypto.private_files import write_private_file

FORMAT = "rekam-keyring"
FORMAT_VERSION = 1
SCRYPT_N = 2**15
_NONCE = 12
_RELOAD_CHECK_SECONDS = 1.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class LocalKeyring:
    """Key-encryption keys in a passphrase-sealed file; reloads itself when the file changes."""

    def __init__(self, path: Path, passphrase: bytes) -> None:
        self.path = path
        self._passphrase = passphrase
        self._lock = threading.Lock()
        self._sealing_key: AESGCM | None = None
        self._sealing_salt = b""
        self._mtime_ns = -1
        self._checked_at = 0.0
        self._key_id = ""
        self._keks: dict[int, AESGCM] = {}
        self._versions: dict[int, KekVersion] = {}
        self._blind_key = b""
        self._load()

    # Creation ----------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, passphrase: bytes) -> LocalKeyring:
        """Create a new keyring with KEK version 1 and a blind-index key."""
        if path.exists():
            raise KeyringError(f"refusing to overwrite the existing keyring {path}")
        salt = os.urandom(32)
        key_id = str(uuid.uuid4())
        sealing = AESGCM(_derive(passphrase, salt))
        document: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "key_id": key_id,
            "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": 8, "p": 1, "salt": _b64(salt)},
            "keks": [_new_kek_entry(sealing, key_id, 1)],
            "blind_index_key": _b64(_seal(sealing, key_id, "blind-index", os.urandom(32))),
        }
        _write(path, document)
        return cls(path, passphrase)

    # Loading -----------------------------------------------------------------------------------

    def _read_document(self) -> tuple[dict[str, Any], int]:
        try:
            stat = self.path.stat()
            document = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise KeyringUnavailable(
                f"the keyring {self.path} is missing: encrypted data cannot be read without it "
                "(restore it from the key backup, or run 'rekam init' on a new installation)"
            ) from exc
        except (OSError, ValueError) as exc:
            raise KeyringUnavailable(f"the keyring {self.path} cannot be read: {exc}") from exc
        if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
            raise KeyringUnavailable(f"{self.path} is not a Rekam keyring of a supported version")
        return document, stat.st_mtime_ns

    def _load(self) -> None:
        document, mtime = self._read_document()
        kdf = document["kdf"]
        salt = _unb64(kdf["salt"])
        if self._sealing_key is None or salt != self._sealing_salt:
            self._sealing_key = AESGCM(_derive(self._passphrase, salt, int(kdf["n"])))
            self._sealing_salt = salt
        key_id = str(document["key_id"])
        keks: dict[int, AESGCM] = {}
        versions: dict[int, KekVersion] = {}
        for entry in document["keks"]:
            version = int(entry["version"])
            versions[version] = KekVersion(
                key_id=key_id,
                version=version,
                created_at=datetime.fromisoformat(entry["created_at"]),
                retired=bool(entry["retired"]),
            )
            if entry.get("sealed"):
                material = _open(
                    self._sealing_key, key_id, f"kek-v{version}", _unb64(entry["sealed"])
                )
                keks[version] = AESGCM(material)
        blind = _open(self._sealing_key, key_id, "blind-index", _unb64(document["blind_index_key"]))
        self._key_id, self._keks, self._versions, self._blind_key = key_id, keks, versions, blind
        self._mtime_ns = mtime
        self._checked_at = time.monotonic()

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked_at < _RELOAD_CHECK_SECONDS:
            return
        self._checked_at = now
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError as exc:
            raise KeyringUnavailable(f"the keyring {self.path} has disappeared") from exc
        if mtime != self._mtime_ns:
            self._load()

    # Keyring interface -------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        return self._key_id

    def versions(self) -> list[KekVersion]:
        with self._lock:
            self._refresh()
            return [self._versions[v] for v in sorted(self._versions)]

    def active_version(self) -> KekVersion:
        with self._lock:
            self._refresh()
            return newest_usable(self._versions.values())

    def _kek(self, version: int) -> AESGCM:
        kek = self._keks.get(version)
        if kek is None:
            self._refresh(force=True)
            kek = self._keks.get(version)
        if kek is None:
            state = "retired" if version in self._versions else "unknown"
            raise UnknownKeyVersion(f"key-encryption key version {version} is {state}")
        return kek

    def wrap(self, version: int, data_key: bytes, context: bytes) -> bytes:
        with self._lock:
            kek = self._kek(version)
        nonce = os.urandom(_NONCE)
        return nonce + kek.encrypt(nonce, data_key, context)

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        with self._lock:
            kek = self._kek(version)
        try:
            return kek.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except (InvalidTag, ValueError) as exc:
            raise WrappedKeyInvalid(
                "a wrapped data key does not open for its owner (swapped, altered, or wrong KEK)"
            ) from exc

    def rotate(self) -> KekVersion:
        with self._lock:
            document, _ = self._read_document()
            assert self._sealing_key is not None
            newest = max(int(e["version"]) for e in document["keks"])
            document["keks"].append(_new_kek_entry(self._sealing_key, self._key_id, newest + 1))
            _write(self.path, document)
            self._load()
            return self._versions[newest + 1]

    def retire(self, version: int) -> None:
        with self._lock:
            document, _ = self._read_document()
            live = [e for e in document["keks"] if not e["retired"]]
            if len(live) <= 1 and any(int(e["version"]) == version for e in live):
                raise KeyringError("the only usable key-encryption key cannot be retired")
            for entry in document["keks"]:
                if int(entry["version"]) == version:
                    entry["retired"] = True
                    entry["sealed"] = None  # the key material is destroyed
                    break
            else:
                raise UnknownKeyVersion(f"there is no key-encryption key version {version}")
            _write(self.path, document)
            self._load()

    def blind_index(self, domain: str, normalised_value: bytes) -> bytes:
        message = b"rekam-blind-index-v1|" + domain.encode() + b"|" + normalised_value
        return hmac.new(self._blind_key, message, hashlib.sha256).digest()[:BLIND_INDEX_BYTES]


def _derive(passphrase: bytes, salt: bytes, n: int = SCRYPT_N) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(passphrase)


def _seal(sealing: AESGCM, key_id: str, purpose: str, material: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + sealing.encrypt(nonce, material, f"rekam-keyring-v1|{key_id}|{purpose}".encode())


def _open(sealing: AESGCM, key_id: str, purpose: str, sealed: bytes) -> bytes:
    try:
        return sealing.decrypt(
            sealed[:_NONCE], sealed[_NONCE:], f"rekam-keyring-v1|{key_id}|{purpose}".encode()
        )
    except InvalidTag as exc:
        raise PassphraseError(
            "the keyring does not open with this passphrase (or the keyring file was altered)"
        ) from exc


def _new_kek_entry(sealing: AESGCM, key_id: str, version: int) -> dict[str, Any]:
    return {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "retired": False,
        "sealed": _b64(_seal(sealing, key_id, f"kek-v{version}", os.urandom(32))),
    }


def _write(path: Path, document: dict[str, Any]) -> None:
    write_private_file(path, json.dumps(document, indent=2).encode() + b"\n")
