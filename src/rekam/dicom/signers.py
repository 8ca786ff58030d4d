"""Who signs: a certificate plus something that can sign a digest with the matching key.

:class:`KeySigner` holds a private key in memory; :class:`CallbackSigner` hands the digest to a
function, which is how a key that never leaves a PKCS#11 token or HSM is used. Either way the
signature is RSA PKCS#1 v1.5 (with the hash's DigestInfo) for RSA keys and a DER-encoded
ECDSA-Sig-Value for elliptic-curve keys — what DCMTK writes and expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from rekam.dicom.errors import SigningError, UnsupportedCertificate
from rekam.pki import Identity

__all__ = [
    "CallbackSigner",
    "DicomSigner",
    "KeySigner",
    "SignerKey",
    "as_signer",
    "check_signing_key",
    "verify_digest_signature",
]

SignerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
SignerPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
DigestSigner = Callable[[bytes, hashes.HashAlgorithm], bytes]

MIN_RSA_BITS = 2048
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


@runtime_checkable
class DicomSigner(Protocol):
    """Anything that can sign a DICOM signature digest for a certificate."""

    @property
    def certificate(self) -> x509.Certificate: ...

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """Sign an already computed ``digest`` made with ``algorithm``."""
        ...


@dataclass(frozen=True)
class KeySigner:
    """A certificate with its private key in memory."""

    certificate: x509.Certificate
    private_key: SignerKey

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return self.private_key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))
        return self.private_key.sign(digest, ec.ECDSA(Prehashed(algorithm)))


@dataclass(frozen=True)
class CallbackSigner:
    """A certificate whose key lives elsewhere (PKCS#11 token, HSM, remote signing service).

    ``sign`` receives the digest and its hash algorithm and returns an RSA PKCS#1 v1.5 signature
    (the token adds the DigestInfo, e.g. CKM_RSA_PKCS over the DER DigestInfo) or a DER ECDSA
    signature (convert a raw r‖s from CKM_ECDSA with
    ``cryptography.hazmat.primitives.asymmetric.utils.encode_dss_signature``).
    """

    certificate: x509.Certificate
    sign: DigestSigner

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        return self.sign(digest, algorithm)


def as_signer(signer: Identity | DicomSigner) -> DicomSigner:
    """Accept a :class:`rekam.pki.Identity` or any :class:`DicomSigner`."""
    if isinstance(signer, Identity):
        return KeySigner(signer.certificate, signer.private_key)
    if isinstance(signer, DicomSigner):
        return signer
    raise SigningError(
        "The signer must be an identity (certificate and private key) or a signing callback."
    )


def check_signing_key(public_key: object) -> SignerPublicKey:
    """The certificate's public key when it can make DICOM signatures; raise otherwise."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise UnsupportedCertificate(
                f"The certificate's RSA key has {public_key.key_size} bits; at least "
                f"{MIN_RSA_BITS} are needed for a signature that can be trusted."
            )
        return public_key
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, _CURVES):
            raise UnsupportedCertificate(
                f"The certificate's elliptic curve {public_key.curve.name} is not supported; "
                "use P-256, P-384 or P-521."
            )
        return public_key
    raise UnsupportedCertificate(
        f"The certificate holds a {type(public_key).__name__.removeprefix('_')} key; DICOM "
        "signatures need an RSA or elliptic-curve (ECDSA) key."
    )


def verify_digest_signature(
    public_key: SignerPublicKey,
    signature: bytes,
    digest: bytes,
    algorithm: hashes.HashAlgorithm,
) -> bool:
    """True when ``signature`` over ``digest`` verifies with ``public_key``."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, digest, padding.PKCS1v15(), Prehashed(algorithm))
        else:
            public_key.verify(signature, digest, ec.ECDSA(Prehashed(algorithm)))
    except (InvalidSignature, ValueError):
        return False
    return True
