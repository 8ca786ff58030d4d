"""Signing keys that never leave a PKCS#11 token (an HSM, a smart card, or SoftHSM2).

A doctor's key pair is generated inside the token (private key sensitive and not extractable,
usable for signing only), and the certificate Rekam's CA issues for it is stored back on the token
as a CKO_CERTIFICATE object with the same label and CKA_ID. :class:`TokenKey` signs a digest the
caller computed: RSA with CKM_RSA_PKCS over the DER DigestInfo (RSA PKCS#1 v1.5, exactly what
``cryptography`` makes with ``Prehashed``), ECDSA with CKM_ECDSA, whose raw ``r‖s`` is returned as
the DER ECDSA-Sig-Value that X.509 and DICOM use.

Logging in goes through :func:`rekam.crypto.pkcs11_keyring.open_token_session`, which keeps one
login per process and token (PKCS#11 login state belongs to the process), so a keyring and a
signer can share a token.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, MechanismFlag, ObjectClass

from rekam.crypto.errors import CryptoError
from rekam.crypto.pkcs11_keyring import open_token_session
from rekam.pki.errors import TokenKeyError
from rekam.pki.keys import RSA_KEY_SIZE, KeyAlgorithm, PublicKey

__all__ = [
    "TokenKey",
    "find_token_certificate",
    "generate_token_key",
    "open_token_key",
    "store_token_certificate",
]

#: DER DigestInfo prefixes (RFC 8017 section 9.2, note 1): the digest follows them.
_DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}

#: DER-encoded named-curve OIDs (CKA_EC_PARAMS) of the curves Rekam uses on tokens.
_CURVE_PARAMETERS: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}
_P256_PARAMETERS = bytes.fromhex("06082a8648ce3d030107")


def _describe(exc: BaseException) -> str:
    """python-pkcs11 errors often have an empty message: name the error type instead."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _session(module_path: str, token_label: str, pin: str) -> pkcs11.Session:
    try:
        return open_token_session(str(module_path), token_label, pin)
    except CryptoError as exc:
        raise TokenKeyError(str(exc)[:1].upper() + str(exc)[1:] + ".") from exc


@dataclass
class TokenKey:
    """A private key on a token, its public half, and what CKA_LABEL/CKA_ID name them."""

    token_label: str
    label: str
    key_id: bytes
    public_key: PublicKey
    _private: Any
    _session: pkcs11.Session
    _lock: threading.Lock

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """Sign an already computed digest; the result is what ``cryptography`` would make."""
        if len(digest) != algorithm.digest_size:
            raise TokenKeyError(
                f"A {algorithm.name} digest has {algorithm.digest_size} bytes, not {len(digest)}."
            )
        try:
            with self._lock:
                if isinstance(self.public_key, rsa.RSAPublicKey):
                    prefix = _DIGEST_INFO_PREFIX.get(algorithm.name)
                    if prefix is None:
                        raise TokenKeyError(f"{algorithm.name} digests cannot be signed here.")
                    signature = self._private.sign(prefix + digest, mechanism=Mechanism.RSA_PKCS)
                    return bytes(signature)
                raw = bytes(self._private.sign(digest, mechanism=Mechanism.ECDSA))
        except pkcs11.PKCS11Error as exc:
            raise TokenKeyError(
                f"The token '{self.token_label}' refused to sign with key '{self.label}': "
                f"{_describe(exc)}."
            ) from exc
        half = len(raw) // 2
        if half == 0 or len(raw) % 2:
            raise TokenKeyError(f"The token '{self.token_label}' returned a damaged signature.")
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )


def open_token_key(
    module_path: str, token_label: str, pin: str, key_label: str | None = None
) -> TokenKey:
    """The signing key labelled ``key_label`` on the token (the only one when no label is given).

    Raises :class:`TokenKeyError` with a readable reason: module or token missing, PIN refused,
    no such key, several keys and no label to choose between them.
    """
    session = _session(module_path, token_label, pin)
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if key_label is not None:
        template[Attribute.LABEL] = key_label
    try:
        keys = list(session.get_objects(template))
    except pkcs11.PKCS11Error as exc:
        raise TokenKeyError(
            f"The keys on token '{token_label}' cannot be listed: {_describe(exc)}."
        ) from exc
    keys = [k for k in keys if k[Attribute.KEY_TYPE] in (KeyType.RSA, KeyType.EC)]
    if not keys:
        what = f"labelled '{key_label}'" if key_label is not None else "at all"
        raise TokenKeyError(f"The token '{token_label}' holds no RSA or EC private key {what}.")
    if len(keys) > 1:
        labels = sorted({str(k[Attribute.LABEL]) for k in keys})
        raise TokenKeyError(
            f"The token '{token_label}' holds several signing keys ({', '.join(labels)}); "
            "choose one with its key label."
        )
    private = keys[0]
    label = str(private[Attribute.LABEL])
    key_id = bytes(private[Attribute.ID] or b"")
    public_key = _public_key_of(session, token_label, private, label, key_id)
    return TokenKey(token_label, label, key_id, public_key, private, session, threading.Lock())


def generate_token_key(
    module_path: str,
    token_label: str,
    pin: str,
    key_label: str,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA3072,
) -> TokenKey:
    """Generate a signing key pair inside the token; the private key can never be exported.

    Refuses when a key with that label is already there (a label names one doctor's key).
    """
    if not key_label.strip():
        raise TokenKeyError("A key on a token needs a label.")
    session = _session(module_path, token_label, pin)
    existing = list(
        session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: key_label})
    )
    if existing:
        raise TokenKeyError(
            f"The token '{token_label}' already holds a key labelled '{key_label}'; "
            "it will not be replaced."
        )
    key_id = _new_key_id(session)
    private_template: dict[Attribute, Any] = {
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.PRIVATE: True,
    }
    capabilities = MechanismFlag.SIGN | MechanismFlag.VERIFY
    try:
        if KeyAlgorithm(algorithm) is KeyAlgorithm.RSA3072:
            session.generate_keypair(
                KeyType.RSA, RSA_KEY_SIZE, id=key_id, label=key_label, store=True,
                capabilities=capabilities, private_template=private_template,
            )  # fmt: skip
        else:
            parameters = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: _P256_PARAMETERS}, local=True
            )
            parameters.generate_keypair(
                id=key_id, label=key_label, store=True, capabilities=capabilities,
                private_template=private_template,
            )  # fmt: skip
    except pkcs11.PKCS11Error as exc:
        raise TokenKeyError(
            f"The token '{token_label}' could not generate the key '{key_label}': {_describe(exc)}."
        ) from exc
    return open_token_key(module_path, token_label, pin, key_label)


def store_token_certificate(key: TokenKey, certificate: x509.Certificate) -> None:
    """Store the key's certificate on the token (same CKA_LABEL and CKA_ID as the key)."""
    if certificate.public_key() != key.public_key:
        raise TokenKeyError(
            f"The certificate does not belong to the key '{key.label}' on token "
            f"'{key.token_label}'."
        )
    try:
        with key._lock:
            key._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.LABEL: key.label,
                    Attribute.ID: key.key_id,
                    Attribute.SUBJECT: certificate.subject.public_bytes(),
                    Attribute.ISSUER: certificate.issuer.public_bytes(),
                    Attribute.SERIAL_NUMBER: _der_integer(certificate.serial_number),
                    Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER),
                }
            )
    except pkcs11.PKCS11Error as exc:
        raise TokenKeyError(
            f"The certificate could not be stored on token '{key.token_label}': {_describe(exc)}."
        ) from exc


def find_token_certificate(key: TokenKey) -> x509.Certificate:
    """The certificate stored on the token for ``key`` (same CKA_ID, else the same label).

    Only a certificate whose public key is the key's own is returned.
    """
    with key._lock:
        candidates = []
        for template in (
            {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key.key_id},
            {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: key.label},
        ):
            if template.get(Attribute.ID) == b"":
                continue
            candidates += [
                bytes(obj[Attribute.VALUE]) for obj in key._session.get_objects(template)
            ]
    matching = []
    for der in candidates:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        if certificate.public_key() == key.public_key:
            matching.append(certificate)
    if not matching:
        raise TokenKeyError(
            f"The token '{key.token_label}' holds no certificate for the key '{key.label}'; "
            "give the certificate file instead."
        )
    # Several (renewed) certificates for one key: the one valid longest.
    return max(matching, key=lambda c: c.not_valid_after_utc)


def _public_key_of(
    session: pkcs11.Session, token_label: str, private: Any, label: str, key_id: bytes
) -> PublicKey:
    """The public key: from the private key object's own attributes or its public twin."""
    key_type = private[Attribute.KEY_TYPE]
    sources = [private]
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PUBLIC_KEY}
    template.update({Attribute.ID: key_id} if key_id else {Attribute.LABEL: label})
    sources += list(session.get_objects(template))
    for source in sources:
        try:
            if key_type == KeyType.RSA:
                modulus = int.from_bytes(bytes(source[Attribute.MODULUS]), "big")
                exponent = int.from_bytes(bytes(source[Attribute.PUBLIC_EXPONENT]), "big")
                return rsa.RSAPublicNumbers(exponent, modulus).public_key()
            curve = _CURVE_PARAMETERS.get(bytes(source[Attribute.EC_PARAMS]))
            if curve is None:
                raise TokenKeyError(
                    f"The key '{label}' on token '{token_label}' uses an elliptic curve Rekam "
                    "does not sign with (P-256, P-384 and P-521 are supported)."
                )
            point = _ec_point(bytes(source[Attribute.EC_POINT]), curve)
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except (pkcs11.PKCS11Error, KeyError, ValueError):
            continue
    raise TokenKeyError(
        f"The public half of the key '{label}' on token '{token_label}' cannot be read."
    )


def _ec_point(value: bytes, curve: ec.EllipticCurve) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point (some tokens give the bare point)."""
    size = (curve.key_size + 7) // 8
    if len(value) == 1 + 2 * size and value[0] == 0x04:
        return value
    if len(value) > 2 and value[0] == 0x04:
        if value[1] < 0x80:
            return value[2:]
        count = value[1] & 0x7F
        return value[2 + count :]
    raise ValueError("unreadable EC point")


def _new_key_id(session: pkcs11.Session) -> bytes:
    """A CKA_ID (8 random bytes) not used by any object on the token."""
    for _ in range(64):
        candidate = secrets.token_bytes(8)
        if not list(session.get_objects({Attribute.ID: candidate})):
            return candidate
    raise TokenKeyError("No free key identifier could be found on the token.")


def _der_integer(value: int) -> bytes:
    """DER INTEGER of a certificate serial (at most 20 bytes, so a one-byte length)."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([0x02, len(body)]) + body
