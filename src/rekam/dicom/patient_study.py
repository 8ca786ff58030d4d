"""What a DICOM ECG object says about the patient, the study and the equipment.

Plain values in, checked against the DICOM value representations they end up in (PN, LO, SH, DA),
so that a bad value is refused with a readable message instead of producing an invalid object.
Times are UTC; naive datetimes are taken as UTC.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from rekam.dicom.errors import InvalidAttributeValue
from rekam.dicom.uids import is_valid_uid

Sex = Literal["M", "F", "O"]

_PN_GROUP_MAX = 64
_LO_MAX = 64
_SH_MAX = 16
_CONTROL = {chr(c) for c in range(32)} | {"\\", "\x7f"}


@dataclass(frozen=True)
class PatientInfo:
    """The Patient module: ID, name (``Family^Given`` or plain text), birth date and sex."""

    patient_id: str
    name: str
    birth_date: datetime.date | None = None
    sex: Sex | None = None
    issuer_of_patient_id: str | None = None

    def __post_init__(self) -> None:
        long_string(self.patient_id, "patient ID", required=True)
        person_name(self.name, "patient name")
        if self.sex is not None and self.sex not in ("M", "F", "O"):
            raise InvalidAttributeValue(
                f"Patient sex must be M, F or O (or unknown), not {self.sex!r}."
            )
        if self.birth_date is not None and not isinstance(self.birth_date, datetime.date):
            raise InvalidAttributeValue("The patient's birth date must be a date.")
        if self.issuer_of_patient_id is not None:
            long_string(self.issuer_of_patient_id, "issuer of the patient ID")


@dataclass(frozen=True)
class StudyInfo:
    """The General Study module and the acquisition time.

    ``study_instance_uid`` is generated under the organisation root when not given;
    ``acquired_at`` defaults to the moment the object is made and ``study_started_at`` to the
    acquisition time.
    """

    accession_number: str = ""
    study_description: str = ""
    referring_physician: str = ""
    study_id: str = ""
    study_instance_uid: str | None = None
    study_started_at: datetime.datetime | None = None
    acquired_at: datetime.datetime | None = None

    def __post_init__(self) -> None:
        short_string(self.accession_number, "accession number")
        short_string(self.study_id, "study ID")
        long_string(self.study_description, "study description")
        person_name(self.referring_physician, "referring physician")
        if self.study_instance_uid is not None and not is_valid_uid(self.study_instance_uid):
            raise InvalidAttributeValue(
                f"{self.study_instance_uid!r} is not a valid Study Instance UID."
            )


@dataclass(frozen=True)
class EquipmentInfo:
    """The General Equipment module: who made the device or software that wrote the object."""

    manufacturer: str = "Rekam"
    model_name: str = "Rekam tele-ECG"
    software_versions: str = ""
    institution_name: str = ""
    station_name: str = ""
    device_serial_number: str = ""

    def __post_init__(self) -> None:
        for value, what in (
            (self.manufacturer, "manufacturer"),
            (self.model_name, "model name"),
            (self.software_versions, "software version"),
            (self.institution_name, "institution name"),
            (self.device_serial_number, "device serial number"),
        ):
            long_string(value, what)
        short_string(self.station_name, "station name")


def as_utc(moment: datetime.datetime) -> datetime.datetime:
    """``moment`` in UTC (a naive value is taken as UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def _text(value: str, what: str, limit: int, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidAttributeValue(f"The {what} must be text.")
    if required and not value.strip():
        raise InvalidAttributeValue(f"The {what} must not be empty.")
    if len(value) > limit:
        raise InvalidAttributeValue(
            f"The {what} is {len(value)} characters long; DICOM allows at most {limit}."
        )
    if _CONTROL & set(value):
        raise InvalidAttributeValue(f"The {what} contains a control character or backslash.")
    return value


def long_string(value: str, what: str, *, required: bool = False) -> str:
    """Check a LO value (≤ 64 characters, no backslash or control characters)."""
    return _text(value, what, _LO_MAX, required=required)


def short_string(value: str, what: str) -> str:
    """Check a SH value (≤ 16 characters)."""
    return _text(value, what, _SH_MAX)


def person_name(value: str, what: str) -> str:
    """Check a PN value: ``Family^Given^Middle^Prefix^Suffix``, each group ≤ 64 characters."""
    if not isinstance(value, str):
        raise InvalidAttributeValue(f"The {what} must be text.")
    for group in value.split("="):
        _text(group, what, _PN_GROUP_MAX)
        if group.count("^") > 4:
            raise InvalidAttributeValue(
                f"The {what} has more than five name parts (Family^Given^Middle^Prefix^Suffix)."
            )
    return value
