"""Orthanc as the settings describe it: over DIMSE or DICOMweb, one call at a time or one
connection for a run of operations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rekam.config import Settings
from rekam.dicom.pacs import Pacs

# The two Orthanc clients (and the DIMSE library) are imported only when Orthanc is the PACS.

__all__ = ["open_orthanc", "orthanc_connection"]


def open_orthanc(settings: Settings) -> Pacs:
    """Orthanc as the settings describe it (``pacs_protocol``: dimse or dicomweb)."""
    if settings.pacs_protocol == "dicomweb":
        from rekam.dicom.pacs.orthanc_dicomweb import OrthancDicomWeb

        auth = (
            (settings.orthanc_username, settings.orthanc_password.get_secret_value())
            if settings.orthanc_username and settings.orthanc_password
            else None
        )
        return OrthancDicomWeb(
            settings.orthanc_dicomweb_url,
            auth=auth,
            timeout=settings.pacs_timeout_seconds,
            verify=str(settings.orthanc_ca) if settings.orthanc_ca else True,
        )
    from rekam.dicom.pacs.orthanc_dimse import OrthancDimse

    return OrthancDimse(
        settings.orthanc_host,
        settings.orthanc_dicom_port,
        called_aet=settings.orthanc_aet,
        calling_aet=settings.pacs_calling_aet,
        timeout=settings.pacs_timeout_seconds,
    )


@contextmanager
def orthanc_connection(settings: Settings) -> Iterator[Pacs]:
    """Orthanc for a run of operations (``rekam pacs send`` of many files, a study's
    instances): over DIMSE one association kept for all of them, over DICOMweb one pool of
    HTTP connections; closed when the ``with`` block ends."""
    from rekam.dicom.pacs.orthanc_dimse import OrthancDimse

    pacs = open_orthanc(settings)
    if isinstance(pacs, OrthancDimse):
        with pacs.session() as session:
            yield session
        return
    try:
        yield pacs
    finally:
        close = getattr(pacs, "close", None)
        if close is not None:
            close()
