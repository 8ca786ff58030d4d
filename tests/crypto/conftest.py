"""Keyrings and data-key stores for the crypto tests.

``keyring`` is parametrised over every provider that can run here; the envelope, blob and
rotation tests run once per provider (the PKCS#11 and Vault-compatible providers join through
``KEYRING_PROVIDERS``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rekam.crypto import DataKeyManager, FieldCipher, Keyring, LocalKeyring
from support.memory_keys import MemoryDataKeyStore

from .keyring_providers import register_providers

PASSPHRASE = b"crypto-test-passphrase-0123456789"


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
