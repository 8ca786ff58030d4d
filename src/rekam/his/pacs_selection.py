"""The configured PACS: the embedded archive (default) or Orthanc over DIMSE or DICOMweb."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rekam.config import Settings
from rekam.dicom.pacs import Pacs
from rekam.dicom.pacs.orthanc_dicomweb import OrthancDicomWeb
from rekam.dicom.pacs.orthanc_dimse import OrthancDimse
from rekam.his.embedded_pacs import EmbeddedPacs
from rekam.his.pacs_archive import PacsArchiveService
from rekam.his.rbac import Actor

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

__all__ = ["open_orthanc", "open_pacs", "orthanc_connection"]


def open_orthanc(settings: Settings) -> Pacs:
    """Orthanc as the settings describe it (``pacs_protocol``: dimse or dicomweb)."""
    if settings.pacs_protocol == "dicomweb":
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


def open_pacs(clinic: Clinic, actor: Actor) -> Pacs:
    """The PACS the installation is configured for, acting as ``actor`` where it matters."""
    if clinic.settings.pacs == "orthanc":
        return open_orthanc(clinic.settings)
    return EmbeddedPacs(PacsArchiveService.for_clinic(clinic), actor)
