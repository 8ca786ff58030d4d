"""The PKCS#11 keyring on a real SoftHSM2 token: keys stay on the token, wrapping is done there."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.types import SignMixin, WrapMixin

from rekam.crypto import (
    KeyringError,
    KeyringUnavailable,
    LocalKeyring,
    UnknownKeyVersion,
    WrappedKeyInvalid,
)
from rekam.crypto.pkcs11_keyring import Pkcs11Keyring, open_token_session
from support import softhsm

from .conftest import PASSPHRASE
from .keyring_providers import destroy_pkcs11_objects, fresh_pkcs11_keyring

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def hsm() -> softhsm.SharedSoftHsm:
    reason = softhsm.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    return softhsm.shared_softhsm()


@pytest.fixture
def token(hsm: softhsm.SharedSoftHsm) -> softhsm.SoftHsmToken:
    return hsm.keyring_token


@pytest.fixture
def keyring(hsm: softhsm.SharedSoftHsm) -> Iterator[Pkcs11Keyring]:
    yield from fresh_pkcs11_keyring()


@pytest.fixture
def session(token: softhsm.SoftHsmToken) -> Iterator[pkcs11.Session]:
    """A session of the test's own on the token (sharing the process's login)."""
    with open_token_session(token.module_path, token.label, token.pin) as session:
        yield session


def token_objects(session: pkcs11.Session, label: str) -> list[pkcs11.Object]:
    return list(session.get_objects({Attribute.LABEL: label}))


def pkcs11_tool(token: softhsm.SoftHsmToken, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "pkcs11-tool", "--module", token.module_path, "--token-label", token.label,
            "--login", "--pin", token.pin, *args,
        ],
        env=token.tool_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def listed_object(listing: str, kind: str, label: str) -> str:
    """The block of ``pkcs11-tool -O`` output describing one object."""
    blocks = re.split(r"\n(?=\S)", listing)
    found = [b for b in blocks if b.startswith(kind) and re.search(rf"label:\s+'?{label}'?\n", b)]
    assert len(found) == 1, listing
    return found[0]


# The KEK cannot leave the token --------------------------------------------------------------


def test_kek_and_blind_index_key_cannot_be_read(
    keyring: Pkcs11Keyring, session: pkcs11.Session
) -> None:
    keyring.rotate()
    prefix = keyring.key_label_prefix
    for label in (f"{prefix}-v1", f"{prefix}-v2", f"{prefix}-blind-index"):
        (key,) = token_objects(session, label)
        assert key[Attribute.CLASS] == ObjectClass.SECRET_KEY
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.ALWAYS_SENSITIVE] is True
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        assert key[Attribute.TOKEN] is True and key[Attribute.PRIVATE] is True
    (kek,) = token_objects(session, f"{prefix}-v1")
    assert kek[Attribute.KEY_TYPE] == KeyType.AES and kek[Attribute.VALUE_LEN] == 32
    assert kek[Attribute.ENCRYPT] and kek[Attribute.DECRYPT] and not kek[Attribute.SIGN]
    (blind,) = token_objects(session, f"{prefix}-blind-index")
    assert blind[Attribute.KEY_TYPE] == KeyType.GENERIC_SECRET
    assert blind[Attribute.SIGN] and not blind[Attribute.ENCRYPT] and not blind[Attribute.DECRYPT]


def test_kek_cannot_be_wrapped_out_of_the_token(
    keyring: Pkcs11Keyring, session: pkcs11.Session
) -> None:
    """Even a wrapping key on the same token cannot export the KEK (C_WrapKey refuses)."""
    (kek,) = token_objects(session, f"{keyring.key_label_prefix}-v1")
    wrapper = session.generate_key(
        KeyType.AES, 256, label="test-session-wrapper", store=False,
        capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
    )  # fmt: skip
    assert isinstance(wrapper, WrapMixin)
    with pytest.raises(pkcs11.exceptions.KeyUnextractable):
        wrapper.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP)  # type: ignore[arg-type]


def test_pkcs11_tool_sees_sensitive_never_extractable_keys(
    keyring: Pkcs11Keyring, token: softhsm.SoftHsmToken
) -> None:
    """An independent PKCS#11 client (OpenSC pkcs11-tool) reads the same attributes."""
    prefix = keyring.key_label_prefix
    keyring.rotate()
    keyring.retire(1)
    listing = pkcs11_tool(token, "--list-objects")
    assert listing.returncode == 0, listing.stderr
    kek = listed_object(listing.stdout, "Secret Key Object; AES length 32", f"{prefix}-v2")
    access = re.search(r"Access:\s+(.*)", kek)
    assert access is not None
    flags = {flag.strip() for flag in access.group(1).split(",")}
    assert {"sensitive", "always sensitive", "never extractable"} <= flags
    assert "extractable" not in flags
    assert "encrypt, decrypt, wrap, unwrap" in kek
    blind = listed_object(listing.stdout, "Secret Key Object", f"{prefix}-blind-index")
    assert "never extractable" in blind
    tombstone = listed_object(listing.stdout, "Data object", f"{prefix}-v1")
    assert "rekam-keyring" in tombstone
    assert f"label:      {prefix}-v1\n" not in listing.stdout  # the v1 key itself is gone

    for label in (f"{prefix}-v2", f"{prefix}-blind-index"):
        read = pkcs11_tool(token, "--read-object", "--type", "secrkey", "--label", label)
        assert read.returncode != 0
        assert read.stdout == ""
        assert "CKR_ATTRIBUTE_SENSITIVE" in read.stderr


# Wrapping ------------------------------------------------------------------------------------


def test_wrap_unwrap_round_trip_and_format(keyring: Pkcs11Keyring) -> None:
    data_key = os.urandom(32)
    one = keyring.wrap(1, data_key, b"rekam-data-key-v1|owner-a")
    two = keyring.wrap(1, data_key, b"rekam-data-key-v1|owner-a")
    assert len(one) == 12 + 32 + 16  # nonce | ciphertext | tag
    assert one != two and one[:12] != two[:12]  # fresh IV each time
    assert data_key not in one
    assert keyring.unwrap(1, one, b"rekam-data-key-v1|owner-a") == data_key
    assert keyring.unwrap(1, two, b"rekam-data-key-v1|owner-a") == data_key
    assert keyring.unwrap(1, keyring.wrap(1, b"", b""), b"") == b""


def test_wrong_context_and_damage_fail_with_wrapped_key_invalid(keyring: Pkcs11Keyring) -> None:
    wrapped = keyring.wrap(1, os.urandom(32), b"owner-a")
    with pytest.raises(WrappedKeyInvalid):
        keyring.unwrap(1, wrapped, b"owner-b")
    with pytest.raises(WrappedKeyInvalid):
        keyring.unwrap(1, wrapped, b"")
    for position in (0, 11, 12, len(wrapped) - 1):
        damaged = bytearray(wrapped)
        damaged[position] ^= 0x01
        with pytest.raises(WrappedKeyInvalid):
            keyring.unwrap(1, bytes(damaged), b"owner-a")
    for cut in (0, 12, 27, len(wrapped) - 1):
        with pytest.raises(WrappedKeyInvalid):
            keyring.unwrap(1, wrapped[:cut], b"owner-a")
    keyring.rotate()
    with pytest.raises(WrappedKeyInvalid):  # opened with the wrong KEK version
        keyring.unwrap(2, wrapped, b"owner-a")


def test_concurrent_use_from_threads(keyring: Pkcs11Keyring) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(150):
                key = os.urandom(32)
                context = f"owner-{n}-{i}".encode()
                assert keyring.unwrap(1, keyring.wrap(1, key, context), context) == key
                assert len(keyring.blind_index("nik", context)) == 16
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]


def test_reconnects_when_the_session_is_lost(keyring: Pkcs11Keyring) -> None:
    wrapped = keyring.wrap(1, b"k" * 32, b"ctx")
    lost = keyring._session  # the test reaches in to drop the session behind the keyring's back
    assert lost is not None
    lost.close()
    assert keyring.unwrap(1, wrapped, b"ctx") == b"k" * 32
    assert keyring._session is not lost


# Versions ------------------------------------------------------------------------------------


def test_rotation_and_retirement(
    keyring: Pkcs11Keyring, token: softhsm.SoftHsmToken, session: pkcs11.Session
) -> None:
    prefix = keyring.key_label_prefix
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    assert [v.version for v in keyring.versions()] == [1]
    wrapped_v1 = keyring.wrap(1, b"k" * 32, b"ctx")
    v2 = keyring.rotate()
    assert v2.version == 2 and keyring.active_version() == v2
    assert before <= v2.created_at <= datetime.now(UTC)
    assert v2.key_id == keyring.key_id == f"pkcs11:{token.label}:{prefix}"
    assert keyring.unwrap(1, wrapped_v1, b"ctx") == b"k" * 32  # old versions still open

    other = Pkcs11Keyring(token.module_path, token.label, token.pin, prefix)  # another "process"
    assert [v.version for v in other.versions()] == [1, 2]

    keyring.retire(1)
    assert [(v.version, v.retired) for v in keyring.versions()] == [(1, True), (2, False)]
    left = [o[Attribute.CLASS] for o in token_objects(session, f"{prefix}-v1")]
    assert left == [ObjectClass.DATA]  # the key is destroyed, its tombstone remains
    with pytest.raises(UnknownKeyVersion, match="retired"):
        keyring.unwrap(1, wrapped_v1, b"ctx")
    with pytest.raises(UnknownKeyVersion):
        other.unwrap(1, wrapped_v1, b"ctx")  # the other instance notices the destroyed key
    with pytest.raises(UnknownKeyVersion):
        keyring.wrap(1, b"k" * 32, b"ctx")
    keyring.retire(1)  # retiring again is harmless
    with pytest.raises(KeyringError, match="only usable"):
        keyring.retire(2)
    with pytest.raises(UnknownKeyVersion):
        keyring.retire(9)
    assert keyring.rotate().version == 3  # a retired number is never reused
    assert other.wrap(3, b"x" * 32, b"c")  # unknown to its cache until it looks again
    other.close()

    reopened = Pkcs11Keyring(token.module_path, token.label, token.pin, prefix)
    assert [(v.version, v.retired) for v in reopened.versions()] == [
        (1, True),
        (2, False),
        (3, False),
    ]
    assert reopened.versions()[0].created_at == keyring.versions()[0].created_at
    reopened.close()


# Blind index ---------------------------------------------------------------------------------


def test_blind_index_is_stable_keyed_and_computed_on_the_token(
    keyring: Pkcs11Keyring, token: softhsm.SoftHsmToken, session: pkcs11.Session, tmp_path: Path
) -> None:
    value = keyring.blind_index("nik", b"3171012345678901")
    assert len(value) == 16
    assert value == keyring.blind_index("nik", b"3171012345678901")
    assert value != keyring.blind_index("bpjs", b"3171012345678901")
    assert value != keyring.blind_index("nik", b"3171012345678902")
    again = Pkcs11Keyring(token.module_path, token.label, token.pin, keyring.key_label_prefix)
    assert again.blind_index("nik", b"3171012345678901") == value
    again.close()

    local = LocalKeyring.create(tmp_path / "keyring.json", PASSPHRASE)
    assert local.blind_index("nik", b"3171012345678901") != value
    message = b"rekam-blind-index-v1|nik|3171012345678901"
    local_expected = hmac.new(local._blind_key, message, hashlib.sha256).digest()[:16]
    assert local.blind_index("nik", b"3171012345678901") == local_expected

    # the documented message format, signed directly with the token's HMAC key
    (blind,) = token_objects(session, f"{keyring.key_label_prefix}-blind-index")
    assert isinstance(blind, SignMixin)
    full = blind.sign(message, mechanism=Mechanism.SHA256_HMAC)
    assert isinstance(full, bytes) and len(full) == 32 and full[:16] == value


# Errors --------------------------------------------------------------------------------------


def test_wrong_pin_is_keyring_unavailable(hsm: softhsm.SharedSoftHsm) -> None:
    spare = hsm.spare_token  # nothing in this process logs in to it: the token checks the PIN
    with pytest.raises(KeyringUnavailable, match="refused the PIN"):
        Pkcs11Keyring(spare.module_path, spare.label, spare.pin + "0")
    token = hsm.keyring_token  # logged in already: the PIN is compared with the one that did
    Pkcs11Keyring.initialise(token.module_path, token.label, token.pin, "test-pin-check").close()
    try:
        with pytest.raises(KeyringUnavailable, match="refused the PIN"):
            Pkcs11Keyring(token.module_path, token.label, "000000", "test-pin-check")
    finally:
        destroy_pkcs11_objects(token, "test-pin-check")


def test_missing_module_token_or_keys_are_keyring_unavailable(
    token: softhsm.SoftHsmToken, tmp_path: Path
) -> None:
    with pytest.raises(KeyringUnavailable, match="cannot be loaded"):
        Pkcs11Keyring(tmp_path / "no-such-module.so", token.label, token.pin)
    with pytest.raises(KeyringUnavailable, match="no PKCS#11 token labelled 'no-such-token'"):
        Pkcs11Keyring(token.module_path, "no-such-token", token.pin)
    with pytest.raises(KeyringUnavailable, match="holds no key-encryption key"):
        Pkcs11Keyring(token.module_path, token.label, token.pin, "test-never-initialised")
    with pytest.raises(KeyringError):
        Pkcs11Keyring(token.module_path, token.label, token.pin, "bad prefix/with spaces")


def test_initialise_refuses_an_initialised_prefix(
    keyring: Pkcs11Keyring, token: softhsm.SoftHsmToken
) -> None:
    with pytest.raises(KeyringError, match="refusing to initialise"):
        Pkcs11Keyring.initialise(
            token.module_path, token.label, token.pin, keyring.key_label_prefix
        )
    assert [v.version for v in keyring.versions()] == [1]


def test_wrap_and_unwrap_speed(keyring: Pkcs11Keyring) -> None:
    """A generous bound; prints the measured cost (pytest -s) for the docs."""
    data_key, context, rounds = os.urandom(32), b"rekam-data-key-v1|speed", 500
    start = time.perf_counter()
    wrapped = [keyring.wrap(1, data_key, context) for _ in range(rounds)]
    middle = time.perf_counter()
    for item in wrapped:
        keyring.unwrap(1, item, context)
    end = time.perf_counter()
    wrap_us, unwrap_us = (middle - start) / rounds * 1e6, (end - middle) / rounds * 1e6
    print(f"SoftHSM2: wrap {wrap_us:.0f} us, unwrap {unwrap_us:.0f} us")
    assert wrap_us < 5000 and unwrap_us < 5000
