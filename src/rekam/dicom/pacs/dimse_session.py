"""One DIMSE association reused for many operations: C-STORE, C-FIND, C-GET, C-ECHO.

Opening an association costs a TCP connection and an A-ASSOCIATE exchange; releasing it costs
another exchange. A session opens one association at its first operation and keeps it for every
operation that follows, so sending a batch of files or fetching a study pays that once. When the
peer has closed the association in between (idle timeout, restart), the next operation opens a
new one.

Every association Rekam opens sends without Nagle's algorithm (``TCP_NODELAY``): DIMSE writes a
message as several small pieces (the command, then the data set), and with Nagle each piece after
the first waits for the peer's delayed acknowledgement, about 40 ms on Linux, on every message.

pynetdicom runs a service loop on each association that takes incoming DIMSE messages off the
queue to serve requests from the peer. Between two operations on the same association that loop
can wake up late and take the reply meant for the next operation ("Received unexpected C-FIND
service message", pydicom/pynetdicom#875): the operation then sees an empty answer. A session
only ever asks (the C-STORE sub-operations of a C-GET are handled by the C-GET itself), so it
parks that loop for the association's lifetime; before each operation it checks itself whether
the peer has closed the association.

A session is used by one thread at a time.

    >>> peer = DimsePeer("127.0.0.1", 4242, called_aet="ORTHANC", calling_aet="REKAM")
    >>> with DimseSession(peer) as session:  # doctest: +SKIP
    ...     stored = [session.store(data) for data in objects]
    ...     back = session.get(stored[0].sop_instance_uid)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE
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

__all__ = ["DimsePeer", "DimseSession"]

_T = TypeVar("_T")
_SUCCESS = 0x0000
_PENDING = (0xFF00, 0xFF01)
_WARNINGS = (0xB000, 0xB007, 0xB006)  # stored with coercion / elements dropped
_TRANSFER_SYNTAXES = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN]


@dataclass(frozen=True)
class DimsePeer:
    """Where a DICOM peer listens and how Rekam introduces itself to it."""

    host: str
    port: int
    called_aet: str = "ORTHANC"
    calling_aet: str = "REKAM"
    timeout: float = 30.0

    def __str__(self) -> str:
        return f"{self.called_aet}@{self.host}:{self.port}"


class _ParkedServiceLoop(threading.Event):
    """Stands in for an association's service-loop checkpoint: the loop, once it waits here,
    stays parked until the association ends, so no reply can be taken from the operation that
    asked for it."""

    def __init__(self, assoc: Association) -> None:
        super().__init__()
        self._assoc = assoc
        self.parked = threading.Event()

    def _association_ending(self) -> bool:
        assoc = self._assoc
        return bool(
            assoc._kill
            or assoc._sent_abort
            or assoc.is_released
            or assoc.is_aborted
            or not assoc.dul.is_alive()
        )

    def wait(self, timeout: float | None = None) -> bool:
        self.parked.set()
        while not self._association_ending():
            time.sleep(0.05)
        return True


def _park_service_loop(assoc: Association, timeout: float) -> None:
    checkpoint = _ParkedServiceLoop(assoc)
    assoc._reactor_checkpoint = checkpoint
    if not checkpoint.parked.wait(timeout):
        assoc.abort()
        raise PacsUnavailable("The DICOM association did not settle; try again.")


def _peer_has_closed(assoc: Association) -> bool:
    """Whether the peer aborted, asked to release, or the connection is gone (read without
    taking anything off the queue)."""
    if not assoc.is_established or not assoc.dul.is_alive():
        return True
    waiting: object = assoc.dul.peek_next_pdu()
    return isinstance(waiting, A_ABORT | A_P_ABORT) or (
        # A release request (not a reply to ours) carries no result yet.
        isinstance(waiting, A_RELEASE) and waiting.result is None
    )


def _send_without_delay(event: evt.Event) -> None:
    """On connection: turn Nagle's algorithm off for this association's socket."""
    transport = event.assoc.dul.socket
    sock = transport.socket if transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _AssociationDropped(PacsRefused):
    """The peer closed the association instead of answering."""


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


def _required(answer: Dataset, keyword: str) -> str:
    value = _text(answer, keyword)
    if value is None:
        raise PacsResponseInvalid(f"The PACS answered a query without {keyword}.")
    return value


class DimseSession:
    """The :class:`~rekam.dicom.pacs.Pacs` interface over one reused DIMSE association.

    ``storage_classes`` are the SOP classes proposed for C-STORE (and, when ``retrieve`` is
    true, for the C-STORE sub-operations of C-GET, with the SCP role); an object of another
    class is stored over an association of its own. ``query`` proposes C-FIND, ``retrieve``
    C-FIND and C-GET, ``verify`` C-ECHO.
    """

    def __init__(
        self,
        peer: DimsePeer,
        *,
        storage_classes: Collection[str] = tuple(ECG_SOP_CLASSES),
        query: bool = True,
        retrieve: bool = True,
        verify: bool = False,
        transfer_syntaxes: Collection[str] = tuple(_TRANSFER_SYNTAXES),
    ) -> None:
        self.peer = peer
        self.storage_classes = tuple(storage_classes)
        self.query = query or retrieve
        self.retrieve = retrieve
        self.verify = verify
        self.transfer_syntaxes = list(transfer_syntaxes)
        self.associations_opened = 0
        """How many associations this session has opened so far (1 unless the peer closed
        one in between)."""
        self._assoc: Association | None = None
        self._received: list[bytes] = []

    def __repr__(self) -> str:
        return f"DimseSession({self.peer})"

    def __enter__(self) -> DimseSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the association (if one is open)."""
        assoc, self._assoc = self._assoc, None
        if assoc is not None and assoc.is_established:
            assoc.release()

    # Associations ------------------------------------------------------------------------------

    def _ae(self) -> AE:
        ae = AE(ae_title=self.peer.calling_aet)
        ae.acse_timeout = self.peer.timeout
        ae.dimse_timeout = self.peer.timeout
        ae.network_timeout = self.peer.timeout
        ae.connection_timeout = self.peer.timeout
        if self.verify:
            ae.add_requested_context(Verification)
        if self.query:
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        if self.retrieve:
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for sop_class in self.storage_classes:
            ae.add_requested_context(sop_class, self.transfer_syntaxes)
        return ae

    def _association(self) -> Association:
        """The open association, opening a new one if there is none (or the peer closed it)."""
        if self._assoc is not None:
            if not _peer_has_closed(self._assoc):
                return self._assoc
            self._assoc.abort()
        self._assoc = None
        roles: list[Any] = []
        handlers: list[Any] = [(evt.EVT_CONN_OPEN, _send_without_delay)]
        if self.retrieve:
            # C-GET: the peer sends the objects back over this association, as a C-STORE
            # requestor; Rekam takes the storage SCP role for them (and keeps its SCU role).
            roles = [
                build_role(sop_class, scu_role=True, scp_role=True)
                for sop_class in self.storage_classes
            ]
            handlers.append((evt.EVT_C_STORE, self._on_store))
        assoc = self._ae().associate(
            self.peer.host,
            self.peer.port,
            ae_title=self.peer.called_aet,
            ext_neg=roles or None,
            evt_handlers=handlers,
        )
        if assoc.is_rejected:
            raise PacsRefused(
                f"The PACS {self.peer.called_aet} at {self.peer.host}:{self.peer.port} rejected "
                f"Rekam's association (calling AE title {self.peer.calling_aet}): check that "
                "this AE title is registered with the PACS."
            )
        if not assoc.is_established:
            raise PacsUnavailable(
                f"The PACS at {self.peer.host}:{self.peer.port} cannot be reached over DICOM (no "
                "answer or connection refused): is it running?"
            )
        _park_service_loop(assoc, self.peer.timeout)
        self.associations_opened += 1
        self._assoc = assoc
        return assoc

    def _run(self, work: Callable[[Association], _T]) -> _T:
        """``work`` on the open association; once more on a new one if a reused association
        turns out to have been closed by the peer (every DIMSE operation here is idempotent:
        storing the same object twice keeps one)."""
        reused = self._assoc is not None and not _peer_has_closed(self._assoc)
        try:
            return work(self._association())
        except _AssociationDropped:
            if not reused:
                raise
        return work(self._association())

    def _on_store(self, event: evt.Event) -> int:
        self._received.append(event.encoded_dataset())
        return _SUCCESS

    def _accepts_storage(self, assoc: Association, sop_class: str, transfer_syntax: str) -> bool:
        return any(
            context.abstract_syntax == sop_class
            and context.as_scu
            and transfer_syntax in context.transfer_syntax
            for context in assoc.accepted_contexts
        )

    # Verify ------------------------------------------------------------------------------------

    def echo(self) -> None:
        """C-ECHO: raise unless the PACS answers."""
        if not self.verify:
            with DimseSession(self.peer, storage_classes=(), retrieve=False, query=False,
                              verify=True) as one:  # fmt: skip
                one.echo()
            return
        self._run(lambda assoc: self._check_status(assoc.send_c_echo(), "C-ECHO", assoc))

    # Store -------------------------------------------------------------------------------------

    def store(self, data: bytes) -> StoredInstance:
        """C-STORE one Part 10 object (checked first: bad input never reaches the PACS)."""
        dataset = read_dicom(data)
        sop_class = str(dataset.SOPClassUID)
        transfer_syntax = str(dataset.file_meta.TransferSyntaxUID)
        if sop_class in self.storage_classes:

            def send(assoc: Association) -> bool:
                if not self._accepts_storage(assoc, sop_class, transfer_syntax):
                    return False
                self._check_status(assoc.send_c_store(dataset), "C-STORE", assoc)
                return True

            if self._run(send):
                return self._stored(dataset)
        # A class (or transfer syntax) this association did not negotiate: one of its own.
        syntaxes = [transfer_syntax] + [t for t in _TRANSFER_SYNTAXES if t != transfer_syntax]
        with DimseSession(self.peer, storage_classes=(sop_class,), query=False, retrieve=False,
                          transfer_syntaxes=syntaxes) as one:  # fmt: skip
            assoc = one._association()
            if not one._accepts_storage(assoc, sop_class, transfer_syntax):
                raise PacsRefused(
                    f"The PACS {self.peer.called_aet} does not accept objects of SOP class "
                    f"{sop_class} in transfer syntax {transfer_syntax}."
                )
            self._check_status(assoc.send_c_store(dataset), "C-STORE", assoc)
        return self._stored(dataset)

    @staticmethod
    def _stored(dataset: Dataset) -> StoredInstance:
        return StoredInstance(
            sop_class_uid=str(dataset.SOPClassUID),
            sop_instance_uid=str(dataset.SOPInstanceUID),
            study_instance_uid=str(dataset.StudyInstanceUID),
            series_instance_uid=str(dataset.SeriesInstanceUID),
        )

    # Find --------------------------------------------------------------------------------------

    def _find(self, identifier: Dataset) -> list[Dataset]:
        if not self.query:
            raise PacsRefused("This DIMSE session was opened for storing only, not for queries.")

        def find(assoc: Association) -> list[Dataset]:
            found: list[Dataset] = []
            for status, answer in assoc.send_c_find(
                identifier, StudyRootQueryRetrieveInformationModelFind
            ):
                code = self._check_status(status, "C-FIND", assoc)
                if code in _PENDING:
                    if answer is None:
                        raise PacsResponseInvalid("The PACS sent a C-FIND match without data.")
                    found.append(answer)
            return found

        return self._run(find)

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
                study_instance_uid=_required(answer, "StudyInstanceUID"),
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
                series_instance_uid=_required(answer, "SeriesInstanceUID"),
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

    @staticmethod
    def _instance(answer: Dataset) -> InstanceSummary:
        return InstanceSummary(
            study_instance_uid=_required(answer, "StudyInstanceUID"),
            series_instance_uid=_required(answer, "SeriesInstanceUID"),
            sop_instance_uid=_required(answer, "SOPInstanceUID"),
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
        if not self.retrieve:
            raise PacsRefused("This DIMSE session was opened without C-GET.")
        where = self.locate(sop_instance_uid)
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "IMAGE"
        identifier.StudyInstanceUID = where.study_instance_uid
        identifier.SeriesInstanceUID = where.series_instance_uid
        identifier.SOPInstanceUID = sop_instance_uid

        def fetch(assoc: Association) -> list[bytes]:
            self._received = []
            for status, _answer in assoc.send_c_get(
                identifier, StudyRootQueryRetrieveInformationModelGet
            ):
                self._check_status(status, "C-GET", assoc)
            received, self._received = self._received, []
            return received

        received = self._run(fetch)
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

    def _check_status(self, status: Dataset | None, operation: str, assoc: Association) -> int:
        if status is None or "Status" not in status:
            if assoc.is_established:
                assoc.abort()  # out of step with the peer: the next operation starts afresh
            # The peer closed (or aborted) the association instead of answering: on a fresh
            # association, in practice a refusal (Orthanc does this for AE titles it does not
            # allow); on a reused one it may simply have timed out while idle.
            raise _AssociationDropped(
                f"The PACS {self.peer.called_aet} closed the association without answering the "
                f"{operation} request: it most likely does not allow this from AE title "
                f"{self.peer.calling_aet} (check the PACS's modality list and its log)."
            )
        code = int(status.Status)
        if code == _SUCCESS or code in _PENDING or code in _WARNINGS:
            return code
        comment = str(status.get("ErrorComment", "")).strip()
        raise PacsRefused(
            f"The PACS refused the {operation} request (status 0x{code:04X}"
            + (f": {comment}" if comment else "")
            + ")."
        )
