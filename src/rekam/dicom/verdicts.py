"""What verifying one DICOM signature found, explained (like pyHanko's status objects)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509

__all__ = ["SignatureStatus", "SignatureVerdict"]


class SignatureStatus(StrEnum):
    """The outcome of one signature, the most serious problem first in precedence."""

    VALID = "VALID"
    MALFORMED = "MALFORMED"
    INVALID_DATA_CHANGED = "INVALID_DATA_CHANGED"
    CERTIFICATE_REVOKED = "CERTIFICATE_REVOKED"
    CERTIFICATE_EXPIRED_AT_SIGNING = "CERTIFICATE_EXPIRED_AT_SIGNING"
    CERTIFICATE_UNTRUSTED = "CERTIFICATE_UNTRUSTED"
    COVERAGE_INSUFFICIENT = "COVERAGE_INSUFFICIENT"


#: Order in which problems decide the status when several are found.
STATUS_PRECEDENCE: tuple[SignatureStatus, ...] = (
    SignatureStatus.MALFORMED,
    SignatureStatus.INVALID_DATA_CHANGED,
    SignatureStatus.CERTIFICATE_REVOKED,
    SignatureStatus.CERTIFICATE_EXPIRED_AT_SIGNING,
    SignatureStatus.CERTIFICATE_UNTRUSTED,
    SignatureStatus.COVERAGE_INSUFFICIENT,
)


@dataclass(frozen=True)
class SignatureVerdict:
    """One signature's verdict: who signed, when, with what, and whether it holds — and why.

    ``reason`` is one sentence for the person at the screen; ``findings`` lists every problem
    and remark, most serious first; ``unsigned_attributes`` names attributes present in the
    object that this signature does not protect (added later, or left out by the signer).
    """

    status: SignatureStatus
    reason: str
    signature_uid: str | None = None
    signed_at: datetime.datetime | None = None
    mac_algorithm: str | None = None
    signer_name: str | None = None
    licence_number: str | None = None
    signer_certificate: x509.Certificate | None = field(default=None, repr=False)
    signed_attributes: tuple[str, ...] = ()
    unsigned_attributes: tuple[str, ...] = ()
    missing_required: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.status is SignatureStatus.VALID

    def summary(self) -> str:
        """``VALID — Dr Jane Doe (LIC-1), 2025-01-02 10:00 UTC, SHA256: signature valid ...``"""
        who = self.signer_name or "unknown signer"
        if self.licence_number:
            who += f" (licence {self.licence_number})"
        when = f"{self.signed_at:%Y-%m-%d %H:%M:%S} UTC" if self.signed_at else "no date"
        return f"{self.status.value} — {who}, {when}, {self.mac_algorithm or '?'}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (no certificate bytes)."""
        return {
            "status": self.status.value,
            "valid": self.valid,
            "reason": self.reason,
            "signature_uid": self.signature_uid,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "mac_algorithm": self.mac_algorithm,
            "signer": self.signer_name,
            "licence_number": self.licence_number,
            "signer_certificate_serial": (
                format(self.signer_certificate.serial_number, "x")
                if self.signer_certificate is not None
                else None
            ),
            "signed_attributes": list(self.signed_attributes),
            "unsigned_attributes": list(self.unsigned_attributes),
            "missing_required": list(self.missing_required),
            "findings": list(self.findings),
        }
