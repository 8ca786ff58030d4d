"""The specialist's ECG workflow: the worklist, opening a study (its signatures verified again at
that moment), reporting on it, and sending a recording in as a GP.

Built on the PACS archive (:class:`~rekam.his.pacs_archive.PacsArchiveService`): it indexes the
DICOM files in Rekam's database and keeps their bytes in the configured PACS (the embedded
encrypted blob store, or Orthanc over DIMSE or DICOMweb); this service adds what the people using
them do, the same in every mode.

- **Opening** a study reads the stored object (from wherever it lives) and verifies every DICOM
  signature against the clinic's CA there and then; the status recorded when it was stored is
  shown next to it but is never trusted alone. An object an external PACS returns altered (its
  SHA-256 differs from the one recorded) is shown as not verifiable.
- **Reporting** records the specialist's interpretation, sealed under the data key of the
  object's owner, and audited. It is refused for an object whose signature does not verify
  (invalid, or no signature at all) unless the doctor holds ``ECG_SIGNATURE_OVERRIDE`` and types
  a reason; the override is written to the audit trail and shown on the study afterwards.
- **Sending** takes a DICOM object as it is (already signed or not), or converts an SCP-ECG or
  CSV recording to a DICOM 12-lead ECG for a Rekam patient and signs it with the GP's signing key
  when one is given (used in memory only, never stored).
"""

from __future__ import annotations

import datetime
import re
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from sqlalchemy import select

from rekam.crypto import FieldCipher
from rekam.dicom import (
    DicomError,
    DicomSigner,
    PatientInfo,
    SignatureVerdict,
    StudyInfo,
    dataset_to_bytes,
    dicom_to_recording,
    read_dicom,
    recording_to_dicom,
    sign_dataset,
    verify_dataset,
)
from rekam.dicom.pacs import StudyQuery
from rekam.dicom.uids import UUID_UID_ROOT
from rekam.ecg import EcgError, Recording, parse_scp_ecg, read_csv, read_wfdb
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import NotFound, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import PatientErased, seal, unseal
from rekam.his.pacs_archive import (
    ArchivedInstance,
    ArchivedStudy,
    ObjectAltered,
    PacsArchiveService,
    SignatureCheck,
)
from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.record_access import check_patient_access
from rekam.store import Database
from rekam.store.models import EcgStudyReport, PacsInstance, new_id
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic
    from rekam.his.patients import PatientService

__all__ = [
    "MAX_INTERPRETATION_CHARS",
    "MIN_OVERRIDE_REASON_CHARS",
    "EcgStudyService",
    "OpenedStudy",
    "RecordingFormat",
    "StudyReport",
    "WorklistEntry",
]

TABLE = "ecg_study_reports"
MAX_INTERPRETATION_CHARS = 5000
MIN_OVERRIDE_REASON_CHARS = 10
MAX_OVERRIDE_REASON_CHARS = 500
MAX_RECORDING_BYTES = 20 * 1024 * 1024
RecordingFormat = str  # "dicom" | "scp" | "csv" | "wfdb"
WFDB_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class StudyReport:
    """One interpretation written on an object, and whether it overrode a failed signature."""

    id: str
    sop_instance_uid: str
    interpretation: str | None
    signature_status: SignatureCheck
    signature_override: bool
    override_reason: str | None
    reported_by: str
    reported_at: datetime.datetime


@dataclass(frozen=True)
class WorklistEntry:
    """A study on the worklist; ``patient_visible`` says whether the viewer may see who it is."""

    study: ArchivedStudy
    patient_visible: bool
    reported: bool

    @property
    def sent_by(self) -> str:
        return self.study.instances[-1].stored_by if self.study.instances else ""


@dataclass(frozen=True)
class OpenedStudy:
    """One object of a study, read and verified now.

    ``verdicts`` is one verdict per signature (empty: unsigned); ``verification_error`` is set
    when the signatures could not even be read. ``recording`` is the waveform, or None with
    ``recording_error`` saying why."""

    study_instance_uid: str
    instance: ArchivedInstance
    instances: tuple[ArchivedInstance, ...]
    verdicts: tuple[SignatureVerdict, ...]
    verification_error: str | None
    recording: Recording | None
    recording_error: str | None
    reports: tuple[StudyReport, ...]
    patient_visible: bool
    object_altered: bool = False
    """The external PACS returned an object other than the one stored."""

    @property
    def status(self) -> SignatureCheck:
        """The status found now: valid only if there is at least one signature and all hold."""
        return _status_now(self.verdicts, self.verification_error)

    @property
    def needs_override(self) -> bool:
        return self.status is not SignatureCheck.VALID


def _status_now(verdicts: Sequence[SignatureVerdict], error: str | None) -> SignatureCheck:
    if error is not None:
        return SignatureCheck.INVALID
    if not verdicts:
        return SignatureCheck.UNSIGNED
    return SignatureCheck.VALID if all(v.valid for v in verdicts) else SignatureCheck.INVALID


class EcgStudyService:
    """Worklist, open, report and send for ECG studies held in the embedded archive."""

    def __init__(
        self,
        database: Database,
        fields: FieldCipher,
        archive: PacsArchiveService,
        patients: PatientService,
        uid_root: str = UUID_UID_ROOT,
    ) -> None:
        self.database = database
        self.fields = fields
        self.archive = archive
        self.patients = patients
        self.uid_root = uid_root

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> EcgStudyService:
        return cls(
            clinic.database, clinic.fields, PacsArchiveService.for_clinic(clinic), clinic.patients
        )

    # The worklist ------------------------------------------------------------------------------

    def worklist(
        self, actor: Actor, *, status: SignatureCheck | None = None, limit: int = 50
    ) -> list[WorklistEntry]:
        """Incoming studies, newest first."""
        studies = self.archive.worklist(actor, signature_status=status, limit=limit)
        sops = [i.sop_instance_uid for s in studies for i in s.instances]
        with self.database.transaction() as session:
            reported = set(
                session.scalars(
                    select(EcgStudyReport.sop_instance_uid).where(
                        EcgStudyReport.sop_instance_uid.in_(sops)
                    )
                )
            ) if sops else set()  # fmt: skip
        return [
            WorklistEntry(
                study,
                self._may_see_patient(actor, study.patient_id),
                any(i.sop_instance_uid in reported for i in study.instances),
            )
            for study in studies
        ]

    def _may_see_patient(self, actor: Actor, patient_id: str | None) -> bool:
        """Objects of a patient registered here show who it is only to those who may see that
        patient (care relationship or break-glass); objects of a patient not registered here
        show the DICOM patient to anyone who may read ECG studies."""
        if patient_id is None:
            return True
        try:
            with self.database.transaction() as session:
                check_patient_access(session, actor, patient_id, Permission.PATIENTS_READ)
        except (PermissionDenied, NotFound):
            return False
        return True

    # Opening -----------------------------------------------------------------------------------

    def open_study(
        self, actor: Actor, study_instance_uid: str, sop_instance_uid: str | None = None
    ) -> OpenedStudy:
        """Read one object of a study (the newest, or ``sop_instance_uid``) and verify its
        signatures now."""
        authorize(actor, Permission.ECG_STUDIES_READ)
        study_uid = study_instance_uid.strip()
        instances = tuple(
            i
            for i in self.archive.find(actor, StudyQuery(study_instance_uid=study_uid), limit=1000)
            if i.study_instance_uid == study_uid
        )
        if not instances:
            raise NotFound("no ECG study with this Study Instance UID", key="ecg_studies.not_found")
        chosen = instances[0]
        if sop_instance_uid is not None:
            matching = [i for i in instances if i.sop_instance_uid == sop_instance_uid.strip()]
            if not matching:
                raise NotFound(
                    "this study holds no object with this SOP Instance UID",
                    key="ecg_studies.not_found",
                )
            chosen = matching[0]
        data, altered = self._object(actor, chosen.sop_instance_uid)
        verdicts, error, dataset = self._verify(data)
        error = altered or error
        recording, recording_error = None, None
        if dataset is not None:
            try:
                recording = dicom_to_recording(dataset)
            except (DicomError, EcgError) as exc:
                recording_error = str(exc)
        else:
            recording_error = error
        return OpenedStudy(
            study_instance_uid=study_uid,
            instance=chosen,
            instances=instances,
            verdicts=tuple(verdicts),
            verification_error=error,
            recording=recording,
            recording_error=recording_error,
            reports=tuple(self._reports(chosen)),
            patient_visible=self._may_see_patient(actor, chosen.patient_id),
            object_altered=altered is not None,
        )

    def _object(self, actor: Actor, sop_instance_uid: str) -> tuple[bytes, str | None]:
        """The object's bytes, and why they cannot be trusted when the PACS altered them."""
        try:
            return self.archive.open(actor, sop_instance_uid), None
        except ObjectAltered as exc:
            return exc.data, str(exc)

    def _verify(self, data: bytes) -> tuple[list[SignatureVerdict], str | None, Dataset | None]:
        trust = self.archive.trust
        try:
            dataset = read_dicom(data, max_bytes=self.archive.max_object_bytes)
        except DicomError as exc:
            return [], str(exc), None
        try:
            verdicts = verify_dataset(dataset, trust.roots, trust.intermediates, trust.crls)
        except DicomError as exc:
            return [], str(exc), dataset
        return verdicts, None, dataset

    def _reports(self, instance: ArchivedInstance) -> list[StudyReport]:
        with self.database.transaction() as session:
            rows = list(
                session.scalars(
                    select(EcgStudyReport)
                    .where(EcgStudyReport.sop_instance_uid == instance.sop_instance_uid)
                    .order_by(EcgStudyReport.reported_at)
                )
            )
        return [self._describe(row) for row in rows]

    def _describe(self, row: EcgStudyReport) -> StudyReport:
        try:
            text = self._unseal(row, "interpretation", row.interpretation_enc)
            reason = self._unseal(row, "override_reason", row.override_reason_enc)
        except PatientErased:
            text, reason = None, None
        return StudyReport(
            id=row.id,
            sop_instance_uid=row.sop_instance_uid,
            interpretation=text,
            signature_status=SignatureCheck(row.signature_status),
            signature_override=row.signature_override,
            override_reason=reason,
            reported_by=row.reported_by,
            reported_at=row.reported_at,
        )

    # Reporting ---------------------------------------------------------------------------------

    def report(
        self,
        actor: Actor,
        sop_instance_uid: str,
        interpretation: str,
        *,
        override_reason: str | None = None,
        study_instance_uid: str | None = None,
    ) -> StudyReport:
        """Record ``interpretation`` on one object, after verifying its signatures again.
        ``study_instance_uid``: when given, the object must belong to that study (else NotFound).

        An object whose signatures do not verify (or that has none) needs ``override_reason``
        (at least :data:`MIN_OVERRIDE_REASON_CHARS` characters) and ``ECG_SIGNATURE_OVERRIDE``.
        """
        authorize(actor, Permission.ECG_STUDIES_REPORT)
        text = interpretation.strip()
        if not text:
            raise ValidationFailed(
                "write the interpretation", field="interpretation", key="ecg_studies.no_text"
            )
        if len(text) > MAX_INTERPRETATION_CHARS:
            raise ValidationFailed(
                f"the interpretation is longer than {MAX_INTERPRETATION_CHARS} characters",
                field="interpretation",
                key="ecg_studies.text_too_long",
                limit=MAX_INTERPRETATION_CHARS,
            )
        instance = self.archive.instance(actor, sop_instance_uid)
        if study_instance_uid is not None and instance.study_instance_uid != study_instance_uid:
            raise NotFound(
                "this study holds no object with this SOP Instance UID",
                key="ecg_studies.not_found",
            )
        data, altered = self._object(actor, sop_instance_uid)
        verdicts, error, _dataset = self._verify(data)
        status = _status_now(verdicts, altered or error)
        reason = (override_reason or "").strip() or None
        override = status is not SignatureCheck.VALID
        if override:
            if not actor.can(Permission.ECG_SIGNATURE_OVERRIDE):
                raise PermissionDenied(
                    "the signature of this ECG does not verify; reporting on it needs the "
                    "signature override permission",
                    key="ecg_studies.override_not_allowed",
                )
            if reason is None or len(reason) < MIN_OVERRIDE_REASON_CHARS:
                raise ValidationFailed(
                    "the signature of this ECG does not verify: to report on it anyway, type "
                    f"why (at least {MIN_OVERRIDE_REASON_CHARS} characters)",
                    field="override_reason",
                    key="ecg_studies.override_reason_needed",
                    minimum=MIN_OVERRIDE_REASON_CHARS,
                )
            if len(reason) > MAX_OVERRIDE_REASON_CHARS:
                raise ValidationFailed(
                    f"the reason is longer than {MAX_OVERRIDE_REASON_CHARS} characters",
                    field="override_reason",
                    key="ecg_studies.override_reason_too_long",
                    limit=MAX_OVERRIDE_REASON_CHARS,
                )
        key_owner = self._key_owner(instance.sop_instance_uid)
        row = EcgStudyReport(
            id=new_id(),
            sop_instance_uid=instance.sop_instance_uid,
            study_instance_uid=instance.study_instance_uid,
            patient_id=instance.patient_id,
            key_patient_id=key_owner,
            signature_status=status.value,
            signature_override=override,
            reported_by=actor.username[:64],
            reported_at=utc_now(),
        )
        sealed_text = self._seal(row, "interpretation", text)
        assert sealed_text is not None
        row.interpretation_enc = sealed_text
        row.override_reason_enc = self._seal(row, "override_reason", reason if override else None)
        with self.database.transaction(write=True) as session:
            session.add(row)
            session.flush()
            if override:
                append_audit(
                    session,
                    actor,
                    AuditEvent(
                        "ecg-study.signature-override",
                        outcome="override",
                        patient_id=row.patient_id,
                        record=row.id,
                        detail=f"signature {status.value}; reason sealed in report {row.id}",
                    ),
                )
            append_audit(
                session,
                actor,
                AuditEvent(
                    "ecg-study.report",
                    patient_id=row.patient_id,
                    record=row.id,
                    detail=f"object {instance.id}; signature {status.value}",
                ),
            )
        return self._describe(row)

    def _key_owner(self, sop_instance_uid: str) -> str:
        with self.database.transaction() as session:
            owner = session.scalar(
                select(PacsInstance.key_patient_id).where(
                    PacsInstance.sop_instance_uid == sop_instance_uid.strip()
                )
            )
        if owner is None:
            raise NotFound("no DICOM object with this SOP Instance UID", key="pacs.not_found")
        return owner

    def _seal(self, row: EcgStudyReport, column: str, value: str | None) -> bytes | None:
        return seal(self.fields, TABLE, column, row.id, row.key_patient_id, value)

    def _unseal(self, row: EcgStudyReport, column: str, sealed: bytes | None) -> str | None:
        return unseal(self.fields, TABLE, column, row.id, row.key_patient_id, sealed)

    # Sending -----------------------------------------------------------------------------------

    def send(
        self,
        actor: Actor,
        data: bytes,
        *,
        filename: str = "",
        companions: Mapping[str, bytes] | None = None,
        patient_id: str | None = None,
        fs: float | None = None,
        signer: DicomSigner | None = None,
        description: str = "Resting 12-lead ECG",
    ) -> ArchivedInstance:
        """Store a DICOM object as it is, or convert an SCP-ECG, CSV or WFDB recording of a
        Rekam patient to a DICOM ECG, signed by ``signer`` when given.

        A WFDB record is its header (``filename`` ending in ``.hea``) with its signal files in
        ``companions`` (file name → content), named as the header names them."""
        authorize(actor, Permission.ECG_STUDIES_SEND)
        if not data:
            raise ValidationFailed("the file is empty", field="file", key="ecg_studies.file_empty")
        kind = _format_of(data, filename)
        if kind == "dicom":
            if signer is not None:
                data = self._signed(_read_for_signing(data), signer)
            return self.archive.store(actor, data, patient_id=patient_id)
        if len(data) > MAX_RECORDING_BYTES:
            raise ValidationFailed(
                f"the recording is larger than {MAX_RECORDING_BYTES // (1024 * 1024)} MB",
                field="file",
                key="ecg_studies.too_large",
            )
        if not patient_id:
            raise ValidationFailed(
                "choose the patient this recording belongs to",
                field="patient",
                key="ecg_studies.patient_needed",
            )
        patient = self.patients.get(actor, patient_id)
        recording, acquired = _recording(data, kind, fs, filename, companions or {})
        try:
            dataset = recording_to_dicom(
                recording,
                PatientInfo(
                    patient.medical_record_number,
                    _dicom_name(patient.name),
                    patient.birth_date,
                    patient.sex,
                ),
                StudyInfo(study_description=description[:64], acquired_at=acquired),
                self.uid_root,
            )
        except (DicomError, EcgError) as exc:
            raise ValidationFailed(
                f"the recording cannot be made into a DICOM ECG: {exc}",
                field="file",
                key="ecg_studies.unreadable",
                reason=str(exc),
            ) from exc
        if signer is not None:
            return self.archive.store(actor, self._signed(dataset, signer), patient_id=patient.id)
        return self.archive.store(actor, dataset_to_bytes(dataset), patient_id=patient.id)

    @staticmethod
    def _signed(dataset: Dataset, signer: DicomSigner) -> bytes:
        try:
            sign_dataset(dataset, signer, mac_algorithm="SHA256")
        except DicomError as exc:
            raise ValidationFailed(
                f"the ECG could not be signed: {exc}",
                field="signing_key",
                key="ecg_studies.sign_failed",
                reason=str(exc),
            ) from exc
        return dataset_to_bytes(dataset)


def _format_of(data: bytes, filename: str) -> RecordingFormat:
    name = filename.lower()
    if len(data) > 132 and data[128:132] == b"DICM":
        return "dicom"
    if name.endswith(".dcm"):
        return "dicom"  # read_dicom explains what is wrong with it
    if name.endswith(".scp") or _starts_like_scp_ecg(data):
        return "scp"
    if name.endswith((".csv", ".txt")):
        return "csv"
    if name.endswith(".hea"):
        return "wfdb"
    raise ValidationFailed(
        "the file is not a DICOM object, an SCP-ECG record, a CSV recording or a WFDB header",
        field="file",
        key="ecg_studies.unknown_format",
    )


def _starts_like_scp_ecg(data: bytes) -> bool:
    """An SCP-ECG record starts with its CRC, its own length and section 0 (the pointers)."""
    if len(data) < 16:
        return False
    declared, section_id = struct.unpack_from("<I2xH", data, 2)
    return bool(declared == len(data) and section_id == 0)


def _read_for_signing(data: bytes) -> Dataset:
    try:
        return read_dicom(data)
    except DicomError as exc:
        raise ValidationFailed(
            f"{exc} It was not stored.", field="file", key="pacs.not_dicom"
        ) from exc


def _wfdb_file_name(name: str) -> str:
    plain = Path(name.replace("\\", "/")).name
    if not WFDB_FILE_NAME.fullmatch(plain):
        raise ValidationFailed(
            f"{name!r} is not a usable WFDB file name",
            field="file",
            key="ecg_studies.bad_file_name",
        )
    return plain


def _recording(
    data: bytes,
    kind: RecordingFormat,
    fs: float | None,
    filename: str,
    companions: Mapping[str, bytes],
) -> tuple[Recording, datetime.datetime | None]:
    try:
        if kind == "scp":
            record = parse_scp_ecg(data)
            return record.recording, record.demographics.acquired_at
        with tempfile.TemporaryDirectory(prefix="rekam-ecg-") as folder:
            # waveform files only: the patient comes from the Rekam record, not these files
            if kind == "wfdb":
                header = Path(folder) / _wfdb_file_name(filename)
                header.write_bytes(data)
                for name, content in companions.items():
                    (Path(folder) / _wfdb_file_name(name)).write_bytes(content)
                return read_wfdb(header.with_suffix(""), annotator=None), None
            path = Path(folder) / "recording.csv"
            path.write_bytes(data)
            return read_csv(path, fs), None
    except EcgError as exc:
        raise ValidationFailed(
            f"the recording cannot be read: {exc}",
            field="file",
            key="ecg_studies.unreadable",
            reason=str(exc),
        ) from exc


def _dicom_name(name: str) -> str:
    """``Family^Given`` from a name as registered (the last word is taken as the family name)."""
    words = name.split()
    if len(words) < 2:
        return name[:64]
    return f"{words[-1]}^{' '.join(words[:-1])}"[:64]
