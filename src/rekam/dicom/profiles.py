"""Digital signature profiles (PS3.15 Annex C) and what each asks of a new signature.

``base`` (Base RSA, C.1) and ``creator`` (Creator RSA, C.2) need an RSA key; DCMTK's ``dcmsign``
refuses an ECDSA key under either (``--profile-none`` signs with one). ``none`` applies no
profile and is the one to use with ECDSA doctor keys. The Creator RSA profile additionally
requires the SOP Class/Instance, Study and Series UIDs and, when present, the instance creation
time, the General Equipment attributes and the waveform to be signed.
"""

from __future__ import annotations

from enum import StrEnum

from rekam.dicom.coverage import tags_from_names
from rekam.dicom.errors import SigningError

__all__ = [
    "CREATOR_REQUIRED_IF_PRESENT",
    "CREATOR_REQUIRED_TAGS",
    "SignatureProfile",
    "signature_profile",
]


class SignatureProfile(StrEnum):
    """The PS3.15 signature profile a new signature follows."""

    BASE = "base"
    CREATOR = "creator"
    NONE = "none"

    @property
    def requires_rsa(self) -> bool:
        return self in (SignatureProfile.BASE, SignatureProfile.CREATOR)

    @property
    def standard_name(self) -> str:
        return {
            SignatureProfile.BASE: "Base RSA Digital Signature Profile",
            SignatureProfile.CREATOR: "Creator RSA Digital Signature Profile",
            SignatureProfile.NONE: "no signature profile",
        }[self]


def signature_profile(name: str | SignatureProfile) -> SignatureProfile:
    try:
        return SignatureProfile(str(name).strip().lower())
    except ValueError as exc:
        raise SigningError(
            f"{name!r} is not a signature profile; use 'base', 'creator' or 'none'."
        ) from exc


CREATOR_REQUIRED_TAGS = tags_from_names(
    ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]
)

#: Signed by the Creator RSA profile whenever present (the part of PS3.15 C.2 an ECG can hold).
CREATOR_REQUIRED_IF_PRESENT = tags_from_names(
    [
        "InstanceCreationDate",
        "InstanceCreationTime",
        # General Equipment module
        "Manufacturer",
        "InstitutionName",
        "InstitutionAddress",
        "StationName",
        "InstitutionalDepartmentName",
        "ManufacturerModelName",
        "DeviceSerialNumber",
        "SoftwareVersions",
        "DeviceUID",
        "DateOfLastCalibration",
        "TimeOfLastCalibration",
        # General Image / Waveform Identification
        "InstanceNumber",
        "ContentDate",
        "ContentTime",
        "AcquisitionDateTime",
        "AcquisitionNumber",
        # Waveform and Waveform Annotation modules
        "WaveformSequence",
        "WaveformDataDisplayScale",
        "WaveformDisplayBackgroundCIELabValue",
        "WaveformPresentationGroupSequence",
        "WaveformAnnotationSequence",
    ]
)
