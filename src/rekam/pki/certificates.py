"""Issuing end-entity certificates: TLS servers, doctors (document signing) and clients."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from rekam.pki.errors import InvalidSubject, PkiError
from rekam.pki.hostnames import host_text, parse_hosts
from rekam.pki.identity import Identity
from rekam.pki.keys import (
    KeyAlgorithm,
    PrivateKey,
    PublicKey,
    generate_private_key,
    key_algorithm_of,
    signature_hash,
)

#: id-kp-documentSigning (RFC 9336).
DOCUMENT_SIGNING_OID = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

BACKDATE = datetime.timedelta(minutes=5)
_MAX_NAME_LENGTH = 64
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def utc_now() -> datetime.datetime:
    """The current time in UTC."""
    return datetime.datetime.now(datetime.UTC)


def subject_text(value: str, what: str) -> str:
    """Check a name-like field: non-empty after trimming and at most 64 characters."""
    if not isinstance(value, str):
        raise InvalidSubject(f"The {what} must be text.")
    text = " ".join(value.split())
    if not text:
        raise InvalidSubject(f"The {what} must not be empty.")
    if len(text) > _MAX_NAME_LENGTH:
        raise InvalidSubject(f"The {what} must be at most {_MAX_NAME_LENGTH} characters long.")
    return text


def _validity(issuer: Identity, valid_days: int) -> tuple[datetime.datetime, datetime.datetime]:
    if valid_days < 1:
        raise PkiError("A certificate must be valid for at least one day.")
    now = utc_now()
    not_after = now + datetime.timedelta(days=valid_days)
    # Never outlive the issuer: a certificate is useless once its issuer has expired.
    not_after = min(not_after, issuer.certificate.not_valid_after_utc)
    if not_after <= now:
        raise PkiError(f"The issuing CA {issuer.common_name!r} has expired; it cannot issue.")
    return now - BACKDATE, not_after


def build_certificate(
    *,
    issuer: Identity | None,
    subject: x509.Name,
    public_key: PublicKey,
    signing_key: PrivateKey,
    issuer_name: x509.Name,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Sign a certificate with a random serial, SKI/AKI and a SHA-256 signature."""
    issuer_public_key = (issuer.private_key if issuer else signing_key).public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, signature_hash())


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def ca_key_usage() -> x509.KeyUsage:
    """keyCertSign + cRLSign, the key usage of every Rekam CA."""
    return _key_usage(key_cert_sign=True, crl_sign=True)


def _issue_leaf(
    issuer: Identity,
    subject: x509.Name,
    algorithm: KeyAlgorithm,
    valid_days: int,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> Identity:
    require_ca(issuer)
    key = generate_private_key(algorithm)
    not_before, not_after = _validity(issuer, valid_days)
    certificate = build_certificate(
        issuer=issuer,
        subject=subject,
        public_key=key.public_key(),
        signing_key=issuer.private_key,
        issuer_name=issuer.certificate.subject,
        not_before=not_before,
        not_after=not_after,
        extensions=[(x509.BasicConstraints(ca=False, path_length=None), True), *extensions],
    )
    return Identity(certificate, key, issuer.chain_for_issued())


def require_ca(issuer: Identity) -> None:
    try:
        constraints = issuer.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.value.ca:
        raise PkiError(f"{issuer.common_name!r} is not a certificate authority; it cannot issue.")


def _organization_of(issuer: Identity) -> list[x509.NameAttribute[str]]:
    return [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(attribute.value))
        for attribute in issuer.certificate.subject.get_attributes_for_oid(
            NameOID.ORGANIZATION_NAME
        )
    ]


def issue_server_certificate(
    issuer: Identity,
    hosts: Sequence[str],
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
    valid_days: int = 397,
) -> Identity:
    """Issue a TLS server certificate for ``hosts`` (DNS names and/or IP addresses).

    Every host goes into the subjectAltName; the first one is also the common name (left out when
    it is longer than the 64 characters a CN may hold). Raises :class:`InvalidHostName`.
    """
    entries = parse_hosts(hosts)
    first = host_text(entries[0])
    attributes = _organization_of(issuer)
    if len(first) <= _MAX_NAME_LENGTH:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, first))
    usage = _key_usage(
        digital_signature=True,
        # keyEncipherment only means something for RSA keys (legacy clients look for it).
        key_encipherment=KeyAlgorithm(algorithm) is KeyAlgorithm.RSA3072,
    )
    return _issue_leaf(
        issuer,
        x509.Name(attributes),
        algorithm,
        valid_days,
        [
            (usage, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(entries), False),
        ],
    )


def _email_entry(email: str) -> x509.RFC822Name:
    text = email.strip() if isinstance(email, str) else ""
    if not _EMAIL.fullmatch(text) or ".." in text:
        raise InvalidSubject(f"{email!r} is not a valid e-mail address (ASCII only).")
    return x509.RFC822Name(text)


def issue_doctor_certificate(
    issuer: Identity,
    full_name: str,
    licence_number: str,
    email: str | None,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
    valid_days: int = 730,
) -> Identity:
    """Issue a doctor's signing certificate.

    Subject: CN = full name, serialNumber = licence number, O = the issuer's organisation.
    Key usage digitalSignature + nonRepudiation (contentCommitment); extended key usage
    emailProtection + documentSigning (1.3.6.1.5.5.7.3.36); the e-mail address, when given,
    goes into the subjectAltName.
    """
    subject, extensions = _doctor_profile(issuer, full_name, licence_number, email)
    return _issue_leaf(issuer, subject, algorithm, valid_days, extensions)


def issue_doctor_certificate_for_key(
    issuer: Identity,
    public_key: PublicKey,
    full_name: str,
    licence_number: str,
    email: str | None,
    valid_days: int = 730,
) -> x509.Certificate:
    """The same doctor's certificate as :func:`issue_doctor_certificate`, for a key generated
    elsewhere (inside a PKCS#11 token) of which only the public half is known."""
    require_ca(issuer)
    key_algorithm_of(public_key)  # RSA 3072 or P-256, as for keys Rekam generates
    subject, extensions = _doctor_profile(issuer, full_name, licence_number, email)
    not_before, not_after = _validity(issuer, valid_days)
    return build_certificate(
        issuer=issuer,
        subject=subject,
        public_key=public_key,
        signing_key=issuer.private_key,
        issuer_name=issuer.certificate.subject,
        not_before=not_before,
        not_after=not_after,
        extensions=[(x509.BasicConstraints(ca=False, path_length=None), True), *extensions],
    )


def _doctor_profile(
    issuer: Identity, full_name: str, licence_number: str, email: str | None
) -> tuple[x509.Name, list[tuple[x509.ExtensionType, bool]]]:
    name = subject_text(full_name, "doctor's full name")
    licence = subject_text(licence_number, "licence number")
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (_key_usage(digital_signature=True, content_commitment=True), True),
        (
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING_OID]),
            False,
        ),
    ]
    if email is not None:
        extensions.append((x509.SubjectAlternativeName([_email_entry(email)]), False))
    subject = x509.Name(
        [
            *_organization_of(issuer),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, licence),
        ]
    )
    return subject, extensions


def issue_client_certificate(
    issuer: Identity,
    common_name: str,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
    valid_days: int = 730,
) -> Identity:
    """Issue a TLS client certificate (clientAuth) for a device, broker or service."""
    name = subject_text(common_name, "client name")
    return _issue_leaf(
        issuer,
        x509.Name([*_organization_of(issuer), x509.NameAttribute(NameOID.COMMON_NAME, name)]),
        algorithm,
        valid_days,
        [
            (_key_usage(digital_signature=True), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )
