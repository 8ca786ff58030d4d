"""The one exception hierarchy of :mod:`rekam.pki`.

Every error carries a plain sentence that can be shown to the person at the screen; none of them
ever contains key material or a passphrase.
"""

from __future__ import annotations


class PkiError(Exception):
    """Base class of every error raised by :mod:`rekam.pki`."""


class WrongPassphrase(PkiError):
    """The passphrase does not open an encrypted private key."""


class InvalidKey(PkiError):
    """Bytes that should hold a private key do not (garbage, truncated or an unsupported type)."""


class KeyNotEncrypted(PkiError):
    """A private key file is stored in plaintext; Rekam only accepts encrypted key files."""


class InvalidCertificate(PkiError):
    """Bytes that should hold a certificate or CRL cannot be read as one."""


class CertificateNotFound(PkiError):
    """An expected certificate or key file is missing from the store."""


class CaAlreadyExists(PkiError):
    """A certificate authority already exists where a new one would have been created."""


class InvalidHostName(PkiError):
    """A host name or IP address cannot be placed in a server certificate."""


class InvalidSubject(PkiError):
    """A person's name, licence number, e-mail or other subject field is unusable."""


class ChainInvalid(PkiError):
    """A certificate does not validate up to a trusted root.

    ``reason`` holds the plain explanation, also used as the exception message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CertificateExpired(ChainInvalid):
    """A certificate in the chain is outside its validity period."""


class CertificateRevoked(ChainInvalid):
    """A certificate in the chain is listed in its issuer's revocation list."""


class NotIssuedByAuthority(PkiError):
    """A certificate was not issued by the certificate authority asked to act on it."""


class TokenKeyError(PkiError):
    """A key or certificate on a PKCS#11 token cannot be found, created or used."""
