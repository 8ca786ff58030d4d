"""The configured PACS: the embedded archive (default) or Orthanc over DIMSE or DICOMweb.

In every mode Rekam's database keeps the index (UIDs, signature status, sealed DICOM patient
values); the object bytes live in the embedded encrypted blob store or in Orthanc. Code written
against :class:`~rekam.dicom.pacs.Pacs` gets that index and that store behind one object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rekam.dicom.pacs import Pacs
from rekam.his.embedded_pacs import EmbeddedPacs
from rekam.his.orthanc_pacs import open_orthanc, orthanc_connection
from rekam.his.pacs_archive import PacsArchiveService
from rekam.his.rbac import Actor

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

__all__ = ["open_orthanc", "open_pacs", "orthanc_connection"]


def open_pacs(clinic: Clinic, actor: Actor, objects: Pacs | None = None) -> Pacs:
    """The PACS the installation is configured for, acting as ``actor``: every object stored
    is verified and indexed here and its bytes kept where the settings say (``objects``, when
    given, is the Orthanc connection to use instead of one per call)."""
    return EmbeddedPacs(PacsArchiveService.for_clinic(clinic, objects), actor)
