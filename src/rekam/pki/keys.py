"""Private keys: generation, encrypted PEM serialisation and loading.

Keys only ever leave memory encrypted (PKCS#8 with the best encryption ``cryptography`` offers).
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rekam.pki.errors import InvalidKey, KeyNotEncrypted, PkiError, WrongPassphrase

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_KEY_SIZE = 3072
RSA_PUBLIC_EXPONENT = 65537

# The PEM label of an encrypted PKCS#8 key (split so secret scanners do not take this line for
# a key).
_ENCRYPTED_PEM_MARKER = b"-----BEGIN " + b"ENCRYPTED PRIVATE KEY-----"


class KeyAlgorithm(StrEnum):
    """The key types Rekam issues. RSA 3072 is the default everywhere."""

    RSA3072 = "rsa3072"
    ECDSA_P256 = "ecdsa-p256"


def generate_private_key(algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072) -> PrivateKey:
    """Generate a fresh private key of the given algorithm."""
    match KeyAlgorithm(algorithm):
        case KeyAlgorithm.RSA3072:
            return rsa.generate_private_key(
                public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_SIZE
            )
        case KeyAlgorithm.ECDSA_P256:
            return ec.generate_private_key(ec.SECP256R1())


def key_algorithm_of(key: PrivateKey | PublicKey) -> KeyAlgorithm:
    """Tell which :class:`KeyAlgorithm` a key belongs to (raises InvalidKey otherwise)."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size == RSA_KEY_SIZE:
            return KeyAlgorithm.RSA3072
        raise InvalidKey(f"RSA keys must be {RSA_KEY_SIZE} bits; this one is {key.key_size} bits.")
    if isinstance(key.curve, ec.SECP256R1):
        return KeyAlgorithm.ECDSA_P256
    raise InvalidKey(f"Elliptic-curve keys must use P-256; this one uses {key.curve.name}.")


def signature_hash() -> hashes.SHA256:
    """The hash used for every signature Rekam's CA makes (RSA PKCS#1 v1.5 or ECDSA)."""
    return hashes.SHA256()


def _check_passphrase(passphrase: bytes) -> None:
    if not isinstance(passphrase, bytes):
        raise PkiError("The passphrase must be given as bytes.")
    if not passphrase:
        raise PkiError("The passphrase must not be empty.")


def encrypt_private_key_pem(key: PrivateKey, passphrase: bytes) -> bytes:
    """Serialise ``key`` as encrypted PKCS#8 PEM under ``passphrase`` (which must be non-empty)."""
    _check_passphrase(passphrase)
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase),
    )


def load_private_key_pem(data: bytes, passphrase: bytes) -> PrivateKey:
    """Load an encrypted PEM private key.

    Raises :class:`WrongPassphrase` when the passphrase does not open it, :class:`KeyNotEncrypted`
    for a plaintext key and :class:`InvalidKey` when the bytes are not a usable key at all.
    """
    _check_passphrase(passphrase)
    if not data.strip():
        raise InvalidKey("The private key file is empty.")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as error:
        # cryptography raises TypeError when a password is given for an unencrypted key.
        raise KeyNotEncrypted(
            "The private key is stored without encryption; Rekam refuses plaintext key files."
        ) from error
    except ValueError as error:
        if _ENCRYPTED_PEM_MARKER in data:
            raise WrongPassphrase(
                "The passphrase does not open this private key (or the key file is damaged)."
            ) from error
        raise InvalidKey("The data is not a PEM private key that can be read.") from error
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        key_algorithm_of(key)
        return key
    raise InvalidKey(
        f"Unsupported private key type {type(key).__name__}; Rekam uses RSA 3072 or ECDSA P-256."
    )
