"""The one small interface every PACS implements, and the plain values it speaks in.

A PACS stores DICOM Part 10 objects, finds them by patient ID, study date, accession number or
Study Instance UID (study, series and instance level), and hands an object back by its SOP
Instance UID. Rekam's embedded archive (``rekam.his.pacs_archive``) and Orthanc
(:mod:`rekam.dicom.pacs.orthanc_dimse`, :mod:`rekam.dicom.pacs.orthanc_dicomweb`) implement it.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "InstanceSummary",
    "Pacs",
    "SeriesSummary",
    "StoredInstance",
    "StudyQuery",
    "StudySummary",
    "dicom_date_range",
]

_DA = re.compile(r"\d{8}")


@dataclass(frozen=True)
class StoredInstance:
    """What a PACS says after storing one object."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str


@dataclass(frozen=True)
class StudyQuery:
    """Search keys; every key given must match (``None`` means "any").

    ``study_date`` is a DICOM date ``YYYYMMDD`` or range ``YYYYMMDD-YYYYMMDD`` (either end may be
    left open). ``patient_id`` and ``accession_number`` match exactly.
    """

    patient_id: str | None = None
    study_date: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None

    def __post_init__(self) -> None:
        if self.study_date is not None:
            dicom_date_range(self.study_date)  # raises ValueError with a readable message


def dicom_date_range(text: str) -> tuple[str | None, str | None]:
    """``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD`` (open ends allowed) as (first, last), checked."""
    first, dash, last = text.strip().partition("-")
    ends = (first, last) if dash else (first, first)
    for end in ends:
        if end and (_DA.fullmatch(end) is None or not _real_date(end)):
            raise ValueError(
                f"{text!r} is not a study date: use YYYYMMDD or YYYYMMDD-YYYYMMDD (e.g. 20250131)"
            )
    if not (ends[0] or ends[1]):
        raise ValueError("a study date range needs at least one end")
    return ends[0] or None, ends[1] or None


def _real_date(text: str) -> bool:
    try:
        datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class StudySummary:
    """One study as a PACS describes it (patient name and ID are the DICOM values)."""

    study_instance_uid: str
    study_date: str | None
    accession_number: str | None
    patient_id: str | None
    patient_name: str | None
    study_description: str | None
    modalities: tuple[str, ...]
    number_of_instances: int | None


@dataclass(frozen=True)
class SeriesSummary:
    study_instance_uid: str
    series_instance_uid: str
    modality: str | None
    series_number: int | None
    number_of_instances: int | None


@dataclass(frozen=True)
class InstanceSummary:
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str | None
    instance_number: int | None


@runtime_checkable
class Pacs(Protocol):
    """A place that stores and returns DICOM objects."""

    def store(self, data: bytes) -> StoredInstance:
        """Store one DICOM Part 10 object; return its identifiers."""
        ...

    def find_studies(self, query: StudyQuery) -> list[StudySummary]:
        """Studies matching every key of ``query``."""
        ...

    def find_series(self, study_instance_uid: str) -> list[SeriesSummary]:
        """The series of one study."""
        ...

    def find_instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceSummary]:
        """The instances of one study (or of one of its series)."""
        ...

    def get(self, sop_instance_uid: str) -> bytes:
        """The stored object, byte for byte as a Part 10 file; ``InstanceNotFound`` if absent."""
        ...
