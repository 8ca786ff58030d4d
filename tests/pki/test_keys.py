"""Private keys only ever leave memory encrypted."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rekam.pki import (
    InvalidKey,
    KeyAlgorithm,
    KeyNotEncrypted,
    PkiError,
    WrongPassphrase,
    encrypt_private_key_pem,
    generate_private_key,
    load_private_key_pem,
)

from .conftest import PASSPHRASE, Hierarchy, openssl, private_pem


def test_generate_defaults_to_rsa_3072() -> None:
    key = generate_private_key()
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072


def test_generate_ecdsa_p256() -> None:
    key = generate_private_key(KeyAlgorithm.ECDSA_P256)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert KeyAlgorithm("ecdsa-p256") is KeyAlgorithm.ECDSA_P256


def test_encrypted_pem_round_trip(hierarchy: Hierarchy) -> None:
    key = hierarchy.server.private_key
    pem = encrypt_private_key_pem(key, PASSPHRASE)
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"BEGIN PRIVATE KEY" not in pem and b"BEGIN RSA PRIVATE KEY" not in pem
    loaded = load_private_key_pem(pem, PASSPHRASE)
    assert loaded.private_numbers() == key.private_numbers()


def test_wrong_passphrase_is_reported(ec_hierarchy: Hierarchy) -> None:
    pem = encrypt_private_key_pem(ec_hierarchy.server.private_key, PASSPHRASE)
    with pytest.raises(WrongPassphrase, match="passphrase does not open"):
        load_private_key_pem(pem, b"not the passphrase")


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_garbage_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(InvalidKey) as raised:
        load_private_key_pem(data, PASSPHRASE)
    assert "key" in str(raised.value)


def test_plaintext_key_is_refused(ec_hierarchy: Hierarchy) -> None:
    with pytest.raises(KeyNotEncrypted):
        load_private_key_pem(private_pem(ec_hierarchy.server), PASSPHRASE)


def test_empty_passphrase_is_refused(ec_hierarchy: Hierarchy) -> None:
    with pytest.raises(PkiError, match="empty"):
        encrypt_private_key_pem(ec_hierarchy.server.private_key, b"")
    with pytest.raises(PkiError, match="empty"):
        load_private_key_pem(b"whatever", b"")


def test_unsupported_key_sizes_are_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = encrypt_private_key_pem(small, PASSPHRASE)
    with pytest.raises(InvalidKey, match="3072"):
        load_private_key_pem(pem, PASSPHRASE)


@pytest.mark.interop
def test_openssl_needs_the_passphrase(hierarchy: Hierarchy, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(encrypt_private_key_pem(hierarchy.server.private_key, PASSPHRASE))
    refused = openssl("pkey", "-in", path, "-passin", "pass:wrong", "-noout")
    assert refused.returncode != 0
    no_passphrase = openssl("pkey", "-in", path, "-passin", "pass:", "-noout")
    assert no_passphrase.returncode != 0
    accepted = openssl("pkey", "-in", path, "-passin", f"pass:{PASSPHRASE.decode()}", "-pubout")
    assert accepted.returncode == 0, accepted.stderr
    assert "BEGIN PUBLIC KEY" in accepted.stdout
    # PKCS#8 with PBES2 (AES-256) as openssl's ASN.1 dump sees it.
    dump = openssl("asn1parse", "-in", path)
    assert "PBES2" in dump.stdout
    assert "aes-256-cbc" in dump.stdout.lower()
