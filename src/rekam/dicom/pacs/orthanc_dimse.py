"""Orthanc (or any DICOM peer) over DIMSE with pynetdicom: C-STORE, C-FIND, C-GET.

C-GET asks the peer to send the object back on the same association, so Rekam needs no
listening port: the association proposes the ECG storage SOP classes with the SCP role and
keeps the object's encoded bytes as received (no decode and re-encode, so signatures stay as
they were).

Each call on :class:`OrthancDimse` opens an association for that one operation. For many
operations, open a :meth:`~OrthancDimse.session`: it keeps one association for all of them.

    >>> pacs = OrthancDimse("127.0.0.1", 4242, called_aet="ORTHANC", calling_aet="REKAM")
    >>> stored = pacs.store(Path("ecg.dcm").read_bytes())  # doctest: +SKIP
    >>> pacs.get(stored.sop_instance_uid)[128:132]  # doctest: +SKIP
    b'DICM'
    >>> with pacs.session() as session:  # doctest: +SKIP
    ...     for path in paths:
    ...         session.store(path.read_bytes())
"""

from __future__ import annotations

from rekam.dicom.files import read_dicom
from rekam.dicom.pacs.dimse_session import DimsePeer, DimseSession
from rekam.dicom.pacs.interface import (
    InstanceSummary,
    SeriesSummary,
    StoredInstance,
    StudyQuery,
    StudySummary,
)

__all__ = ["OrthancDimse"]


class OrthancDimse:
    """The :class:`~rekam.dicom.pacs.Pacs` interface over DIMSE, one association per call."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        called_aet: str = "ORTHANC",
        calling_aet: str = "REKAM",
        timeout: float = 30.0,
    ) -> None:
        self.peer = DimsePeer(host, port, called_aet, calling_aet, timeout)

    @property
    def host(self) -> str:
        return self.peer.host

    @property
    def port(self) -> int:
        return self.peer.port

    @property
    def called_aet(self) -> str:
        return self.peer.called_aet

    @property
    def calling_aet(self) -> str:
        return self.peer.calling_aet

    @property
    def timeout(self) -> float:
        return self.peer.timeout

    def __repr__(self) -> str:
        return f"OrthancDimse({self.peer})"

    def session(self) -> DimseSession:
        """One association for many operations (store, find, get), released when the ``with``
        block ends; use it for batches."""
        return DimseSession(self.peer)

    def echo(self) -> None:
        """C-ECHO: raise unless the PACS answers."""
        with DimseSession(self.peer, storage_classes=(), query=False, retrieve=False,
                          verify=True) as one:  # fmt: skip
            one.echo()

    def store(self, data: bytes) -> StoredInstance:
        """C-STORE one Part 10 object (checked first: bad input never reaches the PACS)."""
        sop_class = str(read_dicom(data).SOPClassUID)
        with DimseSession(self.peer, storage_classes=(sop_class,), query=False,
                          retrieve=False) as one:  # fmt: skip
            return one.store(data)

    def _query(self) -> DimseSession:
        return DimseSession(self.peer, storage_classes=(), retrieve=False)

    def find_studies(self, query: StudyQuery) -> list[StudySummary]:
        """C-FIND at STUDY level."""
        with self._query() as one:
            return one.find_studies(query)

    def find_series(self, study_instance_uid: str) -> list[SeriesSummary]:
        """C-FIND at SERIES level within one study."""
        with self._query() as one:
            return one.find_series(study_instance_uid)

    def find_instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceSummary]:
        """C-FIND at IMAGE (instance) level within one study or series."""
        with self._query() as one:
            return one.find_instances(study_instance_uid, series_instance_uid)

    def locate(self, sop_instance_uid: str) -> InstanceSummary:
        """Study and series of an instance known only by its SOP Instance UID."""
        with self._query() as one:
            return one.locate(sop_instance_uid)

    def get(self, sop_instance_uid: str) -> bytes:
        """C-FIND (where is it) and C-GET one instance over one association; the bytes are the
        object exactly as the PACS sent it."""
        with DimseSession(self.peer) as one:
            return one.get(sop_instance_uid)
