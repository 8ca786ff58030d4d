"""Certificate revocation lists signed by an issuing CA."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from rekam.pki.certificates import utc_now
from rekam.pki.errors import InvalidCertificate, NotIssuedByAuthority, PkiError
from rekam.pki.identity import Identity
from rekam.pki.keys import signature_hash

RevocationReason = x509.ReasonFlags

#: How long a freshly signed CRL stays current; re-sign (``renew``) before then.
DEFAULT_CRL_VALID_DAYS = 7

_UNUSABLE_REASONS = {x509.ReasonFlags.remove_from_crl}


class CertificateRevocationList:
    """A CRL issued by one CA, re-signed on every change.

    Create an empty list with :meth:`create`, read an existing one with :meth:`from_pem`, then
    :meth:`revoke` serials; :meth:`to_pem` gives the current signed list.
    """

    def __init__(
        self,
        issuer: Identity,
        crl: x509.CertificateRevocationList,
        valid_days: int = DEFAULT_CRL_VALID_DAYS,
    ) -> None:
        if crl.issuer != issuer.certificate.subject or not crl.is_signature_valid(
            issuer.private_key.public_key()
        ):
            raise NotIssuedByAuthority(
                f"This revocation list was not signed by {issuer.common_name!r}."
            )
        self._issuer = issuer
        self._crl = crl
        self._valid_days = valid_days

    @classmethod
    def create(
        cls, issuer: Identity, valid_days: int = DEFAULT_CRL_VALID_DAYS
    ) -> CertificateRevocationList:
        """A new, empty CRL (number 1) signed by ``issuer``."""
        crl = _sign(issuer, [], number=1, valid_days=valid_days)
        return cls(issuer, crl, valid_days)

    @classmethod
    def from_pem(
        cls, issuer: Identity, data: bytes, valid_days: int = DEFAULT_CRL_VALID_DAYS
    ) -> CertificateRevocationList:
        """Read a PEM CRL and check it was signed by ``issuer``."""
        return cls(issuer, load_crl_pem(data), valid_days)

    @property
    def crl(self) -> x509.CertificateRevocationList:
        """The current signed CRL."""
        return self._crl

    @property
    def number(self) -> int:
        """The CRL number, incremented on every re-signing."""
        return _crl_number(self._crl)

    @property
    def revoked_serials(self) -> frozenset[int]:
        """Serial numbers of every revoked certificate."""
        return frozenset(entry.serial_number for entry in self._crl)

    def revoke(
        self,
        serial_number: int | x509.Certificate,
        reason: RevocationReason = RevocationReason.unspecified,
        revoked_at: datetime.datetime | None = None,
    ) -> None:
        """Add a certificate (or bare serial) to the list and re-sign it.

        Revoking a serial that is already listed changes nothing. A certificate passed in must
        have been issued by this CA.
        """
        if isinstance(serial_number, x509.Certificate):
            self._require_issued_here(serial_number)
            serial = serial_number.serial_number
        else:
            serial = serial_number
        if not isinstance(serial, int) or serial <= 0:
            raise PkiError("A serial number to revoke must be a positive integer.")
        reason = RevocationReason(reason)
        if reason in _UNUSABLE_REASONS:
            raise PkiError(f"{reason.value!r} cannot be used as a revocation reason.")
        if serial in self.revoked_serials:
            return
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(revoked_at or utc_now())
        )
        # RFC 5280 5.3.1: leave the reason out rather than say "unspecified".
        if reason is not RevocationReason.unspecified:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        entries = [*self._crl, entry.build()]
        self._crl = _sign(self._issuer, entries, self.number + 1, self._valid_days)

    def renew(self) -> None:
        """Re-sign the same entries with fresh this/next update times and the next CRL number."""
        self._crl = _sign(self._issuer, list(self._crl), self.number + 1, self._valid_days)

    def is_revoked(self, certificate: x509.Certificate) -> bool:
        """True when ``certificate`` was issued by this CA and is on the list."""
        if certificate.issuer != self._crl.issuer:
            return False
        return (
            self._crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            is not None
        )

    def reason_for(self, certificate: x509.Certificate) -> RevocationReason | None:
        """The recorded reason, ``unspecified`` when none was given, None when not revoked."""
        if not self.is_revoked(certificate):
            return None
        entry = self._crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        assert entry is not None
        try:
            return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            return RevocationReason.unspecified

    def to_pem(self) -> bytes:
        """The signed CRL in PEM form (what ``openssl verify -CRLfile`` reads)."""
        return self._crl.public_bytes(serialization.Encoding.PEM)

    def _require_issued_here(self, certificate: x509.Certificate) -> None:
        try:
            certificate.verify_directly_issued_by(self._issuer.certificate)
        except (ValueError, TypeError, InvalidSignature) as error:
            raise NotIssuedByAuthority(
                f"The certificate was not issued by {self._issuer.common_name!r}; "
                "only its issuer can revoke it."
            ) from error


def load_crl_pem(data: bytes) -> x509.CertificateRevocationList:
    """Read a PEM CRL (raises :class:`InvalidCertificate` on anything else)."""
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError as error:
        raise InvalidCertificate("The data is not a readable PEM revocation list.") from error


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def _sign(
    issuer: Identity,
    entries: list[x509.RevokedCertificate],
    number: int,
    valid_days: int,
) -> x509.CertificateRevocationList:
    if valid_days < 1:
        raise PkiError("A revocation list must be valid for at least one day.")
    now = utc_now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(issuer.private_key, signature_hash())
