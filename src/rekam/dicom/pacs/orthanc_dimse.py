"""Orthanc (or any DICOM peer) over DIMSE with pynetdicom: C-STORE, C-FIND, C-GET.

C-GET asks the peer to send the object back on the same association, so Rekam needs no
listening port: the association proposes the ECG storage SOP classes with the SCP role and
keeps the object's encoded bytes as received (no decode and re-encode, so signatures stay as
they were).

    >>> pacs = OrthancDimse("127.0.0.1", 4242, called_aet="ORTHANC", calling_aet="REKAM")
    >>> stored = pacs.store(Path("ecg.dcm").read_bytes())  # doctest: +SKIP
    >>> pacs.get(stored.sop_instance_uid)[128:132]  # doctest: +SKIP
    b'DICM'
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from rekam.dicom.errors import DicomError
from rekam.dicom.files import read_dicom
from rekam.dicom.pacs.errors import (
    InstanceNotFound,
    PacsRefused,
    PacsResponseInvalid,
    PacsUnavailable,
)
from rekam.dicom.pacs.interface import (
    InstanceSummary,
    SeriesSummary,
    StoredInstance,
    StudyQuery,
    StudySummary,
)
from rekam.dicom.sop_classes import (
    ECG_SOP_CLASSES,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)

__all__ = ["OrthancDimse"]

_SUCCESS = 0x0000
_PENDING = (0xFF00, 0xFF01)
_TRANSFER_SYNTAXES = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN]


def _text(dataset: Dataset, keyword: str) -> str | None:
    value = dataset.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _values(dataset: Dataset, keyword: str) -> tuple[str, ...]:
    value = dataset.get(keyword)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def _number(dataset: Dataset, keyword: str) -> int | None:
    value = _text(dataset, keyword)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class OrthancDimse:
    """The :class:`~rekam.dicom.pacs.Pacs` interface over DIMSE."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        called_aet: str = "ORTHANC",
        calling_aet: str = "REKAM",
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.called_aet = called_aet
        self.calling_aet = calling_aet
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"OrthancDimse({self.called_aet}@{self.host}:{self.port})"

    # Associations ------------------------------------------------------------------------------

    def _ae(self) -> AE:
        ae = AE(ae_title=self.calling_aet)
        ae.acse_timeout = self.timeout
        ae.dimse_timeout = self.timeout
        ae.network_timeout = self.timeout
        ae.connection_timeout = self.timeout
        return ae

    @contextmanager
    def _association(
        self, ae: AE, *, roles: list[Any] | None = None, handlers: list[Any] | None = None
    ) -> Iterator[Association]:
        assoc = ae.associate(
            self.host,
            self.port,
            ae_title=self.called_aet,
            ext_neg=roles or None,
            evt_handlers=handlers or None,
        )
        if assoc.is_rejected:
            raise PacsRefused(
                f"The PACS {self.called_aet} at {self.host}:{self.port} rejected Rekam's "
                f"association (calling AE title {self.calling_aet}): check that this AE title "
                "is registered with the PACS."
            )
        if not assoc.is_established:
            raise PacsUnavailable(
                f"The PACS at {self.host}:{self.port} cannot be reached over DICOM (no answer or "
                "connection refused): is it running?"
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def echo(self) -> None:
        """C-ECHO: raise unless the PACS answers."""
        ae = self._ae()
        ae.add_requested_context(Verification)
        with self._association(ae) as assoc:
            status = assoc.send_c_echo()
            self._check_status(status, "C-ECHO", assoc)

    # Store -------------------------------------------------------------------------------------

    def store(self, data: bytes) -> StoredInstance:
        """C-STORE one Part 10 object (checked first: bad input never reaches the PACS)."""
        dataset = read_dicom(data)
        sop_class = str(dataset.SOPClassUID)
        ae = self._ae()
        ae.add_requested_context(sop_class, _TRANSFER_SYNTAXES)
        with self._association(ae) as assoc:
            status = assoc.send_c_store(dataset)
            self._check_status(status, "C-STORE", assoc)
        return StoredInstance(
            sop_class_uid=sop_class,
            sop_instance_uid=str(dataset.SOPInstanceUID),
            study_instance_uid=str(dataset.StudyInstanceUID),
            series_instance_uid=str(dataset.SeriesInstanceUID),
        )

    # Find --------------------------------------------------------------------------------------

    def _find(self, identifier: Dataset) -> list[Dataset]:
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        found: list[Dataset] = []
        with self._association(ae) as assoc:
            for status, answer in assoc.send_c_find(
                identifier, StudyRootQueryRetrieveInformationModelFind
            ):
                code = self._check_status(status, "C-FIND", assoc)
                if code in _PENDING:
                    if answer is None:
                        raise PacsResponseInvalid("The PACS sent a C-FIND match without data.")
                    found.append(answer)
        return found

    def find_studies(self, query: StudyQuery) -> list[StudySummary]:
        """C-FIND at STUDY level."""
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        identifier.PatientID = query.patient_id or ""
        identifier.StudyDate = query.study_date or ""
        identifier.AccessionNumber = query.accession_number or ""
        identifier.StudyInstanceUID = query.study_instance_uid or ""
        identifier.PatientName = ""
        identifier.StudyDescription = ""
        identifier.ModalitiesInStudy = ""
        identifier.NumberOfStudyRelatedInstances = ""
        return [
            StudySummary(
                study_instance_uid=self._required(answer, "StudyInstanceUID"),
                study_date=_text(answer, "StudyDate"),
                accession_number=_text(answer, "AccessionNumber"),
                patient_id=_text(answer, "PatientID"),
                patient_name=_text(answer, "PatientName"),
                study_description=_text(answer, "StudyDescription"),
                modalities=_values(answer, "ModalitiesInStudy"),
                number_of_instances=_number(answer, "NumberOfStudyRelatedInstances"),
            )
            for answer in self._find(identifier)
        ]

    def find_series(self, study_instance_uid: str) -> list[SeriesSummary]:
        """C-FIND at SERIES level within one study."""
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "SERIES"
        identifier.StudyInstanceUID = study_instance_uid
        identifier.SeriesInstanceUID = ""
        identifier.Modality = ""
        identifier.SeriesNumber = ""
        identifier.NumberOfSeriesRelatedInstances = ""
        return [
            SeriesSummary(
                study_instance_uid=study_instance_uid,
                series_instance_uid=self._required(answer, "SeriesInstanceUID"),
                modality=_text(answer, "Modality"),
                series_number=_number(answer, "SeriesNumber"),
                number_of_instances=_number(answer, "NumberOfSeriesRelatedInstances"),
            )
            for answer in self._find(identifier)
        ]

    def find_instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceSummary]:
        """C-FIND at IMAGE (instance) level within one study or series."""
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = study_instance_uid
        identifier.SeriesInstanceUID = series_instance_uid or ""
        identifier.SOPInstanceUID = ""
        identifier.SOPClassUID = ""
        identifier.InstanceNumber = ""
        return [self._instance(answer) for answer in self._find(identifier)]

    def _instance(self, answer: Dataset) -> InstanceSummary:
        return InstanceSummary(
            study_instance_uid=self._required(answer, "StudyInstanceUID"),
            series_instance_uid=self._required(answer, "SeriesInstanceUID"),
            sop_instance_uid=self._required(answer, "SOPInstanceUID"),
            sop_class_uid=_text(answer, "SOPClassUID"),
            instance_number=_number(answer, "InstanceNumber"),
        )

    def locate(self, sop_instance_uid: str) -> InstanceSummary:
        """Study and series of an instance known only by its SOP Instance UID."""
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = ""
        identifier.SeriesInstanceUID = ""
        identifier.SOPInstanceUID = sop_instance_uid
        identifier.SOPClassUID = ""
        identifier.InstanceNumber = ""
        matches = [
            self._instance(a)
            for a in self._find(identifier)
            if _text(a, "SOPInstanceUID") == sop_instance_uid
        ]
        if not matches:
            raise InstanceNotFound(
                f"The PACS holds no object with SOP Instance UID {sop_instance_uid}."
            )
        return matches[0]

    # Get ---------------------------------------------------------------------------------------

    def get(self, sop_instance_uid: str) -> bytes:
        """C-GET one instance; the bytes are the object exactly as the PACS sent it."""
        where = self.locate(sop_instance_uid)
        received: list[bytes] = []

        def on_store(event: evt.Event) -> int:
            received.append(event.encoded_dataset())
            return _SUCCESS

        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in ECG_SOP_CLASSES:
            ae.add_requested_context(sop_class, _TRANSFER_SYNTAXES)
        roles = [build_role(sop_class, scp_role=True) for sop_class in ECG_SOP_CLASSES]
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = where.study_instance_uid
        identifier.SeriesInstanceUID = where.series_instance_uid
        identifier.SOPInstanceUID = sop_instance_uid
        with self._association(ae, roles=roles, handlers=[(evt.EVT_C_STORE, on_store)]) as assoc:
            for status, _answer in assoc.send_c_get(
                identifier, StudyRootQueryRetrieveInformationModelGet
            ):
                self._check_status(status, "C-GET", assoc)
        if not received:
            raise InstanceNotFound(
                f"The PACS sent nothing back for SOP Instance UID {sop_instance_uid}."
            )
        data = received[0]
        try:
            dataset = read_dicom(data)
        except DicomError as exc:
            raise PacsResponseInvalid(f"The PACS sent back an unreadable object: {exc}") from exc
        if str(dataset.SOPInstanceUID) != sop_instance_uid:
            raise PacsResponseInvalid("The PACS sent back a different object than asked for.")
        return data

    # Status ------------------------------------------------------------------------------------

    def _check_status(
        self, status: Dataset | None, operation: str, assoc: Association | None = None
    ) -> int:
        if status is None or "Status" not in status:
            if assoc is not None:
                # The peer closed (or aborted) an established association instead of answering:
                # in practice a refusal (Orthanc does this for AE titles it does not allow).
                raise PacsRefused(
                    f"The PACS {self.called_aet} closed the association without answering the "
                    f"{operation} request: it most likely does not allow this from AE title "
                    f"{self.calling_aet} (check the PACS's modality list and its log)."
                )
            raise PacsUnavailable(
                f"The PACS at {self.host}:{self.port} did not answer the {operation} request "
                "(timeout or connection lost)."
            )
        code = int(status.Status)
        if code == _SUCCESS or code in _PENDING:
            return code
        if code in (0xB000, 0xB007, 0xB006):  # warnings: stored with coercion / elements dropped
            return code
        comment = str(status.get("ErrorComment", "")).strip()
        raise PacsRefused(
            f"The PACS refused the {operation} request (status 0x{code:04X}"
            + (f": {comment}" if comment else "")
            + ")."
        )

    @staticmethod
    def _required(answer: Dataset, keyword: str) -> str:
        value = _text(answer, keyword)
        if value is None:
            raise PacsResponseInvalid(f"The PACS answered a query without {keyword}.")
        return value
