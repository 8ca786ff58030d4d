"""PACS storage for DICOM ECG objects: one small interface, Orthanc as the scale-out PACS.

:class:`Pacs` stores an object, finds studies, series and instances, and returns an object by
its SOP Instance UID. Rekam's embedded, encrypted archive lives in ``rekam.his.pacs_archive``
(it needs the database); Orthanc is reached over DIMSE (C-STORE, C-FIND, C-GET) or DICOMweb
(STOW-RS, QIDO-RS, WADO-RS).
"""

from rekam.dicom.pacs.errors import (
    InstanceNotFound,
    PacsError,
    PacsRefused,
    PacsResponseInvalid,
    PacsUnavailable,
)
from rekam.dicom.pacs.interface import (
    InstanceSummary,
    Pacs,
    SeriesSummary,
    StoredInstance,
    StudyQuery,
    StudySummary,
    dicom_date_range,
)

__all__ = [
    "InstanceNotFound",
    "InstanceSummary",
    "Pacs",
    "PacsError",
    "PacsRefused",
    "PacsResponseInvalid",
    "PacsUnavailable",
    "SeriesSummary",
    "StoredInstance",
    "StudyQuery",
    "StudySummary",
    "dicom_date_range",
]
