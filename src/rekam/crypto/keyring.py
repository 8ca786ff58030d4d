"""The keyring interface: key-encryption keys (KEKs) that wrap data keys, and the blind-index key.

Providers: a local file sealed under the installation passphrase (embedded default), a PKCS#11
token (KEKs non-extractable, wrapping done inside the token) and a Vault-compatible transit engine.
Callers pass data keys in and get wrapped bytes back; KEK material never leaves the provider.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from rekam.crypto.errors import KeyringError

BLIND_INDEX_BYTES = 16


@dataclass(frozen=True)
class KekVersion:
    """One version of the keyring's key-encryption key."""

    key_id: str
    version: int
    created_at: datetime
    retired: bool = False


@runtime_checkable
class Keyring(Protocol):
    """What every keyring provider offers."""

    @property
    def key_id(self) -> str:
        """Stable identifier of this keyring's KEK (all versions share it)."""
        ...

    def active_version(self) -> KekVersion:
        """The version new wraps use (the newest not retired)."""
        ...

    def versions(self) -> list[KekVersion]: ...

    def wrap(self, version: int, data_key: bytes, context: bytes) -> bytes:
        """Encrypt ``data_key`` under KEK ``version``, binding ``context`` as associated data."""
        ...

    def unwrap(self, version: int, wrapped: bytes, context: bytes) -> bytes:
        """Open a wrapped data key; raises WrappedKeyInvalid if it does not open."""
        ...

    def rotate(self) -> KekVersion:
        """Create a new KEK version that becomes active."""
        ...

    def retire(self, version: int) -> None:
        """Destroy an old KEK version (callers first make sure nothing uses it)."""
        ...

    def blind_index(self, domain: str, normalised_value: bytes) -> bytes:
        """HMAC-SHA256 of ``domain|value`` under the blind-index key, truncated."""
        ...


def newest_usable(versions: Iterable[KekVersion]) -> KekVersion:
    """The active version: the newest one not retired (every provider's rule)."""
    usable = [v for v in versions if not v.retired]
    if not usable:
        raise KeyringError("the keyring has no usable key-encryption key")
    return max(usable, key=lambda v: v.version)
