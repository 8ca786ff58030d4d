"""Chain validation: our verify_chain, cryptography's verifier and openssl must agree."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from rekam.pki import (
    CertificateExpired,
    ChainInvalid,
    Identity,
    KeyAlgorithm,
    create_issuing_ca,
    issue_server_certificate,
    verify_chain,
)

from .conftest import Hierarchy, openssl, write_pem

NOW = datetime.datetime.now(datetime.UTC)


def _openssl_verify(hierarchy: Hierarchy, leaf: Path, *extra: str | Path) -> tuple[bool, str]:
    result = openssl(
        "verify",
        "-x509_strict",
        "-CAfile",
        hierarchy.path("root.pem"),
        "-untrusted",
        hierarchy.path("issuing.pem"),
        *extra,
        leaf,
    )
    return result.returncode == 0 and result.stdout.strip().endswith("OK"), (
        result.stdout + result.stderr
    )


@pytest.mark.interop
@pytest.mark.parametrize(
    ("name", "purpose"),
    [("server", "sslserver"), ("doctor", "smimesign"), ("client", "sslclient")],
)
def test_openssl_accepts_the_chain(hierarchy: Hierarchy, name: str, purpose: str) -> None:
    ok, output = _openssl_verify(hierarchy, hierarchy.path(f"{name}.pem"), "-purpose", purpose)
    assert ok, output


@pytest.mark.interop
def test_openssl_rejects_leaf_for_the_wrong_purpose(hierarchy: Hierarchy) -> None:
    ok, output = _openssl_verify(hierarchy, hierarchy.path("doctor.pem"), "-purpose", "sslserver")
    assert not ok
    assert "unsuitable certificate purpose" in output


@pytest.mark.interop
def test_openssl_checks_the_server_names(hierarchy: Hierarchy) -> None:
    leaf = hierarchy.path("server.pem")
    assert _openssl_verify(hierarchy, leaf, "-verify_hostname", "rekam.clinic.example")[0]
    assert _openssl_verify(hierarchy, leaf, "-verify_ip", "127.0.0.1")[0]
    ok, output = _openssl_verify(hierarchy, leaf, "-verify_hostname", "evil.example")
    assert not ok and "hostname mismatch" in output
    ok, output = _openssl_verify(hierarchy, leaf, "-verify_ip", "10.9.9.9")
    assert not ok and "IP address mismatch" in output


def test_cryptography_server_verifier_accepts_every_host(hierarchy: Hierarchy) -> None:
    builder = verification.PolicyBuilder().store(verification.Store([hierarchy.root.certificate]))
    subjects: list[x509.DNSName | x509.IPAddress] = [
        x509.DNSName("localhost"),
        x509.DNSName("rekam.clinic.example"),
        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
        x509.IPAddress(__import__("ipaddress").ip_address("::1")),
    ]
    for subject in subjects:
        chain = builder.build_server_verifier(subject).verify(
            hierarchy.server.certificate, list(hierarchy.server.chain)
        )
        assert chain[-1] == hierarchy.root.certificate
    with pytest.raises(verification.VerificationError):
        builder.build_server_verifier(x509.DNSName("other.example")).verify(
            hierarchy.server.certificate, list(hierarchy.server.chain)
        )


@pytest.mark.parametrize("host", ["localhost", "rekam.clinic.example", "127.0.0.1", "::1", None])
def test_verify_chain_accepts_server_for_its_hosts(hierarchy: Hierarchy, host: str | None) -> None:
    verify_chain(
        hierarchy.server.certificate,
        hierarchy.server.chain,
        [hierarchy.root.certificate],
        purpose="server",
        host=host,
    )


@pytest.mark.parametrize("host", ["evil.example", "clinic.example", "127.0.0.2", "local"])
def test_server_certificate_is_refused_for_another_host(hierarchy: Hierarchy, host: str) -> None:
    with pytest.raises(ChainInvalid, match="not valid for the host"):
        verify_chain(
            hierarchy.server.certificate,
            hierarchy.server.chain,
            [hierarchy.root.certificate],
            purpose="server",
            host=host,
        )


def test_verify_chain_per_purpose(hierarchy: Hierarchy) -> None:
    roots = [hierarchy.root.certificate]
    verify_chain(hierarchy.doctor.certificate, hierarchy.doctor.chain, roots, purpose="document")
    verify_chain(hierarchy.client.certificate, hierarchy.client.chain, roots, purpose="client")
    for identity in (hierarchy.server, hierarchy.doctor, hierarchy.client):
        verify_chain(identity.certificate, identity.chain, roots)
    mismatches = [
        (hierarchy.doctor, "server"),
        (hierarchy.doctor, "client"),
        (hierarchy.server, "document"),
        (hierarchy.client, "document"),
        (hierarchy.server, "client"),
        (hierarchy.client, "server"),
    ]
    for identity, purpose in mismatches:
        with pytest.raises(ChainInvalid, match="not meant for"):
            verify_chain(identity.certificate, identity.chain, roots, purpose=purpose)  # type: ignore[arg-type]


def test_missing_intermediate_is_explained(hierarchy: Hierarchy) -> None:
    with pytest.raises(ChainInvalid, match="neither a trusted root nor one of the intermediate"):
        verify_chain(hierarchy.server.certificate, [], [hierarchy.root.certificate])


def test_ca_certificate_is_not_an_end_entity(hierarchy: Hierarchy) -> None:
    with pytest.raises(ChainInvalid, match="not an end-entity"):
        verify_chain(hierarchy.issuing.certificate, [], [hierarchy.root.certificate])


def test_foreign_ca_with_the_same_names_is_rejected(
    hierarchy: Hierarchy, foreign_root: Identity, tmp_path: Path
) -> None:
    foreign_issuing = create_issuing_ca(
        foreign_root, "Test Issuing CA", "Test Clinic", KeyAlgorithm.ECDSA_P256
    )
    impostor = issue_server_certificate(foreign_issuing, ["localhost"], KeyAlgorithm.ECDSA_P256)
    # Even handing over the impostor's own intermediate does not help.
    with pytest.raises(ChainInvalid) as raised:
        verify_chain(
            impostor.certificate,
            impostor.chain,
            [hierarchy.root.certificate],
            purpose="server",
            host="localhost",
        )
    assert "different CA that uses the same name" in raised.value.reason
    # Our own chain checked against the foreign root only.
    with pytest.raises(ChainInvalid, match="different CA"):
        verify_chain(
            hierarchy.server.certificate, hierarchy.server.chain, [foreign_root.certificate]
        )
    leaf = write_pem(tmp_path / "impostor.pem", impostor)
    ok, output = _openssl_verify(hierarchy, leaf)
    assert not ok, output


def test_foreign_ca_with_other_names_is_rejected(hierarchy: Hierarchy) -> None:
    from rekam.pki import create_root_ca

    other_root = create_root_ca("Other Root", "Other Hospital", KeyAlgorithm.ECDSA_P256)
    other = issue_server_certificate(other_root, ["localhost"], KeyAlgorithm.ECDSA_P256)
    with pytest.raises(ChainInvalid) as raised:
        verify_chain(other.certificate, other.chain, [hierarchy.root.certificate])
    assert "Other Root" in raised.value.reason
    assert "not" in raised.value.reason and "trusted" in raised.value.reason
    with pytest.raises(ChainInvalid, match="No trusted root"):
        verify_chain(hierarchy.server.certificate, hierarchy.server.chain, [])


def test_expired_certificate_is_rejected_after_expiry(ec_hierarchy: Hierarchy) -> None:
    short = issue_server_certificate(
        ec_hierarchy.issuing, ["short.example"], KeyAlgorithm.ECDSA_P256, valid_days=1
    )
    roots = [ec_hierarchy.root.certificate]
    verify_chain(short.certificate, short.chain, roots, at=NOW + datetime.timedelta(hours=20))
    with pytest.raises(CertificateExpired, match="expired on"):
        verify_chain(short.certificate, short.chain, roots, at=NOW + datetime.timedelta(days=2))
    with pytest.raises(CertificateExpired, match="not valid yet"):
        verify_chain(short.certificate, short.chain, roots, at=NOW - datetime.timedelta(hours=1))
    # Long after the issuing CA itself expired, the long-lived certificates fail as well.
    with pytest.raises(CertificateExpired, match=r"'Dr\. Siti Rahma' expired on"):
        verify_chain(
            ec_hierarchy.doctor.certificate,
            ec_hierarchy.doctor.chain,
            roots,
            at=NOW + datetime.timedelta(days=365 * 11),
        )


def _forge(
    issuer: Identity,
    subject_cn: str,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    """A certificate built without rekam.pki, signed by ``issuer``'s key."""
    key = issuer.private_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(subject_cn)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            False,
        )
    )
    return builder.sign(key, hashes.SHA256())


def test_already_expired_certificate_is_rejected_now(
    ec_hierarchy: Hierarchy, tmp_path: Path
) -> None:
    expired = _forge(
        ec_hierarchy.issuing,
        "old.example",
        not_before=NOW - datetime.timedelta(days=30),
        not_after=NOW - datetime.timedelta(days=1),
    )
    with pytest.raises(CertificateExpired, match=r"'old\.example' expired on"):
        verify_chain(expired, [ec_hierarchy.issuing.certificate], [ec_hierarchy.root.certificate])
    ok, output = _openssl_verify(ec_hierarchy, write_pem(tmp_path / "old.pem", _pem(expired)))
    assert not ok and "certificate has expired" in output


def test_certificate_signed_by_a_non_ca_is_rejected(ec_hierarchy: Hierarchy) -> None:
    child = _forge(
        ec_hierarchy.server,
        "child.example",
        not_before=NOW - datetime.timedelta(minutes=1),
        not_after=NOW + datetime.timedelta(days=1),
    )
    with pytest.raises(ChainInvalid, match="is not a certificate authority"):
        verify_chain(
            child,
            [ec_hierarchy.server.certificate, ec_hierarchy.issuing.certificate],
            [ec_hierarchy.root.certificate],
        )


def _pem(certificate: x509.Certificate) -> bytes:
    from rekam.pki import certificates_to_pem

    return certificates_to_pem([certificate])
