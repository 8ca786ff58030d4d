"""Loading a signer from files: a PEM key (encrypted or not) with its certificate, or PKCS#12."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from rekam.dicom.errors import SigningError, UnsupportedCertificate
from rekam.dicom.signers import KeySigner, check_signing_key

__all__ = ["KeyPassphraseNeeded", "load_pem_signer", "load_pkcs12_signer"]


class KeyPassphraseNeeded(SigningError):
    """The private key is encrypted and no passphrase was given."""


def load_pem_signer(
    key_pem: bytes, certificate_pem: bytes, passphrase: bytes | None = None
) -> tuple[KeySigner, list[x509.Certificate]]:
    """A signer from a PEM private key and a PEM file whose first certificate is the signer's.

    Further certificates in the PEM file are returned as the chain. The key may be encrypted
    (give ``passphrase``); it must match the certificate.
    """
    try:
        certificates = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError as exc:
        raise UnsupportedCertificate(
            "The certificate file holds no readable PEM certificate."
        ) from exc
    encrypted = b"ENCRYPTED" in key_pem.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in key_pem
    if encrypted and not passphrase:
        raise KeyPassphraseNeeded("The private key is encrypted; its passphrase is needed.")
    try:
        key = serialization.load_pem_private_key(
            key_pem, password=passphrase if encrypted else None
        )
    except TypeError as exc:
        raise SigningError(
            "The private key file could not be opened with that passphrase."
        ) from exc
    except ValueError as exc:
        if encrypted:
            raise SigningError(
                "The passphrase does not open the private key (or the key file is damaged)."
            ) from exc
        raise SigningError("The key file does not hold a readable PEM private key.") from exc
    return _signer(key, certificates[0]), certificates[1:]


def load_pkcs12_signer(
    data: bytes, passphrase: bytes | None = None
) -> tuple[KeySigner, list[x509.Certificate]]:
    """A signer from a PKCS#12 (.p12/.pfx) bundle: its key, certificate and chain."""
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError as exc:
        if passphrase is None:
            raise KeyPassphraseNeeded(
                "The PKCS#12 file is protected; its passphrase is needed."
            ) from exc
        raise SigningError(
            "The PKCS#12 file could not be opened: wrong passphrase or not a PKCS#12 file."
        ) from exc
    if key is None or certificate is None:
        raise SigningError("The PKCS#12 file must hold both a private key and its certificate.")
    return _signer(key, certificate), list(extra)


def _signer(key: object, certificate: x509.Certificate) -> KeySigner:
    certificate_key = check_signing_key(certificate.public_key())
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise UnsupportedCertificate(
            f"A {type(key).__name__.removeprefix('_')} key cannot make DICOM signatures; "
            "use an RSA or elliptic-curve key."
        )
    if key.public_key() != certificate_key:
        raise SigningError("The private key does not belong to the certificate given.")
    return KeySigner(certificate, key)
