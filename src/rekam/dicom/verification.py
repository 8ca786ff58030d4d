"""Verifying the DICOM digital signatures of an object (PS3.15 C.12.1), one verdict each.

For every item of the Digital Signatures Sequence: find its MAC parameters, rebuild the signed
byte stream from the object's raw values, check the signature against the enclosed certificate,
validate that certificate up to a trusted root for document signing at the signature's date-time
(revocation lists included), and apply the coverage policy. Nothing here ever reports a
signature as valid when any of those steps could not be completed.

    >>> verdicts = verify_dataset("signed.dcm", trusted_roots=[root])  # doctest: +SKIP
    >>> [v.summary() for v in verdicts]  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pydicom.dataset import Dataset
from pydicom.valuerep import DT

from rekam.dicom.chain_outcomes import ChainOutcomes, crl_signed_by
from rekam.dicom.coverage import DEFAULT_REQUIRED_TAGS, describe_tag
from rekam.dicom.errors import DicomError, SignatureInvalid, UnsupportedCertificate
from rekam.dicom.files import DEFAULT_MAX_FILE_BYTES, read_dicom
from rekam.dicom.mac_algorithms import (
    ACCEPTED_MAC_ALGORITHMS,
    REFUSED_MAC_ALGORITHMS,
    digest,
    hash_for,
)
from rekam.dicom.signature_stream import (
    DIGITAL_SIGNATURES_SEQUENCE,
    MAC_PARAMETERS_SEQUENCE,
    NotHashable,
    is_signable_tag,
    signature_item_stream,
    signed_elements_stream,
)
from rekam.dicom.signers import check_signing_key, verify_digest_signature
from rekam.dicom.signing import CERTIFICATE_TYPE_X509
from rekam.dicom.sop_classes import EXPLICIT_VR_LITTLE_ENDIAN
from rekam.dicom.verdicts import STATUS_PRECEDENCE, SignatureStatus, SignatureVerdict
from rekam.pki import CertificateExpired, CertificateRevoked, ChainInvalid

__all__ = ["require_valid_signatures", "verify_dataset"]

#: How far a signature's date may lie ahead of the verifier's clock.
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: Revocation reasons that leave signatures made before the revocation date standing. Any other
#: reason (key compromise, unspecified, ...) invalidates every signature: the signature date-time
#: is the signer's own claim and a thief of the key can backdate it.
_BENIGN_REVOCATION = frozenset(
    {
        x509.ReasonFlags.superseded,
        x509.ReasonFlags.affiliation_changed,
        x509.ReasonFlags.cessation_of_operation,
    }
)

#: Chain validations remembered across objects signed with the same certificate.
_CHAIN_OUTCOMES = ChainOutcomes()

DATA_CHANGED = (
    "signature invalid: the data was changed after signing (or the signature does not belong to "
    "the certificate it carries)"
)


class _Verdict:
    """Collects what one signature's checks find, then states the verdict."""

    def __init__(self) -> None:
        self.problems: dict[SignatureStatus, list[str]] = {}
        self.remarks: list[str] = []
        self.fields: dict[str, Any] = {}

    def problem(self, status: SignatureStatus, text: str) -> None:
        self.problems.setdefault(status, []).append(text)

    def verdict(self) -> SignatureVerdict:
        for status in STATUS_PRECEDENCE:
            if status in self.problems:
                reasons = [t for s in STATUS_PRECEDENCE for t in self.problems.get(s, [])]
                return SignatureVerdict(
                    status=status,
                    reason=self.problems[status][0],
                    findings=tuple(reasons + self.remarks),
                    **self.fields,
                )
        return SignatureVerdict(
            status=SignatureStatus.VALID,
            reason="signature valid: data unchanged since signing, signer's certificate trusted "
            "and valid at signing time",
            findings=tuple(self.remarks),
            **self.fields,
        )


def verify_dataset(
    source: Dataset | str | os.PathLike[str] | bytes,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    required_coverage: Iterable[int] = DEFAULT_REQUIRED_TAGS,
    at: datetime.datetime | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> list[SignatureVerdict]:
    """Verify every top-level signature of a DICOM object; an empty list when there is none.

    ``source`` is a data set (raw values are used where it was read from a file) or a path or
    bytes of a Part 10 file. The signer's certificate must chain to ``trusted_roots`` (with
    ``intermediates``) for document signing at the signature's date-time, and not be revoked in
    ``crls``. Every tag in ``required_coverage`` must be signed. ``at`` is the verifier's clock
    (now by default): signatures dated after it are refused. Unreadable files raise a
    :class:`DicomError` subclass.
    """
    dataset = source if isinstance(source, Dataset) else read_dicom(source, max_bytes=max_bytes)
    now = _utc(at) if at is not None else datetime.datetime.now(datetime.UTC)
    required = tuple(required_coverage)
    if DIGITAL_SIGNATURES_SEQUENCE not in dataset:
        return []
    try:
        signatures = list(dataset[DIGITAL_SIGNATURES_SEQUENCE].value or [])
        parameters = (
            list(dataset[MAC_PARAMETERS_SEQUENCE].value or [])
            if MAC_PARAMETERS_SEQUENCE in dataset
            else []
        )
    except Exception as exc:  # pydicom raises many kinds on damaged sequences
        raise DicomError(f"The object's signature attributes cannot be read: {exc}") from exc
    return [
        _verify_one(dataset, item, parameters, trusted_roots, intermediates, crls, required, now)
        for item in signatures
    ]


def require_valid_signatures(
    source: Dataset | str | os.PathLike[str] | bytes,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    crls: Sequence[x509.CertificateRevocationList] = (),
    required_coverage: Iterable[int] = DEFAULT_REQUIRED_TAGS,
    at: datetime.datetime | None = None,
) -> list[SignatureVerdict]:
    """Like :func:`verify_dataset`, but raise :class:`SignatureInvalid` unless the object has at
    least one signature and every signature is valid."""
    verdicts = verify_dataset(source, trusted_roots, intermediates, crls, required_coverage, at)
    if not verdicts:
        raise SignatureInvalid("The DICOM object is not signed.")
    bad = [v for v in verdicts if not v.valid]
    if bad:
        raise SignatureInvalid(
            f"{len(bad)} of {len(verdicts)} signature(s) failed: {bad[0].reason}.",
            tuple(verdicts),
        )
    return verdicts


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def _verify_one(
    dataset: Dataset,
    item: Dataset,
    parameters: list[Dataset],
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    required: tuple[int, ...],
    now: datetime.datetime,
) -> SignatureVerdict:
    result = _Verdict()
    malformed = SignatureStatus.MALFORMED
    try:
        uid = str(item.get("DigitalSignatureUID", "") or "") or None
        result.fields["signature_uid"] = uid
        mac_id = item.get("MACIDNumber")
        certificate_type = str(item.get("CertificateType", "") or "")
        certificate_bytes = bytes(item.get("CertificateOfSigner", b"") or b"")
        signature = bytes(item.get("Signature", b"") or b"")
        signed_at_text = str(item.get("DigitalSignatureDateTime", "") or "")
    except Exception:  # a damaged item: pydicom cannot convert its values
        result.problem(malformed, "signature malformed: the signature attributes are unreadable")
        return result.verdict()

    signed_at = _parse_datetime(signed_at_text)
    result.fields["signed_at"] = signed_at
    if signed_at is None:
        result.problem(
            malformed,
            "signature malformed: its date-time is missing or unreadable "
            f"({signed_at_text or 'empty'!r})",
        )
    elif signed_at > now + CLOCK_SKEW:
        result.problem(
            malformed,
            f"signature malformed: it claims to have been made on {signed_at:%Y-%m-%d %H:%M} UTC, "
            "in the future",
        )

    mac_items = [p for p in parameters if mac_id is not None and p.get("MACIDNumber") == mac_id]
    if mac_id is None or len(mac_items) != 1:
        result.problem(
            malformed,
            "signature malformed: "
            + (
                "it has no MAC ID number"
                if mac_id is None
                else f"{len(mac_items)} MAC Parameters items carry its MAC ID number {mac_id}"
            ),
        )
        return result.verdict()
    mac = mac_items[0]
    term = str(mac.get("MACAlgorithm", "") or "").strip().upper()
    result.fields["mac_algorithm"] = term or None
    syntax = str(mac.get("MACCalculationTransferSyntaxUID", "") or "")
    try:
        signed_tags = _signed_tags(mac.get("DataElementsSigned"))
    except (TypeError, ValueError):
        signed_tags = []
    result.fields["signed_attributes"] = tuple(describe_tag(t) for t in signed_tags)
    if term not in ACCEPTED_MAC_ALGORITHMS:
        why = REFUSED_MAC_ALGORITHMS.get(term, "it is not a DICOM MAC algorithm")
        result.problem(malformed, f"signature not accepted: it uses MAC algorithm {term!r} ({why})")
    if syntax != EXPLICIT_VR_LITTLE_ENDIAN:
        result.problem(
            malformed,
            f"signature malformed: its MAC was calculated in transfer syntax {syntax!r}; Rekam "
            "verifies Explicit VR Little Endian MACs only",
        )
    if not signed_tags:
        result.problem(malformed, "signature malformed: it lists no signed attributes")
    if certificate_type != CERTIFICATE_TYPE_X509:
        result.problem(
            malformed,
            f"signature malformed: certificate type {certificate_type!r} is not supported "
            f"(only {CERTIFICATE_TYPE_X509})",
        )
    certificate = _load_certificate(certificate_bytes)
    if certificate is None:
        result.problem(malformed, "signature malformed: the signer's certificate is unreadable")
    else:
        result.fields.update(_signer_fields(certificate))
    if result.problems:
        return result.verdict()
    assert certificate is not None and signed_at is not None

    try:
        public_key = check_signing_key(certificate.public_key())
    except UnsupportedCertificate as exc:
        result.problem(malformed, f"signature malformed: {exc}")
        return result.verdict()

    try:
        stream = signed_elements_stream(dataset, signed_tags) + signature_item_stream(item)
    except NotHashable as exc:
        result.problem(SignatureStatus.INVALID_DATA_CHANGED, f"{DATA_CHANGED}: {exc}")
        return result.verdict()
    mac_value = digest(stream, term)
    trimmed = _trim_signature(signature, public_key)
    if not verify_digest_signature(public_key, trimmed, mac_value, hash_for(term)):
        result.problem(SignatureStatus.INVALID_DATA_CHANGED, DATA_CHANGED)
    missing = [t for t in signed_tags if is_signable_tag(t) and t not in dataset]
    if missing:
        result.remarks.append(
            "signed attributes now missing from the object: "
            + ", ".join(describe_tag(t) for t in missing)
        )

    _check_certificate(result, certificate, trusted_roots, intermediates, crls, signed_at)
    _check_coverage(result, dataset, signed_tags, required)
    return result.verdict()


def _parse_datetime(text: str) -> datetime.datetime | None:
    """A DT value as an aware UTC datetime; without an offset it is taken as UTC."""
    if not text.strip():
        return None
    try:
        value = DT(text.strip())
    except (ValueError, TypeError, OverflowError):
        return None
    moment = datetime.datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
    )
    return _utc(moment)


def _signed_tags(value: object) -> list[int]:
    """The tags of a Data Elements Signed value (one tag or several)."""
    if value is None:
        return []
    if isinstance(value, int):
        return [int(value)]
    if isinstance(value, Iterable):
        return sorted({int(tag) for tag in value})
    raise ValueError("Data Elements Signed is not a list of tags.")


def _load_certificate(data: bytes) -> x509.Certificate | None:
    """Parse the DER certificate, ignoring the padding byte that makes the OB value even."""
    length = _der_length(data)
    if length is None:
        return None
    try:
        return x509.load_der_x509_certificate(data[:length])
    except ValueError:
        return None


def _der_length(data: bytes) -> int | None:
    """Total length of the DER SEQUENCE at the start of ``data`` (None when it is not one)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        total = 2 + count + int.from_bytes(data[2 : 2 + count], "big")
    return total if total <= len(data) else None


def _trim_signature(
    signature: bytes, public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
) -> bytes:
    """Drop the padding byte of an odd-length signature stored in an even-length OB value."""
    if isinstance(public_key, rsa.RSAPublicKey):
        size = (public_key.key_size + 7) // 8
        return signature[:size] if len(signature) == size + 1 else signature
    length = _der_length(signature)
    return signature[:length] if length is not None else signature


def _signer_fields(certificate: x509.Certificate) -> dict[str, Any]:
    def first(oid: x509.ObjectIdentifier) -> str | None:
        values = certificate.subject.get_attributes_for_oid(oid)
        if not values:
            return None
        value = values[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")

    return {
        "signer_certificate": certificate,
        "signer_name": first(NameOID.COMMON_NAME) or certificate.subject.rfc4514_string(),
        "licence_number": first(NameOID.SERIAL_NUMBER),
    }


def _check_certificate(
    result: _Verdict,
    certificate: x509.Certificate,
    trusted_roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    signed_at: datetime.datetime,
) -> None:
    try:
        _CHAIN_OUTCOMES.verify_document_signer(
            certificate, intermediates, trusted_roots, crls, signed_at
        )
    except CertificateRevoked as exc:
        result.problem(
            SignatureStatus.CERTIFICATE_REVOKED,
            f"certificate revoked before the signature was made: {exc.reason}",
        )
        return
    except CertificateExpired as exc:
        result.problem(
            SignatureStatus.CERTIFICATE_EXPIRED_AT_SIGNING,
            f"certificate not valid when the signature was made: {exc.reason}",
        )
        return
    except ChainInvalid as exc:
        result.problem(
            SignatureStatus.CERTIFICATE_UNTRUSTED, f"signer's certificate not trusted: {exc.reason}"
        )
        return
    _check_later_revocation(result, certificate, intermediates, trusted_roots, crls, signed_at)


def _check_later_revocation(
    result: _Verdict,
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    signed_at: datetime.datetime,
) -> None:
    """A revocation dated after the signature still counts unless its reason is benign."""
    issuers = [c for c in (*intermediates, *trusted_roots) if c.subject == certificate.issuer]
    for crl in crls:
        if crl.issuer != certificate.issuer or not any(crl_signed_by(crl, c) for c in issuers):
            continue
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is None or entry.revocation_date_utc <= signed_at:
            continue
        reason = _revocation_reason(entry)
        when = f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
        if reason in _BENIGN_REVOCATION:
            result.remarks.append(
                f"the certificate was revoked on {when}, after this signature was made "
                f"({reason.value}); the signature stays valid"
            )
        else:
            said = reason.value if reason is not None else "no reason given"
            result.problem(
                SignatureStatus.CERTIFICATE_REVOKED,
                f"certificate revoked on {when} ({said}): the signature's own date cannot be "
                "trusted once the key may be in other hands",
            )


def _revocation_reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _check_coverage(
    result: _Verdict, dataset: Dataset, signed_tags: list[int], required: tuple[int, ...]
) -> None:
    covered = set(signed_tags)
    missing = [t for t in required if t not in covered]
    result.fields["missing_required"] = tuple(describe_tag(t) for t in missing)
    if missing:
        result.problem(
            SignatureStatus.COVERAGE_INSUFFICIENT,
            "signature does not cover "
            + ", ".join(describe_tag(t) for t in missing)
            + ": those could be changed without breaking it",
        )
    unsigned = [
        t
        for t in sorted(dataset.keys())
        if is_signable_tag(t)
        and t not in covered
        and t not in (MAC_PARAMETERS_SEQUENCE, DIGITAL_SIGNATURES_SEQUENCE)
    ]
    result.fields["unsigned_attributes"] = tuple(describe_tag(t) for t in unsigned)
    if unsigned:
        result.remarks.append(
            "not protected by this signature (added later or left out by the signer): "
            + ", ".join(describe_tag(t) for t in unsigned)
        )
