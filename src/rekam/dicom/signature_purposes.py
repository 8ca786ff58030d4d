"""Digital Signature Purpose codes (PS3.16 CID 7007, ASTM E1762 signature purposes)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from rekam.dicom.errors import SigningError

__all__ = ["SIGNATURE_PURPOSES", "purpose_code_item"]

SIGNATURE_PURPOSE_SCHEME = "ASTM-sigpurpose"

SIGNATURE_PURPOSES: dict[int, str] = {
    1: "Author's Signature",
    2: "Coauthor's Signature",
    3: "Co-participant's Signature",
    4: "Transcriptionist/Recorder Signature",
    5: "Verification Signature",
    6: "Validation Signature",
    7: "Consent Signature",
    8: "Signature Witness Signature",
    9: "Event Witness Signature",
    10: "Identity Witness Signature",
    11: "Consent Witness Signature",
    12: "Interpreter Signature",
    13: "Review Signature",
    14: "Source Signature",
    15: "Addendum Signature",
    16: "Modification Signature",
    17: "Administrative (Error/Edit) Signature",
    18: "Timestamp Signature",
}


def purpose_code_item(number: int) -> Dataset:
    """The code sequence item for signature purpose ``number`` (1–18)."""
    meaning = SIGNATURE_PURPOSES.get(number)
    if meaning is None:
        raise SigningError(f"Signature purpose {number!r} does not exist; use a number 1–18.")
    item = Dataset()
    item.CodeValue = str(number)
    item.CodingSchemeDesignator = SIGNATURE_PURPOSE_SCHEME
    item.CodeMeaning = meaning
    return item
