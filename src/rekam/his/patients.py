"""Patients: registration, lookup by blind index, reading, crypto-erasure, attached files.

Every identifying or clinical value goes through ``FieldCipher`` (bound to table, column,
record id and patient id) before it reaches the database; NIK, BPJS number and the words of the
name are searchable through blind indexes only. The patient's data key is theirs alone, so
erasing it makes all of their encrypted data — fields and files — unreadable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import BinaryIO, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rekam.crypto import (
    BlindIndexer,
    DataKeyManager,
    DecryptionFailed,
    FieldCipher,
    FieldContext,
    KeyErased,
    patient_owner,
)
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, ValidationFailed
from rekam.his.field_sealing import (
    DataUnreadable,
    PatientErased,
    ensure_not_erased,
    patient_text,
)
from rekam.his.identifiers import validate_bpjs, validate_nik
from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.record_access import check_patient_access
from rekam.store import Database
from rekam.store.blobs import EncryptedFileStore
from rekam.store.counters import next_counter
from rekam.store.models import Patient, PatientFile, PatientNameToken, new_id
from rekam.store.types import utc_now

Sex = Literal["M", "F"]
ENCRYPTED_COLUMNS = (
    "name",
    "birth_date",
    "sex",
    "nik",
    "bpjs",
    "address",
    "phone",
    "emergency_contact",
    "allergies",
    "medical_history",
)


@dataclass(frozen=True)
class PatientInput:
    name: str
    birth_date: date
    sex: Sex
    nik: str
    bpjs: str | None = None
    address: str | None = None
    phone: str | None = None
    emergency_contact: str | None = None
    allergies: str | None = None
    medical_history: str | None = None


@dataclass(frozen=True)
class PatientRecord:
    id: str
    medical_record_number: str
    name: str
    birth_date: date
    sex: Sex
    nik: str
    bpjs: str | None
    address: str | None
    phone: str | None
    emergency_contact: str | None
    allergies: str | None
    medical_history: str | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class PatientFileInfo:
    id: str
    patient_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class PatientSummary:
    id: str
    medical_record_number: str
    name: str
    birth_date: date
    sex: Sex


def name_words(name: str) -> set[str]:
    return {word for word in "".join(c if c.isalnum() else " " for c in name.lower()).split()}


class PatientService:
    def __init__(
        self,
        database: Database,
        fields: FieldCipher,
        indexer: BlindIndexer,
        keys: DataKeyManager,
        files: EncryptedFileStore,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.fields = fields
        self.indexer = indexer
        self.keys = keys
        self.files = files
        self.clock = clock

    # Encryption helpers ------------------------------------------------------------------------

    def _seal(self, patient_id: str, column: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        return self.fields.encrypt_field(
            value, FieldContext("patients", column, patient_id, patient_id)
        )

    def _open(self, patient: Patient, column: str) -> str | None:
        return patient_text(self.fields, patient, column)

    # Validation --------------------------------------------------------------------------------

    @staticmethod
    def _validated(data: PatientInput, today: date) -> PatientInput:
        name = " ".join(data.name.split())
        if not 2 <= len(name) <= 200:
            raise ValidationFailed(
                "the name must have 2–200 characters", field="name", key="patient.name"
            )
        if data.sex not in ("M", "F"):
            raise ValidationFailed("sex must be M or F", field="sex", key="patient.sex")
        if not date(1900, 1, 1) <= data.birth_date <= today:
            raise ValidationFailed(
                "the date of birth is not plausible", field="birth_date", key="patient.birth_date"
            )
        nik = validate_nik(data.nik, data.birth_date, data.sex)
        bpjs = validate_bpjs(data.bpjs) if data.bpjs else None
        texts = {}
        for column, limit in (
            ("address", 500),
            ("phone", 32),
            ("emergency_contact", 200),
            ("allergies", 1000),
            ("medical_history", 10_000),
        ):
            value = getattr(data, column)
            value = value.strip() if value else None
            if value and len(value) > limit:
                raise ValidationFailed(
                    f"{column} is longer than {limit} characters",
                    field=column,
                    key="field.too_long",
                    limit=limit,
                )
            texts[column] = value or None
        return PatientInput(
            name=name, birth_date=data.birth_date, sex=data.sex, nik=nik, bpjs=bpjs, **texts
        )

    # Operations --------------------------------------------------------------------------------

    def register(self, actor: Actor, data: PatientInput) -> PatientRecord:
        authorize(actor, Permission.PATIENTS_WRITE)
        now = self.clock()
        clean = self._validated(data, now.date())
        nik_index = self.indexer.index("nik", clean.nik)
        # The data key is created (in its own transaction) before the registration's write
        # transaction starts, so the two never wait on each other.
        patient_id = new_id()
        self.keys.key_for_owner(patient_owner(patient_id))
        try:
            with self.database.transaction(write=True) as session:
                if session.scalar(select(Patient.id).where(Patient.nik_index == nik_index)):
                    raise Conflict(
                        "a patient with this NIK is already registered",
                        field="nik",
                        key="patient.duplicate_nik",
                    )
                patient = Patient(
                    id=patient_id,
                    medical_record_number=f"RM-{next_counter(session, 'mrn'):06d}",
                    created_at=now,
                    updated_at=now,
                )
                self._write_fields(session, patient, clean)
                session.add(patient)
                session.flush()
                append_audit(session, actor, AuditEvent("patient.create", patient_id=patient.id))
                return self._record(patient)
        except IntegrityError as exc:
            if self._nik_taken(nik_index):  # a concurrent registration of the same NIK won
                raise Conflict(
                    "a patient with this NIK is already registered",
                    field="nik",
                    key="patient.duplicate_nik",
                ) from exc
            raise

    def _nik_taken(self, nik_index: bytes) -> bool:
        with self.database.transaction() as session:
            return (
                session.scalar(select(Patient.id).where(Patient.nik_index == nik_index)) is not None
            )

    def _write_fields(self, session: Session, patient: Patient, data: PatientInput) -> None:
        values = {
            "name": data.name,
            "birth_date": data.birth_date.isoformat(),
            "sex": data.sex,
            "nik": data.nik,
            "bpjs": data.bpjs,
            "address": data.address,
            "phone": data.phone,
            "emergency_contact": data.emergency_contact,
            "allergies": data.allergies,
            "medical_history": data.medical_history,
        }
        for column, value in values.items():
            setattr(patient, f"{column}_enc", self._seal(patient.id, column, value))
        patient.nik_index = self.indexer.index("nik", data.nik)
        patient.bpjs_index = self.indexer.index("bpjs", data.bpjs) if data.bpjs else None
        for token in session.scalars(
            select(PatientNameToken).where(PatientNameToken.patient_id == patient.id)
        ):
            session.delete(token)
        for word in name_words(data.name):
            session.add(
                PatientNameToken(
                    patient_id=patient.id, token_index=self.indexer.index("name", word)
                )
            )

    def _record(self, patient: Patient) -> PatientRecord:
        if patient.erased_at is not None:
            raise PatientErased(
                f"this patient's data was crypto-erased on {patient.erased_at:%Y-%m-%d}",
                key="patient.erased",
            )
        opened = {column: self._open(patient, column) for column in ENCRYPTED_COLUMNS}
        return PatientRecord(
            id=patient.id,
            medical_record_number=patient.medical_record_number,
            name=opened["name"] or "",
            birth_date=date.fromisoformat(opened["birth_date"] or "1900-01-01"),
            sex="F" if opened["sex"] == "F" else "M",
            nik=opened["nik"] or "",
            bpjs=opened["bpjs"],
            address=opened["address"],
            phone=opened["phone"],
            emergency_contact=opened["emergency_contact"],
            allergies=opened["allergies"],
            medical_history=opened["medical_history"],
            created_at=patient.created_at,
            updated_at=patient.updated_at,
            version=patient.version,
        )

    def get(self, actor: Actor, patient_id: str) -> PatientRecord:
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.PATIENTS_READ)
            append_audit(session, actor, AuditEvent("patient.read", patient_id=patient_id))
            return self._record(patient)

    def own_record_id(self, actor: Actor) -> str:
        """The patient id linked to a patient account."""
        with self.database.transaction() as session:
            patient_id = session.scalar(select(Patient.id).where(Patient.user_id == actor.user_id))
        if patient_id is None or actor.user_id is None:
            raise NotFound(
                "this account is not linked to a patient record", key="patient.not_linked"
            )
        return patient_id

    def link_account(self, actor: Actor, patient_id: str, user_id: str) -> None:
        """Link a patient account (a user with the patient role) to a patient record."""
        authorize(actor, Permission.USERS_WRITE)
        with self.database.transaction(write=True) as session:
            patient = self._live_patient(session, patient_id)
            patient.user_id = user_id
            append_audit(session, actor, AuditEvent("patient.link_account", patient_id=patient_id))

    def update(
        self, actor: Actor, patient_id: str, data: PatientInput, expected_version: int
    ) -> PatientRecord:
        """Change a patient's details; refused if someone else saved in the meantime."""
        now = self.clock()
        clean = self._validated(data, now.date())
        nik_index = self.indexer.index("nik", clean.nik)
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.PATIENTS_WRITE)
            if patient.erased_at is not None:
                raise PatientErased("this patient's data was crypto-erased", key="patient.erased")
            if patient.version != expected_version:
                raise Conflict(
                    "someone else changed this patient meanwhile; reload and try again",
                    key="error.409",
                    current_version=patient.version,
                )
            other = session.scalar(
                select(Patient.id).where(Patient.nik_index == nik_index, Patient.id != patient_id)
            )
            if other is not None:
                raise Conflict(
                    "a patient with this NIK is already registered",
                    field="nik",
                    key="patient.duplicate_nik",
                )
            self._write_fields(session, patient, clean)
            patient.updated_at = now
            session.flush()
            append_audit(session, actor, AuditEvent("patient.update", patient_id=patient_id))
            return self._record(patient)

    def find(
        self,
        actor: Actor,
        nik: str | None = None,
        bpjs: str | None = None,
        name: str | None = None,
        medical_record_number: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[PatientSummary]:
        """Exact lookup by NIK / BPJS / record number, or by whole words of the name."""
        authorize(actor, Permission.PATIENTS_READ)
        query = select(Patient).where(Patient.erased_at.is_(None))
        if nik:
            query = query.where(Patient.nik_index == self.indexer.index("nik", nik))
        if bpjs:
            query = query.where(Patient.bpjs_index == self.indexer.index("bpjs", bpjs))
        if medical_record_number:
            query = query.where(
                Patient.medical_record_number == medical_record_number.strip().upper()
            )
        if name:
            for word in name_words(name):
                tokens = select(PatientNameToken.patient_id).where(
                    PatientNameToken.token_index == self.indexer.index("name", word)
                )
                query = query.where(Patient.id.in_(tokens))
        if not (nik or bpjs or name or medical_record_number):
            raise ValidationFailed(
                "give a NIK, BPJS number, record number or name to search",
                field="query",
                key="patient.search_empty",
            )
        limit = max(1, min(limit, 100))
        with self.database.transaction(write=True) as session:
            rows = list(
                session.scalars(
                    query.order_by(Patient.medical_record_number)
                    .limit(limit)
                    .offset(max(0, offset))
                )
            )
            append_audit(session, actor, AuditEvent("patient.search", detail=f"{len(rows)} found"))
            return [
                PatientSummary(
                    id=p.id,
                    medical_record_number=p.medical_record_number,
                    name=self._open(p, "name") or "",
                    birth_date=date.fromisoformat(self._open(p, "birth_date") or "1900-01-01"),
                    sex="F" if self._open(p, "sex") == "F" else "M",
                )
                for p in rows
            ]

    def count(self) -> int:
        with self.database.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Patient)) or 0)

    def erase(self, actor: Actor, patient_id: str, reason: str) -> datetime:
        """Crypto-erase a patient: destroy their data key, drop their blind indexes."""
        authorize(actor, Permission.PATIENTS_ERASE)
        reason = reason.strip()
        if len(reason) < 5:
            raise ValidationFailed(
                "give the reason for erasure (at least 5 characters)",
                field="reason",
                key="patient.erase_reason",
            )
        now = self.clock()
        with self.database.transaction() as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise NotFound("no such patient", key="patient.not_found")
            if patient.erased_at is not None:
                raise Conflict("this patient was already erased", key="patient.already_erased")
        # The key goes first, in its own transaction: if anything below fails, the data is
        # already unreadable and running the erasure again completes it.
        self.keys.destroy_owner_key(patient_owner(patient_id), reason)
        with self.database.transaction(write=True) as session:
            patient = session.get(Patient, patient_id)
            assert patient is not None
            patient.erased_at = now
            # the blind indexes would still confirm a guessed NIK: replace them with random noise
            patient.nik_index = os.urandom(16)
            patient.bpjs_index = None
            for token in session.scalars(
                select(PatientNameToken).where(PatientNameToken.patient_id == patient_id)
            ):
                session.delete(token)
            append_audit(
                session,
                actor,
                AuditEvent("patient.erase", patient_id=patient_id, detail=reason[:500]),
            )
        return now

    # Files -------------------------------------------------------------------------------------

    @staticmethod
    def file_context(patient_id: str, file_id: str) -> FieldContext:
        return FieldContext("patient_files", "content", file_id, patient_id)

    def _live_patient(self, session: Session, patient_id: str) -> Patient:
        patient = session.get(Patient, patient_id)
        if patient is None:
            raise NotFound("no such patient", key="patient.not_found")
        ensure_not_erased(patient)
        return patient

    def attach_file(
        self, actor: Actor, patient_id: str, source: BinaryIO, filename: str, content_type: str
    ) -> PatientFileInfo:
        """Encrypt and store a file for the patient (streamed: memory stays constant)."""
        filename = filename.strip().replace("/", "_").replace("\\", "_")[:200] or "file"
        with self.database.transaction() as session:
            check_patient_access(session, actor, patient_id, Permission.PATIENTS_WRITE)
            self._live_patient(session, patient_id)
        file_id = new_id()
        try:
            stored = self.files.save(source, self.file_context(patient_id, file_id), content_type)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="content_type", key="file.content_type") from exc
        now = self.clock()
        try:
            with self.database.transaction(write=True) as session:
                session.add(
                    PatientFile(
                        id=file_id,
                        patient_id=patient_id,
                        object_name=stored.name,
                        content_type=stored.content_type,
                        size=stored.plaintext_size,
                        filename_enc=self._seal_file_field(
                            patient_id, file_id, "filename", filename
                        ),
                        sha256_enc=self._seal_file_field(
                            patient_id, file_id, "sha256", stored.sha256
                        ),
                        created_at=now,
                        created_by=actor.user_id,
                    )
                )
                append_audit(
                    session, actor, AuditEvent("file.create", patient_id=patient_id, record=file_id)
                )
        except BaseException:
            self.files.delete(stored.name, missing_ok=True)  # no orphan ciphertext
            raise
        return PatientFileInfo(
            file_id,
            patient_id,
            filename,
            stored.content_type,
            stored.plaintext_size,
            stored.sha256,
            now,
        )

    def _seal_file_field(self, patient_id: str, file_id: str, column: str, value: str) -> bytes:
        return self.fields.encrypt_field(
            value, FieldContext("patient_files", column, file_id, patient_id)
        )

    def _file_info(self, row: PatientFile) -> PatientFileInfo:
        def opened(column: str, sealed: bytes) -> str:
            context = FieldContext("patient_files", column, row.id, row.patient_id)
            try:
                return self.fields.decrypt_text(sealed, context)
            except KeyErased as exc:
                raise PatientErased(
                    f"this patient's data was crypto-erased: {exc}", key="patient.erased"
                ) from exc
            except DecryptionFailed as exc:
                raise DataUnreadable(
                    f"the stored file {column} cannot be opened: {exc}",
                    key="patient.unreadable",
                    column=column,
                ) from exc

        return PatientFileInfo(
            row.id,
            row.patient_id,
            opened("filename", row.filename_enc),
            row.content_type,
            row.size,
            opened("sha256", row.sha256_enc),
            row.created_at,
        )

    def list_files(self, actor: Actor, patient_id: str) -> list[PatientFileInfo]:
        with self.database.transaction(write=True) as session:
            check_patient_access(session, actor, patient_id, Permission.PATIENTS_READ)
            self._live_patient(session, patient_id)
            append_audit(session, actor, AuditEvent("file.list", patient_id=patient_id))
            return self._files(session, patient_id)

    def overview(
        self, actor: Actor, patient_id: str
    ) -> tuple[PatientRecord, list[PatientFileInfo]]:
        """The patient's details and files for one page view: one read, one audit entry."""
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.PATIENTS_READ)
            append_audit(session, actor, AuditEvent("patient.read", patient_id=patient_id))
            return self._record(patient), self._files(session, patient_id)

    def _files(self, session: Session, patient_id: str) -> list[PatientFileInfo]:
        rows = session.scalars(
            select(PatientFile)
            .where(PatientFile.patient_id == patient_id)
            .order_by(PatientFile.created_at)
        )
        return [self._file_info(r) for r in rows]

    def open_file(
        self, actor: Actor, patient_id: str, file_id: str
    ) -> tuple[PatientFileInfo, Iterator[bytes]]:
        """The file's description and its plaintext, chunk by authenticated chunk."""
        with self.database.transaction(write=True) as session:
            check_patient_access(session, actor, patient_id, Permission.PATIENTS_READ)
            self._live_patient(session, patient_id)
            row = session.get(PatientFile, file_id)
            if row is None or row.patient_id != patient_id:
                raise NotFound("no such file for this patient", key="file.not_found")
            append_audit(
                session, actor, AuditEvent("file.read", patient_id=patient_id, record=file_id)
            )
        info = self._file_info(row)
        try:
            chunks = self.files.open_plaintext(
                row.object_name, self.file_context(patient_id, file_id)
            )
        except KeyErased as exc:
            raise PatientErased(
                f"this patient's data was crypto-erased: {exc}", key="patient.erased"
            ) from exc
        return info, chunks
