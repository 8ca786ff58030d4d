"""The on-disk CA: layout, permissions, encryption, refusal to overwrite, reissue, revoke."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from rekam.pki import (
    CaAlreadyExists,
    CertificateNotFound,
    InvalidHostName,
    KeyAlgorithm,
    PkiError,
    PkiStore,
    RevocationReason,
    WrongPassphrase,
    certificates_to_pem,
    load_certificates_pem,
    verify_chain,
)

from .conftest import PASSPHRASE, openssl

KEY_FILES = ("root-key.pem", "issuing-key.pem", "server-key.pem")
PUBLIC_FILES = ("root.pem", "issuing.pem", "server.pem", "crl.pem")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ec_store(tmp_path: Path) -> PkiStore:
    store = PkiStore(tmp_path / "data" / "pki", PASSPHRASE)
    store.initialise("Klinik Sehat", ["localhost", "127.0.0.1"], KeyAlgorithm.ECDSA_P256)
    return store


def test_layout_and_permissions(initialised_store: PkiStore) -> None:
    directory = initialised_store.directory
    assert initialised_store.exists()
    assert initialised_store.root_certificate_path == directory / "root.pem"
    assert initialised_store.server_certificate_chain_path == directory / "server.pem"
    assert initialised_store.server_key_path == directory / "server-key.pem"
    assert initialised_store.crl_path == directory / "crl.pem"
    assert _mode(directory) == 0o700
    for name in KEY_FILES:
        path = directory / name
        assert _mode(path) == 0o600, name
        data = path.read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"), name
        assert b"-----BEGIN PRIVATE KEY-----" not in data
    for name in PUBLIC_FILES:
        assert (directory / name).is_file(), name
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.interop
def test_openssl_cannot_read_store_keys_without_the_passphrase(
    initialised_store: PkiStore,
) -> None:
    for name in KEY_FILES:
        path = initialised_store.directory / name
        assert openssl("pkey", "-in", path, "-passin", "pass:", "-noout").returncode != 0
        assert openssl("pkey", "-in", path, "-passin", "pass:nope", "-noout").returncode != 0
        opened = openssl("pkey", "-in", path, "-passin", f"pass:{PASSPHRASE.decode()}", "-noout")
        assert opened.returncode == 0, opened.stderr


@pytest.mark.interop
def test_server_chain_file_validates_with_openssl(initialised_store: PkiStore) -> None:
    chain = load_certificates_pem(initialised_store.server_certificate_chain_path.read_bytes())
    assert len(chain) == 2
    issuing = initialised_store.issuing_certificate_path.read_bytes()
    assert certificates_to_pem([chain[1]]) == issuing
    result = openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_ip",
        "127.0.0.1",
        "-CAfile",
        initialised_store.root_certificate_path,
        "-untrusted",
        initialised_store.server_certificate_chain_path,
        initialised_store.server_certificate_chain_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_loaded_identities_are_consistent(initialised_store: PkiStore) -> None:
    root = initialised_store.load_root()
    issuing = initialised_store.load_issuing_ca()
    server = initialised_store.load_server()
    assert root.is_root and root.chain == ()
    assert issuing.certificate.issuer == root.certificate.subject
    assert server.chain == (issuing.certificate,)
    assert server.certificate.public_key() == server.private_key.public_key()
    verify_chain(
        server.certificate,
        server.chain,
        [root.certificate],
        purpose="server",
        host="localhost",
    )
    organization = root.certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert organization[0].value == "Klinik Sehat"


def test_wrong_passphrase_cannot_load_keys(initialised_store: PkiStore) -> None:
    wrong = PkiStore(initialised_store.directory, b"wrong passphrase")
    for load in (wrong.load_root, wrong.load_issuing_ca, wrong.load_server):
        with pytest.raises(WrongPassphrase):
            load()


def test_refuses_to_overwrite_an_existing_ca(ec_store: PkiStore) -> None:
    before = {p.name: p.read_bytes() for p in ec_store.directory.iterdir() if p.is_file()}
    with pytest.raises(CaAlreadyExists, match="will not be overwritten"):
        ec_store.initialise("Another Clinic", ["localhost"], KeyAlgorithm.ECDSA_P256)
    after = {p.name: p.read_bytes() for p in ec_store.directory.iterdir() if p.is_file()}
    assert before == after


def test_refuses_when_any_ca_file_is_present(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    directory.mkdir()
    (directory / "issuing-key.pem").write_bytes(b"left over")
    store = PkiStore(directory, PASSPHRASE)
    assert not store.exists()
    with pytest.raises(CaAlreadyExists, match=r"issuing-key\.pem"):
        store.initialise("Klinik", ["localhost"], KeyAlgorithm.ECDSA_P256)


def test_bad_hosts_fail_before_anything_is_written(tmp_path: Path) -> None:
    store = PkiStore(tmp_path / "pki", PASSPHRASE)
    with pytest.raises(InvalidHostName):
        store.initialise("Klinik", ["not a host"], KeyAlgorithm.ECDSA_P256)
    assert not (tmp_path / "pki").exists()


def test_missing_store_is_reported(tmp_path: Path) -> None:
    store = PkiStore(tmp_path / "nothing", PASSPHRASE)
    assert not store.exists()
    with pytest.raises(CertificateNotFound, match="root CA"):
        store.load_root()
    with pytest.raises(CertificateNotFound):
        store.load_server()


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PkiError):
        PkiStore(tmp_path, b"")


def test_files_get_their_mode_at_creation_not_by_chmod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("permissions must be set when the file is created")

    monkeypatch.setattr(os, "chmod", forbidden)
    monkeypatch.setattr(os, "fchmod", forbidden)
    monkeypatch.setattr(Path, "chmod", forbidden)
    previous = os.umask(0)
    try:
        store = PkiStore(tmp_path / "pki", PASSPHRASE)
        store.initialise("Klinik", ["localhost"], KeyAlgorithm.ECDSA_P256)
        store.reissue_server_certificate(["localhost", "10.0.0.2"])
    finally:
        os.umask(previous)
    for name in KEY_FILES:
        assert _mode(store.directory / name) == 0o600, name
    for name in PUBLIC_FILES:
        assert _mode(store.directory / name) == 0o644, name


def test_reissue_replaces_server_pair_and_keeps_the_ca(ec_store: PkiStore) -> None:
    root_before = ec_store.root_certificate_path.read_bytes()
    issuing_before = ec_store.issuing_certificate_path.read_bytes()
    old = ec_store.load_server()
    new = ec_store.reissue_server_certificate(["ward.clinic.example", "192.168.10.4"])
    assert ec_store.root_certificate_path.read_bytes() == root_before
    assert ec_store.issuing_certificate_path.read_bytes() == issuing_before
    loaded = ec_store.load_server()
    assert loaded.certificate == new.certificate
    assert loaded.certificate.serial_number != old.certificate.serial_number
    assert loaded.private_key.public_key() != old.private_key.public_key()
    assert loaded.certificate.public_key() == loaded.private_key.public_key()
    assert new.certificate.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert _mode(ec_store.server_key_path) == 0o600
    root = ec_store.load_root().certificate
    verify_chain(loaded.certificate, loaded.chain, [root], purpose="server", host="192.168.10.4")
    with pytest.raises(PkiError, match="not valid for the host"):
        verify_chain(loaded.certificate, loaded.chain, [root], purpose="server", host="localhost")
    assert not [p for p in ec_store.directory.iterdir() if p.name.endswith(".tmp")]


def test_mismatched_server_pair_is_detected(ec_store: PkiStore, tmp_path: Path) -> None:
    ec_store.server_key_path.write_bytes(ec_store.issuing_key_path.read_bytes())
    with pytest.raises(PkiError, match="does not belong"):
        ec_store.load_server()


def test_doctor_issue_and_revoke(ec_store: PkiStore, tmp_path: Path) -> None:
    doctor = ec_store.issue_doctor(
        "Dr. Ayu Lestari", "STR-777", "ayu@klinik.example", KeyAlgorithm.ECDSA_P256
    )
    root = ec_store.load_root().certificate
    verify_chain(doctor.certificate, doctor.chain, [root], purpose="document")
    assert doctor.certificate in ec_store.issued_certificates()
    assert not ec_store.load_crl().is_revoked(doctor.certificate)

    ec_store.revoke(doctor.certificate, RevocationReason.affiliation_changed)
    crl = ec_store.load_crl()
    assert crl.is_revoked(doctor.certificate)
    assert crl.reason_for(doctor.certificate) is RevocationReason.affiliation_changed
    with pytest.raises(PkiError, match="revoked"):
        verify_chain(doctor.certificate, doctor.chain, [root], purpose="document", crls=[crl.crl])
    leaf = tmp_path / "doctor.pem"
    leaf.write_bytes(certificates_to_pem([doctor.certificate]))
    result = openssl(
        "verify",
        "-crl_check",
        "-CRLfile",
        ec_store.crl_path,
        "-CAfile",
        ec_store.root_certificate_path,
        "-untrusted",
        ec_store.issuing_certificate_path,
        leaf,
    )
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr

    renewed = ec_store.renew_crl()
    assert renewed.is_revoked(doctor.certificate)
    assert renewed.number == crl.number + 1


def test_store_refuses_to_revoke_a_foreign_certificate(
    ec_store: PkiStore, initialised_store: PkiStore
) -> None:
    foreign = initialised_store.load_server().certificate
    with pytest.raises(PkiError, match="not issued by"):
        ec_store.revoke(foreign)
