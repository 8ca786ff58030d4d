"""What an SCP-ECG record says about the patient, the acquisition and the device (section 1)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from rekam.ecg.errors import InvalidParameterError
from rekam.ecg.recording import Recording

__all__ = ["ScpEcgDemographics", "ScpEcgRecord", "ScpEncoding"]

ScpEncoding = Literal["real", "first-difference", "second-difference"]

_MAX_TEXT_CHARACTERS = 64


@dataclass(frozen=True)
class ScpEcgDemographics:
    """The section 1 values Rekam writes and reads back.

    ``sex`` uses the DICOM letters: ``M`` (tag 8 value 1), ``F`` (2), ``O`` (9, unspecified);
    None is "not known" (0). ``acquired_at`` goes into tags 25 and 26 as local clock time; when it
    carries a time zone, its UTC offset goes into tag 34. The device fields fill tag 14 (acquiring
    device); ``institution`` and ``department`` tags 16 and 18.
    """

    patient_id: str
    last_name: str = ""
    first_name: str = ""
    birth_date: datetime.date | None = None
    sex: Literal["M", "F", "O"] | None = None
    acquired_at: datetime.datetime | None = None
    institution: str = ""
    department: str = ""
    referring_physician: str = ""
    institution_number: int = 0
    department_number: int = 0
    device_id: int = 0
    device_model: str = ""
    device_serial_number: str = ""
    device_software: str = ""
    manufacturer: str = ""

    def __post_init__(self) -> None:
        for number, what in (
            (self.institution_number, "institution number"),
            (self.department_number, "department number"),
            (self.device_id, "device ID"),
        ):
            if not 0 <= number <= 0xFFFF:
                raise InvalidParameterError(f"The {what} must be between 0 and 65535.")
        if self.sex not in (None, "M", "F", "O"):
            raise InvalidParameterError(f"Sex must be M, F or O (or unknown), not {self.sex!r}.")

    def check_writable(self) -> None:
        """Refuse values an SCP-ECG header cannot hold (called before writing)."""
        if not self.patient_id.strip():
            raise InvalidParameterError("An SCP-ECG record needs a patient ID.")
        for value, what in (
            (self.patient_id, "patient ID"),
            (self.last_name, "last name"),
            (self.first_name, "first name"),
            (self.institution, "institution"),
            (self.department, "department"),
            (self.referring_physician, "referring physician"),
            (self.device_serial_number, "device serial number"),
            (self.device_software, "device software"),
            (self.manufacturer, "manufacturer"),
        ):
            if "\x00" in value:
                raise InvalidParameterError(f"The {what} contains a NUL character.")
            if len(value) > _MAX_TEXT_CHARACTERS:
                raise InvalidParameterError(
                    f"The {what} is longer than {_MAX_TEXT_CHARACTERS} characters; shorten it."
                )
        if len(self.device_model) > 5 or "\x00" in self.device_model:
            raise InvalidParameterError(
                "The device model description holds at most 5 characters in SCP-ECG."
            )
        if self.birth_date is not None and self.birth_date.year < 1:
            raise InvalidParameterError("The birth date's year cannot be stored.")


@dataclass(frozen=True)
class ScpEcgRecord:
    """An SCP-ECG record as read: the recording (mV), its demographics and how it was stored.

    ``amplitude_step_nv`` is the amplitude value multiplier of section 6 (the value of one
    stored step); ``encoding`` the difference encoding; ``huffman`` whether section 6 used the
    default Huffman table; ``protocol_version`` the SCP-ECG version of section 0 (20 = 2.0).
    """

    recording: Recording
    demographics: ScpEcgDemographics
    amplitude_step_nv: int
    sample_interval_us: int
    encoding: ScpEncoding = "real"
    huffman: bool = False
    protocol_version: int = 0
