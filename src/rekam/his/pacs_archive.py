"""The embedded PACS archive: DICOM ECG objects stored encrypted, indexed in the database.

Each object is checked (a readable DICOM Part 10 file, within the size limit), its DICOM
signatures verified against the clinic's CA when it arrives, and then:

- the file is encrypted in the blob store under the data key of the Rekam patient it belongs to
  (matched by the DICOM Patient ID against the medical record number or NIK, or given by the
  caller), so crypto-erasing the patient makes their ECG files unreadable too. Objects of a DICOM
  patient not (yet) known to Rekam get a data key of that DICOM patient's own;
- one ``pacs_instances`` row keeps the UIDs, study date, modality and signature status in the
  clear (the worklist sorts and filters on them) and the DICOM patient name, patient ID,
  accession number and study description sealed, with blind indexes for exact search.

With an external PACS configured (Orthanc, ``REKAM_PACS=orthanc``) the index stays here, row for
row the same, and the object bytes are sent to that PACS instead of the blob store; opening an
object fetches it from there and checks it against the SHA-256 recorded (sealed) when it was
stored (of the data set: every DICOM transfer rewrites the file meta). Objects that reached the
external PACS by another route (a modality sending to it directly) are indexed with
:meth:`PacsArchiveService.adopt` (``rekam pacs sync``).

Every operation is authorised (``ECG_STUDIES_SEND`` to store, ``ECG_STUDIES_READ`` to search
and read) and written to the audit trail in the same transaction.

    >>> archive = PacsArchiveService.for_clinic(clinic)  # doctest: +SKIP
    >>> stored = archive.store(actor, Path("ecg.dcm").read_bytes())  # doctest: +SKIP
    >>> stored.signature_status, stored.signer  # doctest: +SKIP
    ('valid', 'Dr Ana Cardio (licence LIC-1001)')
    >>> archive.open(actor, stored.sop_instance_uid)[:132][-4:]  # doctest: +SKIP
    b'DICM'
"""

from __future__ import annotations

import hmac
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from cryptography import x509
from pydicom.dataset import Dataset
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rekam.crypto import (
    BlindIndexer,
    CryptoError,
    FieldCipher,
    FieldContext,
    KeyErased,
)
from rekam.dicom import DicomError, SignatureVerdict, read_dicom, verify_dataset
from rekam.dicom.dataset_digest import dataset_sha256
from rekam.dicom.pacs import InstanceNotFound, Pacs, PacsError, StudyQuery, dicom_date_range
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, HisError, NotFound, ValidationFailed
from rekam.his.field_sealing import DataUnreadable, PatientErased, ensure_not_erased, seal, unseal
from rekam.his.orthanc_pacs import open_orthanc
from rekam.his.rbac import Actor, Permission, authorize
from rekam.store import Database
from rekam.store.blobs import EncryptedFileStore
from rekam.store.models import PacsInstance, Patient, new_id
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

__all__ = [
    "MAX_OBJECT_BYTES",
    "ArchivedInstance",
    "ArchivedStudy",
    "ObjectAltered",
    "PacsArchiveService",
    "PacsUnreachable",
    "SignatureCheck",
    "SignatureTrust",
]

#: Largest object the archive accepts (a 10 s 12-lead ECG is about 250 KB; a 24 h Holter
#: object is some tens of MB).
MAX_OBJECT_BYTES = 64 * 1024 * 1024

TABLE = "pacs_instances"
OPENED_COLUMNS = ("dicom_patient_name", "dicom_patient_id", "accession", "study_description")
CONTENT_TYPE = "application/dicom"
_DA = re.compile(r"[0-9]{8}")
_CS = re.compile(r"[A-Z0-9_ ]{1,16}")
#: ``object_name`` of an index row whose bytes live in the external PACS (blob names are hex)
EXTERNAL_OBJECT = "external-pacs"


class PacsUnreachable(HisError):
    """The external PACS could not be reached or refused; nothing was stored or changed."""

    code = "pacs_unavailable"


class ObjectAltered(DataUnreadable):
    """The external PACS returned an object that is not the one stored (its SHA-256 differs
    from the one recorded); ``data`` is what it returned, so its signatures can still be
    examined and shown."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(message, key="pacs.object_altered")
        self.data = data


def _pacs_failed(exc: PacsError) -> PacsUnreachable:
    """A PACS error as the clinic's services report it (the cause is kept for the logs)."""
    return PacsUnreachable(
        f"the PACS cannot be reached or refused the request ({exc}); nothing was changed",
        key="pacs.unreachable",
        reason=str(exc)[:300],
    )


class SignatureCheck(StrEnum):
    """The signature status recorded when the object was stored."""

    VALID = "valid"  #: every signature verified up to the clinic's CA
    INVALID = "invalid"  #: at least one signature failed (the reason says which and why)
    UNSIGNED = "unsigned"  #: no DICOM digital signature at all


@dataclass(frozen=True)
class SignatureTrust:
    """What signatures are checked against: the clinic's root, its issuing CA, its CRL."""

    roots: Sequence[x509.Certificate]
    intermediates: Sequence[x509.Certificate] = ()
    crls: Sequence[x509.CertificateRevocationList] = ()


@dataclass(frozen=True)
class ArchivedInstance:
    """One stored object as the archive describes it (DICOM patient values opened)."""

    id: str
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    study_date: str | None
    modality: str | None
    patient_id: str | None
    """The Rekam patient this object belongs to, when matched."""
    dicom_patient_name: str | None
    dicom_patient_id: str | None
    accession_number: str | None
    study_description: str | None
    signature_status: SignatureCheck
    signer: str | None
    signature_reason: str | None
    size: int
    stored_by: str
    stored_at: datetime
    erased: bool = False
    """The owner's data key was destroyed: DICOM patient values are ``None``, the file cannot
    be opened."""


@dataclass(frozen=True)
class ArchivedStudy:
    """One study of the worklist: its instances, newest first, and a summary status.

    ``signature_status`` is ``invalid`` if any instance's signature failed, else ``unsigned``
    if any instance is unsigned, else ``valid``."""

    study_instance_uid: str
    study_date: str | None
    patient_id: str | None
    dicom_patient_name: str | None
    dicom_patient_id: str | None
    accession_number: str | None
    study_description: str | None
    signature_status: SignatureCheck
    last_stored_at: datetime
    instances: tuple[ArchivedInstance, ...] = field(default=())


@dataclass(frozen=True)
class _Checked:
    status: SignatureCheck
    signer: str | None
    reason: str | None


def _text(dataset: Dataset, keyword: str, limit: int) -> str | None:
    value = dataset.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] or None


def _printable(text: str | None) -> str | None:
    """``text`` without control characters (PostgreSQL refuses NUL in text columns)."""
    if text is None:
        return None
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)


def _study_date(dataset: Dataset) -> str | None:
    """The Study Date when it is a real ``YYYYMMDD`` date (the index filters on it), else None."""
    value = _text(dataset, "StudyDate", 9)
    if value is None or _DA.fullmatch(value) is None:
        return None
    try:
        dicom_date_range(value)
    except ValueError:
        return None
    return value


def _modality(dataset: Dataset) -> str | None:
    """The Modality when it is a well-formed code string (``ECG``, ``HD``), else None."""
    value = _text(dataset, "Modality", 17)
    return value if value is not None and _CS.fullmatch(value) else None


def _uid(dataset: Dataset, keyword: str, what: str) -> str:
    value = _text(dataset, keyword, 65)
    if not value or len(value) > 64 or not all(c.isdigit() or c == "." for c in value):
        raise ValidationFailed(
            f"the object has no valid {what}; it was not stored", field="file", key="pacs.no_uid"
        )
    return value


def _signature_check(verdicts: list[SignatureVerdict]) -> _Checked:
    if not verdicts:
        return _Checked(SignatureCheck.UNSIGNED, None, "the object carries no DICOM signature")
    failing = [v for v in verdicts if not v.valid]
    chosen = failing[0] if failing else verdicts[0]
    signer = chosen.signer_name
    if signer and chosen.licence_number:
        signer = f"{signer} (licence {chosen.licence_number})"
    status = SignatureCheck.INVALID if failing else SignatureCheck.VALID
    reason = f"{chosen.status.value}: {chosen.reason}"
    return _Checked(status, _printable(signer[:300]) if signer else None, _printable(reason[:500]))


class PacsArchiveService:
    """Store, find and read DICOM objects in the embedded, encrypted archive."""

    def __init__(
        self,
        database: Database,
        fields: FieldCipher,
        indexer: BlindIndexer,
        files: EncryptedFileStore,
        trust: SignatureTrust,
        clock: Callable[[], datetime] = utc_now,
        max_object_bytes: int = MAX_OBJECT_BYTES,
        objects: Pacs | None = None,
    ) -> None:
        """``objects``: the external PACS that holds the object bytes (None: the encrypted
        blob store ``files``)."""
        self.database = database
        self.fields = fields
        self.indexer = indexer
        self.files = files
        self.trust = trust
        self.clock = clock
        self.max_object_bytes = max_object_bytes
        self.objects = objects

    @classmethod
    def for_clinic(cls, clinic: Clinic, objects: Pacs | None = None) -> PacsArchiveService:
        """The archive of one installation, trusting signatures made under its CA, keeping
        object bytes where the settings say (``objects``: an open Orthanc connection to use)."""
        if objects is None and clinic.settings.pacs == "orthanc":
            objects = open_orthanc(clinic.settings)
        pki = clinic.pki
        roots = [pki.load_root_certificate()]
        intermediates = (
            [x509.load_pem_x509_certificate(pki.issuing_certificate_path.read_bytes())]
            if pki.issuing_certificate_path.exists()
            else []
        )
        crls = [x509.load_pem_x509_crl(pki.crl_path.read_bytes())] if pki.crl_path.exists() else []
        return cls(
            clinic.database,
            clinic.fields,
            clinic.indexer,
            clinic.files,
            SignatureTrust(roots, intermediates, crls),
            objects=objects,
        )

    # Storing -----------------------------------------------------------------------------------

    def store(
        self, actor: Actor, data: bytes, *, patient_id: str | None = None
    ) -> ArchivedInstance:
        """Verify and store one DICOM Part 10 object; returns what was recorded.

        ``patient_id`` names the Rekam patient when the caller knows it; otherwise the DICOM
        Patient ID is matched against medical record numbers and NIKs. Refused with a clear
        error, and nothing stored, for non-DICOM, truncated or oversized data, an object without
        UIDs, a SOP Instance UID already archived (``Conflict``) or an erased patient; with an
        external PACS, ``PacsUnreachable`` when it cannot be reached or refuses (not indexed).
        """
        return self._store(actor, data, patient_id, send=True)

    def adopt(self, actor: Actor, data: bytes) -> ArchivedInstance:
        """Index an object the external PACS already holds (it arrived there by another route,
        e.g. a modality sending to Orthanc directly): verified and indexed like a stored one,
        its bytes left where they are."""
        if self.objects is None:
            raise ValidationFailed(
                "no external PACS is configured; objects of the embedded archive are indexed "
                "when they are stored",
                key="pacs.no_external",
            )
        return self._store(actor, data, None, send=False)

    def is_indexed(self, sop_instance_uid: str) -> bool:
        """Whether the index already holds this SOP Instance UID (no audit: no content)."""
        with self.database.transaction() as session:
            return (
                session.scalar(
                    select(PacsInstance.id).where(
                        PacsInstance.sop_instance_uid == sop_instance_uid.strip()
                    )
                )
                is not None
            )

    def _store(
        self, actor: Actor, data: bytes, patient_id: str | None, *, send: bool
    ) -> ArchivedInstance:
        authorize(actor, Permission.ECG_STUDIES_SEND)
        if len(data) > self.max_object_bytes:
            raise ValidationFailed(
                f"the file is {len(data) / 1e6:.1f} MB, more than the "
                f"{self.max_object_bytes / 1e6:.0f} MB the archive accepts; it was not stored",
                field="file",
                key="pacs.too_large",
            )
        try:
            dataset = read_dicom(data, max_bytes=self.max_object_bytes)
        except DicomError as exc:
            raise ValidationFailed(
                f"{exc} It was not stored.", field="file", key="pacs.not_dicom"
            ) from exc
        sop_instance_uid = _uid(dataset, "SOPInstanceUID", "SOP Instance UID")
        sop_class_uid = _uid(dataset, "SOPClassUID", "SOP Class UID")
        study_uid = _uid(dataset, "StudyInstanceUID", "Study Instance UID")
        series_uid = _uid(dataset, "SeriesInstanceUID", "Series Instance UID")
        study_date = _study_date(dataset)
        try:
            checked = _signature_check(
                verify_dataset(dataset, self.trust.roots, self.trust.intermediates, self.trust.crls)
            )
        except DicomError as exc:
            checked = _Checked(SignatureCheck.INVALID, None, _printable(str(exc)[:500]))
        dicom_patient_id = _text(dataset, "PatientID", 64)
        with self.database.transaction() as session:
            if session.scalar(
                select(PacsInstance.id).where(PacsInstance.sop_instance_uid == sop_instance_uid)
            ):
                raise Conflict(
                    "an object with this SOP Instance UID is already in the archive",
                    key="pacs.duplicate",
                )
            patient = self._owner(session, patient_id, dicom_patient_id)
        row_id = new_id()
        key_patient_id = patient.id if patient is not None else self._dicom_key_owner(
            dicom_patient_id, study_uid
        )  # fmt: skip
        if self.objects is not None:
            # the data set's digest: a DICOM transfer rewrites the file meta, never the data set
            object_name, sha256 = EXTERNAL_OBJECT, dataset_sha256(data)
            if send:
                self._send(data, sop_instance_uid)
        else:
            try:
                stored = self.files.save(
                    io.BytesIO(data), self._file_context(row_id, key_patient_id), CONTENT_TYPE
                )
            except KeyErased as exc:
                raise PatientErased(
                    f"this patient's data was crypto-erased: {exc}", key="patient.erased"
                ) from exc
            object_name, sha256 = stored.name, stored.sha256
        now = self.clock()
        row = PacsInstance(
            id=row_id,
            sop_instance_uid=sop_instance_uid,
            sop_class_uid=sop_class_uid,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            study_date=study_date,
            modality=_modality(dataset),
            patient_id=patient.id if patient is not None else None,
            key_patient_id=key_patient_id,
            signature_status=checked.status.value,
            signer=checked.signer,
            signature_reason=checked.reason,
            object_name=object_name,
            size=len(data),
            stored_by=actor.username[:64],
            stored_at=now,
        )
        sealed = {
            "dicom_patient_name": _text(dataset, "PatientName", 200),
            "dicom_patient_id": dicom_patient_id,
            "accession": _text(dataset, "AccessionNumber", 64),
            "study_description": _text(dataset, "StudyDescription", 200),
            "sha256": sha256,
        }
        for column, value in sealed.items():
            setattr(row, f"{column}_enc", self._seal(row, column, value))
        row.dicom_patient_id_index = self._index("dicom-patient-id", dicom_patient_id)
        row.accession_index = self._index("accession", sealed["accession"])
        try:
            with self.database.transaction(write=True) as session:
                session.add(row)
                session.flush()
                append_audit(
                    session,
                    actor,
                    AuditEvent(
                        "pacs.store" if send else "pacs.adopt",
                        patient_id=row.patient_id,
                        record=row.id,
                        detail=f"signature {checked.status.value}"
                        + ("; object held by the external PACS" if self.objects else ""),
                    ),
                )
        except IntegrityError as exc:
            self._forget(object_name)
            raise Conflict(
                "an object with this SOP Instance UID is already in the archive",
                key="pacs.duplicate",
            ) from exc
        except BaseException:
            self._forget(object_name)  # no orphan ciphertext
            raise
        return self._describe(row)

    def _forget(self, object_name: str) -> None:
        """Delete the ciphertext of a row that was not written. An object already sent to the
        external PACS stays there (the interface has no delete); ``rekam pacs sync`` indexes
        it later."""
        if object_name != EXTERNAL_OBJECT:
            self.files.delete(object_name, missing_ok=True)

    def _send(self, data: bytes, sop_instance_uid: str) -> None:
        assert self.objects is not None
        try:
            sent = self.objects.store(data)
        except PacsError as exc:
            raise _pacs_failed(exc) from exc
        if sent.sop_instance_uid != sop_instance_uid:
            raise PacsUnreachable(
                "the PACS acknowledged a different object than the one sent; it was not indexed",
                key="pacs.unreachable",
                reason="SOP Instance UID mismatch",
            )

    def _owner(
        self, session: Session, patient_id: str | None, dicom_patient_id: str | None
    ) -> Patient | None:
        if patient_id is not None:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise NotFound("no such patient", key="patient.not_found")
        elif dicom_patient_id:
            patient = session.scalar(
                select(Patient).where(
                    Patient.medical_record_number == dicom_patient_id.strip().upper()
                )
            ) or session.scalar(
                select(Patient).where(
                    Patient.nik_index == self.indexer.index("nik", dicom_patient_id),
                    Patient.erased_at.is_(None),
                )
            )
        else:
            patient = None
        if patient is not None:
            ensure_not_erased(patient)
        return patient

    def _dicom_key_owner(self, dicom_patient_id: str | None, study_uid: str) -> str:
        """The key owner of objects no Rekam patient claims: one per DICOM patient (or per
        study when the object names no patient), named by a blind index so the name reveals
        nothing."""
        if dicom_patient_id:
            index = self.indexer.index("dicom-patient-id", dicom_patient_id)
        else:
            index = self.indexer.index("dicom-study", study_uid)
        return f"dicom-{index.hex()}"

    # Reading -----------------------------------------------------------------------------------

    def instance(self, actor: Actor, sop_instance_uid: str) -> ArchivedInstance:
        """The description of one stored object (no file content)."""
        authorize(actor, Permission.ECG_STUDIES_READ)
        with self.database.transaction(write=True) as session:
            row = self._row(session, sop_instance_uid)
            append_audit(
                session,
                actor,
                AuditEvent("pacs.describe", patient_id=row.patient_id, record=row.id),
            )
            return self._describe(row)

    def open(self, actor: Actor, sop_instance_uid: str) -> bytes:
        """The stored object, byte for byte as it was received (so its signatures verify).

        ``NotFound`` when absent; ``PatientErased`` when its data key was destroyed;
        ``DataUnreadable`` when the stored file was altered or replaced."""
        authorize(actor, Permission.ECG_STUDIES_READ)
        with self.database.transaction(write=True) as session:
            row = self._row(session, sop_instance_uid)
            if row.patient_id is not None:
                patient = session.get(Patient, row.patient_id)
                if patient is not None:
                    ensure_not_erased(patient)
            append_audit(
                session, actor, AuditEvent("pacs.read", patient_id=row.patient_id, record=row.id)
            )
        expected = self._open_text(row, "sha256")
        if row.object_name == EXTERNAL_OBJECT:
            return self._fetch(row.sop_instance_uid, expected)
        buffer = io.BytesIO()
        try:
            self.files.load_to(
                row.object_name, self._file_context(row.id, row.key_patient_id), buffer, expected
            )
        except KeyErased as exc:
            raise PatientErased(
                f"this patient's data was crypto-erased: {exc}", key="patient.erased"
            ) from exc
        except CryptoError as exc:
            raise DataUnreadable(
                f"the stored DICOM file cannot be opened: {exc}", key="patient.unreadable"
            ) from exc
        return buffer.getvalue()

    def _fetch(self, sop_instance_uid: str, expected_sha256: str | None) -> bytes:
        """The object from the external PACS, checked against the SHA-256 recorded."""
        if self.objects is None:
            raise PacsUnreachable(
                "this object is kept by an external PACS, and none is configured now",
                key="pacs.not_configured",
            )
        try:
            data = self.objects.get(sop_instance_uid)
        except InstanceNotFound as exc:
            raise DataUnreadable(
                "the PACS no longer holds this object (it was deleted there)",
                key="pacs.object_missing",
            ) from exc
        except PacsError as exc:
            raise _pacs_failed(exc) from exc
        try:
            digest = dataset_sha256(data)
        except DicomError:
            digest = ""
        if expected_sha256 is None or not hmac.compare_digest(digest, expected_sha256.lower()):
            raise ObjectAltered(
                "the PACS returned an object that is not the one stored (its SHA-256 differs "
                "from the one recorded when it was stored)",
                data,
            )
        return data

    def find(
        self,
        actor: Actor,
        query: StudyQuery,
        *,
        patient_id: str | None = None,
        signature_status: SignatureCheck | None = None,
        limit: int = 200,
    ) -> list[ArchivedInstance]:
        """Instances matching every key of ``query`` (DICOM Patient ID, study date or range,
        accession number, Study Instance UID), optionally of one Rekam patient or signature
        status; newest first."""
        authorize(actor, Permission.ECG_STUDIES_READ)
        statement = self._filtered(query, patient_id, signature_status)
        with self.database.transaction(write=True) as session:
            rows = list(
                session.scalars(
                    statement.order_by(PacsInstance.stored_at.desc()).limit(
                        max(1, min(limit, 1000))
                    )
                )
            )
            append_audit(
                session,
                actor,
                AuditEvent("pacs.search", patient_id=patient_id, detail=f"{len(rows)} found"),
            )
            return [self._describe(row) for row in rows]

    def worklist(
        self,
        actor: Actor,
        *,
        signature_status: SignatureCheck | None = None,
        limit: int = 50,
    ) -> list[ArchivedStudy]:
        """The most recently stored studies, newest first, each with its instances (for the
        specialist's worklist)."""
        authorize(actor, Permission.ECG_STUDIES_READ)
        limit = max(1, min(limit, 500))
        with self.database.transaction(write=True) as session:
            recent = session.execute(
                select(PacsInstance.study_instance_uid, PacsInstance.stored_at).order_by(
                    PacsInstance.stored_at.desc()
                )
            )
            study_uids: list[str] = []
            for study_uid, _at in recent:
                if study_uid not in study_uids:
                    study_uids.append(study_uid)
                if len(study_uids) >= limit * 4:
                    break
            rows = list(
                session.scalars(
                    select(PacsInstance)
                    .where(PacsInstance.study_instance_uid.in_(study_uids))
                    .order_by(PacsInstance.stored_at.desc())
                )
            ) if study_uids else []  # fmt: skip
            append_audit(
                session, actor, AuditEvent("pacs.worklist", detail=f"{len(study_uids)} studies")
            )
            instances = [self._describe(row) for row in rows]
        studies = [s for s in _group_studies(instances, study_uids)]
        if signature_status is not None:
            studies = [s for s in studies if s.signature_status is signature_status]
        return studies[:limit]

    # Internals ---------------------------------------------------------------------------------

    def _filtered(
        self,
        query: StudyQuery,
        patient_id: str | None,
        signature_status: SignatureCheck | None,
    ) -> Select[PacsInstance]:
        statement = select(PacsInstance)
        if query.patient_id:
            statement = statement.where(
                PacsInstance.dicom_patient_id_index
                == self.indexer.index("dicom-patient-id", query.patient_id)
            )
        if query.accession_number:
            statement = statement.where(
                PacsInstance.accession_index
                == self.indexer.index("accession", query.accession_number)
            )
        if query.study_instance_uid:
            statement = statement.where(
                PacsInstance.study_instance_uid == query.study_instance_uid.strip()
            )
        if query.study_date:
            first, last = dicom_date_range(query.study_date)
            if first:
                statement = statement.where(PacsInstance.study_date >= first)
            if last:
                statement = statement.where(PacsInstance.study_date <= last)
        if patient_id:
            statement = statement.where(PacsInstance.patient_id == patient_id)
        if signature_status is not None:
            statement = statement.where(PacsInstance.signature_status == signature_status.value)
        return statement

    def _row(self, session: Session, sop_instance_uid: str) -> PacsInstance:
        row = session.scalar(
            select(PacsInstance).where(PacsInstance.sop_instance_uid == sop_instance_uid.strip())
        )
        if row is None:
            raise NotFound("no DICOM object with this SOP Instance UID", key="pacs.not_found")
        return row

    @staticmethod
    def _file_context(row_id: str, key_patient_id: str) -> FieldContext:
        return FieldContext(TABLE, "content", row_id, key_patient_id)

    def _index(self, kind: str, value: str | None) -> bytes | None:
        return self.indexer.index(kind, value) if value else None

    def _seal(self, row: PacsInstance, column: str, value: str | None) -> bytes | None:
        return seal(self.fields, TABLE, column, row.id, row.key_patient_id, value)

    def _open_text(self, row: PacsInstance, column: str) -> str | None:
        sealed: bytes | None = getattr(row, f"{column}_enc")
        return unseal(self.fields, TABLE, column, row.id, row.key_patient_id, sealed)

    def _describe(self, row: PacsInstance) -> ArchivedInstance:
        try:
            opened = {column: self._open_text(row, column) for column in OPENED_COLUMNS}
            erased = False
        except PatientErased:
            opened, erased = {}, True
        return ArchivedInstance(
            id=row.id,
            sop_instance_uid=row.sop_instance_uid,
            sop_class_uid=row.sop_class_uid,
            study_instance_uid=row.study_instance_uid,
            series_instance_uid=row.series_instance_uid,
            study_date=row.study_date,
            modality=row.modality,
            patient_id=row.patient_id,
            dicom_patient_name=opened.get("dicom_patient_name"),
            dicom_patient_id=opened.get("dicom_patient_id"),
            accession_number=opened.get("accession"),
            study_description=opened.get("study_description"),
            signature_status=SignatureCheck(row.signature_status),
            signer=row.signer,
            signature_reason=row.signature_reason,
            size=row.size,
            stored_by=row.stored_by,
            stored_at=row.stored_at,
            erased=erased,
        )


def _group_studies(instances: list[ArchivedInstance], order: list[str]) -> list[ArchivedStudy]:
    by_study: dict[str, list[ArchivedInstance]] = {}
    for item in instances:
        by_study.setdefault(item.study_instance_uid, []).append(item)
    studies = []
    for study_uid in order:
        members = by_study.get(study_uid)
        if not members:
            continue
        statuses = {m.signature_status for m in members}
        status = (
            SignatureCheck.INVALID
            if SignatureCheck.INVALID in statuses
            else SignatureCheck.UNSIGNED
            if SignatureCheck.UNSIGNED in statuses
            else SignatureCheck.VALID
        )
        first = members[0]
        studies.append(
            ArchivedStudy(
                study_instance_uid=study_uid,
                study_date=first.study_date,
                patient_id=first.patient_id,
                dicom_patient_name=first.dicom_patient_name,
                dicom_patient_id=first.dicom_patient_id,
                accession_number=first.accession_number,
                study_description=first.study_description,
                signature_status=status,
                last_stored_at=max(m.stored_at for m in members),
                instances=tuple(members),
            )
        )
    return studies
