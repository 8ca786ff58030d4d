"""The embedded archive seen through the :class:`rekam.dicom.pacs.Pacs` interface.

:class:`EmbeddedPacs` binds the archive service to one actor, so code written against the
interface (the ``rekam pacs`` command, the benchmark) works the same on the embedded archive and
on Orthanc; every call is still authorised and audited as that actor.
"""

from __future__ import annotations

from rekam.dicom.pacs import (
    InstanceNotFound,
    InstanceSummary,
    SeriesSummary,
    StoredInstance,
    StudyQuery,
    StudySummary,
)
from rekam.his.errors import NotFound
from rekam.his.pacs_archive import ArchivedInstance, PacsArchiveService
from rekam.his.rbac import Actor

__all__ = ["EmbeddedPacs"]


class EmbeddedPacs:
    """The :class:`~rekam.dicom.pacs.Pacs` interface over :class:`PacsArchiveService`."""

    def __init__(self, archive: PacsArchiveService, actor: Actor) -> None:
        self.archive = archive
        self.actor = actor

    def store(self, data: bytes) -> StoredInstance:
        """Verify, encrypt and index one object."""
        stored = self.archive.store(self.actor, data)
        return StoredInstance(
            stored.sop_class_uid,
            stored.sop_instance_uid,
            stored.study_instance_uid,
            stored.series_instance_uid,
        )

    def find_studies(self, query: StudyQuery) -> list[StudySummary]:
        """Studies with at least one instance matching ``query``."""
        by_study: dict[str, list[ArchivedInstance]] = {}
        for item in self.archive.find(self.actor, query, limit=1000):
            by_study.setdefault(item.study_instance_uid, []).append(item)
        return [
            StudySummary(
                study_instance_uid=uid,
                study_date=items[0].study_date,
                accession_number=items[0].accession_number,
                patient_id=items[0].dicom_patient_id,
                patient_name=items[0].dicom_patient_name,
                study_description=items[0].study_description,
                modalities=tuple(sorted({i.modality for i in items if i.modality})),
                number_of_instances=len(items),
            )
            for uid, items in by_study.items()
        ]

    def find_series(self, study_instance_uid: str) -> list[SeriesSummary]:
        """The series of one study."""
        by_series: dict[str, list[ArchivedInstance]] = {}
        for item in self._study(study_instance_uid):
            by_series.setdefault(item.series_instance_uid, []).append(item)
        return [
            SeriesSummary(study_instance_uid, uid, items[0].modality, None, len(items))
            for uid, items in by_series.items()
        ]

    def find_instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceSummary]:
        """The instances of one study (or series)."""
        return [
            InstanceSummary(
                i.study_instance_uid,
                i.series_instance_uid,
                i.sop_instance_uid,
                i.sop_class_uid,
                None,
            )
            for i in self._study(study_instance_uid)
            if series_instance_uid is None or i.series_instance_uid == series_instance_uid
        ]

    def get(self, sop_instance_uid: str) -> bytes:
        """The object exactly as it was stored."""
        try:
            return self.archive.open(self.actor, sop_instance_uid)
        except NotFound as exc:
            raise InstanceNotFound(
                f"The archive holds no object with SOP Instance UID {sop_instance_uid}."
            ) from exc

    def _study(self, study_instance_uid: str) -> list[ArchivedInstance]:
        return self.archive.find(
            self.actor, StudyQuery(study_instance_uid=study_instance_uid), limit=1000
        )
