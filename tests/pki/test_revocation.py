"""Revocation lists: contents, signatures, and openssl's -crl_check."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509

from rekam.pki import (
    CertificateRevocationList,
    CertificateRevoked,
    ChainInvalid,
    KeyAlgorithm,
    NotIssuedByAuthority,
    RevocationReason,
    issue_doctor_certificate,
    issue_server_certificate,
    load_crl_pem,
    verify_chain,
)

from .conftest import Hierarchy, openssl, write_pem


def test_new_crl_is_empty_signed_and_current(hierarchy: Hierarchy) -> None:
    crl = CertificateRevocationList.create(hierarchy.issuing)
    parsed = load_crl_pem(crl.to_pem())
    assert len(parsed) == 0
    assert parsed.issuer == hierarchy.issuing.certificate.subject
    assert parsed.is_signature_valid(hierarchy.issuing.certificate.public_key())  # type: ignore[arg-type]
    assert not parsed.is_signature_valid(hierarchy.root.certificate.public_key())  # type: ignore[arg-type]
    assert parsed.next_update_utc is not None
    assert parsed.next_update_utc > datetime.datetime.now(datetime.UTC)
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1


def test_revocation_shows_in_the_crl(hierarchy: Hierarchy) -> None:
    victim = issue_doctor_certificate(
        hierarchy.issuing, "Dr. Lost Token", "STR-9", None, KeyAlgorithm.ECDSA_P256
    )
    crl = CertificateRevocationList.create(hierarchy.issuing)
    assert not crl.is_revoked(victim.certificate)
    crl.revoke(victim.certificate, RevocationReason.key_compromise)
    crl.revoke(victim.certificate, RevocationReason.key_compromise)  # idempotent
    crl.revoke(12345)
    parsed = load_crl_pem(crl.to_pem())
    assert {entry.serial_number for entry in parsed} == {victim.certificate.serial_number, 12345}
    entry = parsed.get_revoked_certificate_by_serial_number(victim.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.number == 3
    assert crl.is_revoked(victim.certificate)
    assert not crl.is_revoked(hierarchy.server.certificate)
    assert crl.reason_for(victim.certificate) is RevocationReason.key_compromise
    reread = CertificateRevocationList.from_pem(hierarchy.issuing, crl.to_pem())
    assert reread.is_revoked(victim.certificate)


def test_crl_refuses_foreign_certificates_and_signatures(
    hierarchy: Hierarchy, ec_hierarchy: Hierarchy
) -> None:
    crl = CertificateRevocationList.create(hierarchy.issuing)
    with pytest.raises(NotIssuedByAuthority):
        crl.revoke(ec_hierarchy.server.certificate)  # same issuer name, different CA key
    with pytest.raises(NotIssuedByAuthority):
        crl.revoke(hierarchy.issuing.certificate)  # issued by the root, not by itself
    foreign = CertificateRevocationList.create(ec_hierarchy.root)
    with pytest.raises(NotIssuedByAuthority):
        CertificateRevocationList.from_pem(hierarchy.issuing, foreign.to_pem())


@pytest.mark.interop
def test_openssl_crl_check_rejects_the_revoked_certificate(
    hierarchy: Hierarchy, tmp_path: Path
) -> None:
    revoked = issue_server_certificate(
        hierarchy.issuing, ["revoked.example"], KeyAlgorithm.ECDSA_P256
    )
    kept = issue_server_certificate(hierarchy.issuing, ["kept.example"], KeyAlgorithm.ECDSA_P256)
    crl = CertificateRevocationList.create(hierarchy.issuing)
    crl.revoke(revoked.certificate, RevocationReason.superseded)
    crl_path = tmp_path / "crl.pem"
    crl_path.write_bytes(crl.to_pem())

    def verify(leaf: Path) -> str:
        result = openssl(
            "verify",
            "-crl_check",
            "-CRLfile",
            crl_path,
            "-CAfile",
            hierarchy.path("root.pem"),
            "-untrusted",
            hierarchy.path("issuing.pem"),
            leaf,
        )
        return f"rc={result.returncode}\n{result.stdout}{result.stderr}"

    output = verify(write_pem(tmp_path / "revoked.pem", revoked))
    assert "rc=2" in output and "certificate revoked" in output, output
    output = verify(write_pem(tmp_path / "kept.pem", kept))
    assert "rc=0" in output and ": OK" in output, output
    listing = openssl("crl", "-in", crl_path, "-noout", "-text").stdout
    assert f"{revoked.certificate.serial_number:X}" in listing.replace(":", "").upper()
    assert "Superseded" in listing

    with pytest.raises(CertificateRevoked, match=r"revoked .* superseded"):
        verify_chain(
            revoked.certificate,
            revoked.chain,
            [hierarchy.root.certificate],
            crls=[crl.crl],
        )
    verify_chain(kept.certificate, kept.chain, [hierarchy.root.certificate], crls=[crl.crl])


def test_stale_crl_cannot_vouch(ec_hierarchy: Hierarchy) -> None:
    crl = CertificateRevocationList.create(ec_hierarchy.issuing, valid_days=1)
    with pytest.raises(ChainInvalid, match="out of date"):
        verify_chain(
            ec_hierarchy.server.certificate,
            ec_hierarchy.server.chain,
            [ec_hierarchy.root.certificate],
            at=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3),
            crls=[crl.crl],
        )


def test_crl_from_another_ca_is_ignored(ec_hierarchy: Hierarchy, hierarchy: Hierarchy) -> None:
    # Both hierarchies name their issuing CA "Test Issuing CA", so only the signature check
    # keeps a CRL signed by the other CA from revoking our certificates.
    other = CertificateRevocationList.create(hierarchy.issuing)
    other.revoke(ec_hierarchy.server.certificate.serial_number)
    verify_chain(
        ec_hierarchy.server.certificate,
        ec_hierarchy.server.chain,
        [ec_hierarchy.root.certificate],
        crls=[other.crl],
    )
