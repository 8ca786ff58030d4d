"""An identity: a certificate, its private key and the issuers needed to reach a root."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rekam.pki.errors import InvalidCertificate
from rekam.pki.keys import PrivateKey


@dataclass(frozen=True)
class Identity:
    """A certificate with its private key.

    ``chain`` lists the issuing certificates from the certificate's issuer up to, but excluding,
    the root: empty for a root CA and for a CA issued directly by the root.
    """

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def common_name(self) -> str:
        """The subject common name, or the full subject when there is none."""
        return describe_subject(self.certificate)

    @property
    def is_root(self) -> bool:
        """True for a self-signed certificate (a trust anchor)."""
        return self.certificate.subject == self.certificate.issuer

    def chain_for_issued(self) -> tuple[x509.Certificate, ...]:
        """The ``chain`` for certificates this identity issues: itself and its chain, no roots."""
        if self.is_root:
            return ()
        return (self.certificate, *self.chain)

    def certificate_chain_pem(self) -> bytes:
        """The certificate followed by its chain, PEM-encoded (what a TLS server presents)."""
        return certificates_to_pem((self.certificate, *self.chain))


def certificates_to_pem(
    certificates: tuple[x509.Certificate, ...] | list[x509.Certificate],
) -> bytes:
    """PEM-encode certificates one after the other."""
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def load_certificates_pem(data: bytes) -> list[x509.Certificate]:
    """Read every certificate in PEM data (:class:`InvalidCertificate` when there is none)."""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise InvalidCertificate("The data does not contain a readable PEM certificate.") from error
    return certificates


def load_certificate_pem(data: bytes) -> x509.Certificate:
    """Read exactly one PEM certificate."""
    certificates = load_certificates_pem(data)
    if len(certificates) != 1:
        raise InvalidCertificate(f"Expected one certificate, found {len(certificates)}.")
    return certificates[0]


def describe_subject(certificate: x509.Certificate) -> str:
    """A short human name for a certificate's subject: its CN, else the whole distinguished name."""
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if names:
        value = names[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return certificate.subject.rfc4514_string() or "(empty subject)"
