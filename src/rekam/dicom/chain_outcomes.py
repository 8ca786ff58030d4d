"""Chain validation outcomes remembered per signer certificate, trust set and time interval.

Verifying a batch of objects signed by the same doctor validates the same certificate chain
again and again, only at different signature times. The outcome of
:func:`rekam.pki.verify_chain` depends on the time only through comparisons with a fixed set of
instants: the validity bounds of every certificate involved, and the next-update time and
revocation dates of every revocation list. Between two consecutive instants the outcome cannot
change, so it is remembered per interval. A time within one second after any of those instants
is never served from memory (validity is kept to whole seconds), and anything that differs in
the certificates or lists given is a different entry.
"""

from __future__ import annotations

import bisect
import datetime
import threading
from collections import OrderedDict
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rekam.pki import ChainInvalid, verify_chain

__all__ = ["ChainOutcomes", "crl_signed_by"]

_ONE_SECOND = datetime.timedelta(seconds=1)
_Outcome = tuple[type[ChainInvalid], str] | None
_Key = tuple[
    x509.Certificate, tuple[x509.Certificate, ...], tuple[x509.Certificate, ...], tuple[bytes, ...]
]


class _Entry:
    def __init__(self, instants: list[datetime.datetime]) -> None:
        self.instants = instants
        self.outcomes: dict[int, _Outcome] = {}


class ChainOutcomes:
    """A bounded memory of document-signing chain validations (thread-safe)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def verify_document_signer(
        self,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        roots: Sequence[x509.Certificate],
        crls: Sequence[x509.CertificateRevocationList],
        at: datetime.datetime,
    ) -> None:
        """:func:`rekam.pki.verify_chain` for the ``document`` purpose at ``at``, remembered."""
        key: _Key = (certificate, tuple(intermediates), tuple(roots), tuple(_der(c) for c in crls))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            entry = _Entry(_instants(certificate, intermediates, roots, crls))
        slot = _interval(entry.instants, at)
        if slot is not None and slot in entry.outcomes:
            _raise(entry.outcomes[slot])
            return
        outcome: _Outcome = None
        try:
            verify_chain(certificate, intermediates, roots, at=at, purpose="document", crls=crls)
        except ChainInvalid as exc:
            outcome = (type(exc), exc.reason)
        if slot is not None:
            with self._lock:
                entry.outcomes[slot] = outcome
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        _raise(outcome)


def _raise(outcome: _Outcome) -> None:
    if outcome is not None:
        kind, reason = outcome
        raise kind(reason)


def _der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def _instants(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
) -> list[datetime.datetime]:
    """Every instant at which the chain's validation outcome may change."""
    moments: set[datetime.datetime] = set()
    for cert in (certificate, *intermediates, *roots):
        moments.update((cert.not_valid_before_utc, cert.not_valid_after_utc))
    for crl in crls:
        moments.add(crl.last_update_utc)
        if crl.next_update_utc is not None:
            moments.add(crl.next_update_utc)
        moments.update(entry.revocation_date_utc for entry in crl)
    return sorted(moments)


def _interval(instants: list[datetime.datetime], at: datetime.datetime) -> int | None:
    """The index of the open interval between instants holding ``at``; None near an instant."""
    index = bisect.bisect_right(instants, at)
    if index > 0 and at - instants[index - 1] < _ONE_SECOND:
        return None  # at an instant or within its second: always validated afresh
    return index


_signatures: OrderedDict[tuple[bytes, x509.Certificate], bool] = OrderedDict()
_signatures_lock = threading.Lock()


def crl_signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key made the CRL's signature (remembered per CRL and issuer)."""
    key = (_der(crl), issuer)
    with _signatures_lock:
        known = _signatures.get(key)
    if known is not None:
        return known
    public_key = issuer.public_key()
    valid = False
    if isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        try:
            valid = crl.is_signature_valid(public_key)
        except (InvalidSignature, ValueError, TypeError):
            valid = False
    with _signatures_lock:
        _signatures[key] = valid
        while len(_signatures) > 256:
            _signatures.popitem(last=False)
    return valid
