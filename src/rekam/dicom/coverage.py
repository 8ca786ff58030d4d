"""Which attributes a signature must cover before Rekam calls it valid.

A DICOM signature only protects the attributes listed in its Data Elements Signed; attributes
added or left out are not protected. The verifier therefore applies a coverage policy: the
identity of the patient, the study and the instance, and the waveform itself must all be signed.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.tag import BaseTag, Tag

from rekam.dicom.errors import DicomError

__all__ = ["DEFAULT_REQUIRED_TAGS", "describe_tag", "tags_from_names"]


def tags_from_names(names: Iterable[str | int]) -> tuple[BaseTag, ...]:
    """Tags from DICOM keywords (``"PatientName"``) or integers (``0x00100010``)."""
    result = []
    for name in names:
        if isinstance(name, int):
            result.append(Tag(name))
            continue
        tag = tag_for_keyword(name)
        if tag is None:
            raise DicomError(f"{name!r} is not a DICOM attribute keyword.")
        result.append(Tag(tag))
    return tuple(result)


def describe_tag(tag: int) -> str:
    """``PatientName (0010,0010)`` — keyword and tag, for messages."""
    keyword = keyword_for_tag(tag)
    text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return f"{keyword} {text}" if keyword else text


#: Patient, study, instance identity and the waveform: what a signed ECG must protect.
DEFAULT_REQUIRED_TAGS: tuple[BaseTag, ...] = tags_from_names(
    [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPClassUID",
        "SOPInstanceUID",
        "AcquisitionDateTime",
        "WaveformSequence",
    ]
)
