"""A DICOM signer whose private key stays on a PKCS#11 token (HSM, smart card, SoftHSM2).

    >>> signer = open_token_signer(module, "doctor-token", pin, "dr-ana")  # doctest: +SKIP
    >>> sign_dataset(ds, signer)  # doctest: +SKIP

The certificate is the one stored on the token next to the key (same CKA_ID or label) unless a
certificate is given; either way it must hold the key's public half.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from rekam.dicom.errors import SigningError
from rekam.dicom.signers import check_signing_key
from rekam.pki import PkiError
from rekam.pki.token_keys import TokenKey, find_token_certificate, open_token_key

__all__ = ["TokenSigner", "open_token_signer"]


@dataclass(frozen=True)
class TokenSigner:
    """A certificate and the token key that signs for it."""

    certificate: x509.Certificate
    key: TokenKey

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        try:
            return self.key.sign_digest(digest, algorithm)
        except PkiError as exc:
            raise SigningError(str(exc)) from exc


def open_token_signer(
    module_path: str,
    token_label: str,
    pin: str,
    key_label: str | None = None,
    certificate: x509.Certificate | None = None,
) -> TokenSigner:
    """The signer for ``key_label`` on the token (the only key when no label is given).

    Raises :class:`SigningError` when the token, the PIN, the key or its certificate is wrong.
    """
    try:
        key = open_token_key(module_path, token_label, pin, key_label)
        chosen = certificate if certificate is not None else find_token_certificate(key)
    except PkiError as exc:
        raise SigningError(str(exc)) from exc
    check_signing_key(chosen.public_key())
    if chosen.public_key() != key.public_key:
        raise SigningError(
            f"The certificate given does not belong to the key '{key.label}' on token "
            f"'{token_label}'."
        )
    return TokenSigner(chosen, key)
