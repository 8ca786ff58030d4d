"""What the issued certificates contain, read back by parsing (cryptography and openssl)."""

from __future__ import annotations

import datetime
import ipaddress
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from rekam.pki import (
    DOCUMENT_SIGNING_OID,
    Identity,
    InvalidHostName,
    InvalidSubject,
    KeyAlgorithm,
    PkiError,
    create_issuing_ca,
    issue_server_certificate,
)

from .conftest import SERVER_HOSTS, Hierarchy, openssl

E = TypeVar("E", bound=x509.ExtensionType)


def _ext(certificate: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return certificate.extensions.get_extension_for_class(kind)


def _all(hierarchy: Hierarchy) -> list[Identity]:
    return [
        hierarchy.root,
        hierarchy.issuing,
        hierarchy.server,
        hierarchy.doctor,
        hierarchy.client,
    ]


def test_keys_match_the_algorithm(hierarchy: Hierarchy) -> None:
    for identity in _all(hierarchy):
        key = identity.certificate.public_key()
        if hierarchy.algorithm is KeyAlgorithm.RSA3072:
            assert isinstance(key, rsa.RSAPublicKey)
            assert key.key_size == 3072
            assert key.public_numbers().e == 65537
            assert identity.certificate.signature_algorithm_oid == (
                SignatureAlgorithmOID.RSA_WITH_SHA256
            )
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert isinstance(key.curve, ec.SECP256R1)
            assert identity.certificate.signature_algorithm_oid == (
                SignatureAlgorithmOID.ECDSA_WITH_SHA256
            )
        assert isinstance(identity.certificate.signature_hash_algorithm, hashes.SHA256)
        assert identity.certificate.public_key() == identity.private_key.public_key()


def test_serials_are_random_159_bit(hierarchy: Hierarchy) -> None:
    serials = [identity.certificate.serial_number for identity in _all(hierarchy)]
    assert len(set(serials)) == len(serials)
    assert all(0 < serial < 2**159 for serial in serials)
    # Five random 159-bit numbers all below 2**120 would be a one-in-2**195 event.
    assert max(serials).bit_length() > 120


def test_key_identifiers_link_each_certificate_to_its_issuer(hierarchy: Hierarchy) -> None:
    root, issuing = hierarchy.root.certificate, hierarchy.issuing.certificate
    root_ski = _ext(root, x509.SubjectKeyIdentifier).value.digest
    issuing_ski = _ext(issuing, x509.SubjectKeyIdentifier).value.digest
    assert root_ski == x509.SubjectKeyIdentifier.from_public_key(root.public_key()).digest
    assert _ext(issuing, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    for leaf in (hierarchy.server, hierarchy.doctor, hierarchy.client):
        assert _ext(leaf.certificate, x509.AuthorityKeyIdentifier).value.key_identifier == (
            issuing_ski
        )
        assert leaf.chain == (issuing,)
    assert hierarchy.issuing.chain == ()
    assert hierarchy.root.chain == ()


def test_validity_is_utc_backdated_and_as_requested(hierarchy: Hierarchy) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expected_days = {
        "root": 7300,
        "issuing": 3650,
        "server": 397,
        "doctor": 730,
        "client": 730,
    }
    for name, days in expected_days.items():
        certificate = getattr(hierarchy, name).certificate
        backdate = now - certificate.not_valid_before_utc
        assert datetime.timedelta(minutes=4) < backdate < datetime.timedelta(minutes=30), name
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert abs(lifetime - datetime.timedelta(days=days, minutes=5)) < datetime.timedelta(
            minutes=30
        ), name
    text = openssl("x509", "-in", hierarchy.path("server.pem"), "-noout", "-dates").stdout
    assert text.count("GMT") == 2


def test_root_and_issuing_ca_constraints(hierarchy: Hierarchy) -> None:
    root, issuing = hierarchy.root.certificate, hierarchy.issuing.certificate
    assert root.subject == root.issuer
    root_bc = _ext(root, x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length is None
    issuing_bc = _ext(issuing, x509.BasicConstraints)
    assert issuing_bc.critical and issuing_bc.value.ca and issuing_bc.value.path_length == 0
    for certificate in (root, issuing):
        usage = _ext(certificate, x509.KeyUsage)
        assert usage.critical
        assert usage.value.key_cert_sign and usage.value.crl_sign
        assert not usage.value.digital_signature
    assert issuing.issuer == root.subject
    assert issuing.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Test Clinic"
    )
    text = openssl("x509", "-in", hierarchy.path("issuing.pem"), "-noout", "-text").stdout
    assert "CA:TRUE, pathlen:0" in text
    assert "Certificate Sign, CRL Sign" in text


def test_issuing_ca_with_pathlen_zero_cannot_create_another_ca(hierarchy: Hierarchy) -> None:
    with pytest.raises(PkiError, match="may not certify"):
        create_issuing_ca(hierarchy.issuing, "Sub CA", "Test Clinic", KeyAlgorithm.ECDSA_P256)


def test_leaf_cannot_issue(hierarchy: Hierarchy) -> None:
    with pytest.raises(PkiError, match="not a certificate authority"):
        issue_server_certificate(hierarchy.server, ["x.example"], KeyAlgorithm.ECDSA_P256)


def test_server_sans_hold_dns_names_and_ip_addresses(hierarchy: Hierarchy) -> None:
    certificate = hierarchy.server.certificate
    sans = _ext(certificate, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "rekam.clinic.example"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert (
        certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        == (SERVER_HOSTS[0])
    )
    eku = _ext(certificate, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _ext(certificate, x509.BasicConstraints).value.ca is False
    assert _ext(certificate, x509.KeyUsage).value.digital_signature
    # And as openssl reads it, independently of cryptography's parser.
    text = openssl("x509", "-in", hierarchy.path("server.pem"), "-noout", "-ext", "subjectAltName")
    assert text.returncode == 0, text.stderr
    assert "DNS:localhost" in text.stdout
    assert "DNS:rekam.clinic.example" in text.stdout
    assert "IP Address:127.0.0.1" in text.stdout
    assert "IP Address:0:0:0:0:0:0:0:1" in text.stdout
    assert "DNS:127.0.0.1" not in text.stdout


def test_ip_first_host_becomes_common_name(ec_hierarchy: Hierarchy) -> None:
    server = issue_server_certificate(
        ec_hierarchy.issuing, ["10.1.2.3", "Ward-7.Clinic.Example."], KeyAlgorithm.ECDSA_P256
    )
    certificate = server.certificate
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "10.1.2.3"
    sans = _ext(certificate, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert sans.get_values_for_type(x509.DNSName) == ["ward-7.clinic.example"]


@pytest.mark.parametrize(
    "hosts",
    [
        [],
        [""],
        ["   "],
        ["bad host.example"],
        ["-leading.example"],
        ["trailing-.example"],
        ["under_score.example"],
        ["a" * 64 + ".example"],
        ["empty..label.example"],
        ["256.1.1.1"],
        ["1.2.3"],
        ["*.example"],
        ["www.*.example"],
        ["rumah-sakit.contoh.测试"],
        ["localhost", "bad/slash"],
        ["fe80::1%eth0"],
    ],
)
def test_invalid_hosts_are_rejected(ec_hierarchy: Hierarchy, hosts: list[str]) -> None:
    with pytest.raises(InvalidHostName) as raised:
        issue_server_certificate(ec_hierarchy.issuing, hosts, KeyAlgorithm.ECDSA_P256)
    assert str(raised.value)


def test_a_bare_string_is_not_taken_as_a_list_of_hosts(ec_hierarchy: Hierarchy) -> None:
    with pytest.raises(InvalidHostName, match="list"):
        issue_server_certificate(ec_hierarchy.issuing, "localhost", KeyAlgorithm.ECDSA_P256)


def test_doctor_certificate_is_for_signing_documents(hierarchy: Hierarchy) -> None:
    certificate = hierarchy.doctor.certificate
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Dr. Siti Rahma"
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "STR-12345"
    usage = _ext(certificate, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_encipherment and not usage.value.key_cert_sign
    eku = _ext(certificate, x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_OID}
    assert DOCUMENT_SIGNING_OID.dotted_string == "1.3.6.1.5.5.7.3.36"
    sans = _ext(certificate, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.RFC822Name) == ["siti.rahma@clinic.example"]
    text = openssl("x509", "-in", hierarchy.path("doctor.pem"), "-noout", "-text").stdout
    assert "Digital Signature, Non Repudiation" in text
    assert "E-mail Protection" in text
    assert ("1.3.6.1.5.5.7.3.36" in text) or ("Document Signing" in text)
    assert "email:siti.rahma@clinic.example" in text


def test_doctor_without_email_has_no_san(ec_hierarchy: Hierarchy) -> None:
    from rekam.pki import issue_doctor_certificate

    doctor = issue_doctor_certificate(
        ec_hierarchy.issuing, "Dr. Budi", "STR-1", None, KeyAlgorithm.ECDSA_P256
    )
    with pytest.raises(x509.ExtensionNotFound):
        _ext(doctor.certificate, x509.SubjectAlternativeName)


@pytest.mark.parametrize(
    ("full_name", "licence", "email"),
    [
        ("", "STR-1", None),
        ("Dr. X", "  ", None),
        ("D" * 65, "STR-1", None),
        ("Dr. X", "STR-1", "not-an-email"),
        ("Dr. X", "STR-1", "a@b@c.example"),
        ("Dr. X", "STR-1", "dokter@klinik..example"),
    ],
)
def test_doctor_subject_fields_are_checked(
    ec_hierarchy: Hierarchy, full_name: str, licence: str, email: str | None
) -> None:
    from rekam.pki import issue_doctor_certificate

    with pytest.raises(InvalidSubject):
        issue_doctor_certificate(
            ec_hierarchy.issuing, full_name, licence, email, KeyAlgorithm.ECDSA_P256
        )


def test_client_certificate_is_for_client_auth(hierarchy: Hierarchy) -> None:
    certificate = hierarchy.client.certificate
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "ecg-gateway-01"
    )
    assert list(_ext(certificate, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_leaf_never_outlives_its_issuer(ec_hierarchy: Hierarchy) -> None:
    server = issue_server_certificate(
        ec_hierarchy.issuing, ["long.example"], KeyAlgorithm.ECDSA_P256, valid_days=100_000
    )
    assert server.certificate.not_valid_after_utc <= (
        ec_hierarchy.issuing.certificate.not_valid_after_utc
    )
