"""Errors of the PACS layer, each a sentence a clinician (or the person on call) can act on."""

from __future__ import annotations

from rekam.dicom.errors import DicomError

__all__ = [
    "InstanceNotFound",
    "PacsError",
    "PacsRefused",
    "PacsResponseInvalid",
    "PacsUnavailable",
]


class PacsError(DicomError):
    """Base class of every PACS error."""


class PacsUnavailable(PacsError):
    """The PACS cannot be reached (down, wrong address or port, timed out)."""


class PacsRefused(PacsError):
    """The PACS answered but refused the request (association rejected, failure status,
    HTTP 4xx/5xx)."""


class PacsResponseInvalid(PacsError):
    """The PACS answered something that is not what the protocol promises."""


class InstanceNotFound(PacsError):
    """No object with that SOP Instance UID is stored."""
