"""Procedures (tindakan): ICD-9-CM coded, performed in a consultation by a practitioner.

Code and description are encrypted with the patient's data key. A procedure is recorded while the
consultation is a draft (a signed consultation is closed; see ``rekam.his.consultations``). The
performer defaults to the acting user's practitioner. Each call is one transaction and appends
exactly one audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from rekam.crypto import FieldCipher
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.consultations import DRAFT, FUTURE_TOLERANCE, live_patient
from rekam.his.errors import Conflict, NotFound, ValidationFailed
from rekam.his.field_sealing import seal, unseal
from rekam.his.icd import normalise_icd9cm
from rekam.his.practitioners import practitioner_of_actor
from rekam.his.rbac import Actor, Permission
from rekam.store import Database
from rekam.store.models import Consultation, Practitioner, Procedure, new_id
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic


@dataclass(frozen=True)
class ProcedureInput:
    code: str
    description: str | None = None
    performer_id: str | None = None
    performed_at: datetime | None = None


@dataclass(frozen=True)
class ProcedureRecord:
    id: str
    consultation_id: str
    patient_id: str
    code: str
    description: str | None
    performer_id: str
    performer_name: str
    performed_at: datetime
    created_at: datetime


class ProcedureService:
    def __init__(
        self, database: Database, fields: FieldCipher, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.database = database
        self.fields = fields
        self.clock = clock

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> ProcedureService:
        return cls(clinic.database, clinic.fields)

    def _record(self, session: Session, row: Procedure) -> ProcedureRecord:
        performer = session.get(Practitioner, row.performer_id)
        return ProcedureRecord(
            id=row.id,
            consultation_id=row.consultation_id,
            patient_id=row.patient_id,
            code=unseal(self.fields, "procedures", "code", row.id, row.patient_id, row.code_enc)
            or "",
            description=unseal(
                self.fields,
                "procedures",
                "description",
                row.id,
                row.patient_id,
                row.description_enc,
            ),
            performer_id=row.performer_id,
            performer_name=performer.name if performer else "",
            performed_at=row.performed_at,
            created_at=row.created_at,
        )

    @staticmethod
    def _performer(session: Session, actor: Actor, performer_id: str | None) -> Practitioner:
        chosen = (
            practitioner_of_actor(session, actor)
            if performer_id is None
            else session.get(Practitioner, performer_id)
        )
        if chosen is None or not chosen.active:
            raise ValidationFailed(
                "choose the practitioner who performed the procedure",
                field="performer_id",
                key="procedure.performer",
            )
        return chosen

    def create(self, actor: Actor, consultation_id: str, data: ProcedureInput) -> ProcedureRecord:
        now = self.clock()
        code = normalise_icd9cm(data.code)
        description = " ".join((data.description or "").split()) or None
        if description and len(description) > 1000:
            raise ValidationFailed(
                "the description is longer than 1000 characters",
                field="description",
                key="field.too_long",
                limit=1000,
            )
        performed_at = data.performed_at or now
        if performed_at.tzinfo is None:
            raise ValidationFailed(
                "the time needs a time zone", field="performed_at", key="procedure.performed_at"
            )
        performed_at = performed_at.astimezone(UTC)
        if performed_at > now + FUTURE_TOLERANCE:
            raise ValidationFailed(
                "the procedure time is in the future",
                field="performed_at",
                key="procedure.performed_at",
            )
        with self.database.transaction(write=True) as session:
            # locked: a sign-off cannot slip in between the status check and the insert
            consultation = session.get(Consultation, consultation_id, with_for_update=True)
            if consultation is None:
                raise NotFound("no such consultation", key="consultation.not_found")
            live_patient(session, actor, consultation.patient_id, Permission.PROCEDURES_WRITE)
            if consultation.status != DRAFT:
                raise Conflict(
                    "this consultation is signed: procedures are recorded before sign-off",
                    key="procedure.consultation_signed",
                )
            if performed_at < consultation.started_at - FUTURE_TOLERANCE:
                raise ValidationFailed(
                    "the procedure cannot precede the consultation",
                    field="performed_at",
                    key="procedure.performed_at",
                )
            performer = self._performer(session, actor, data.performer_id)
            row = Procedure(
                id=new_id(),
                consultation_id=consultation.id,
                patient_id=consultation.patient_id,
                performer_id=performer.id,
                performed_at=performed_at,
                created_at=now,
            )
            sealed_code = seal(self.fields, "procedures", "code", row.id, row.patient_id, code)
            assert sealed_code is not None
            row.code_enc = sealed_code
            row.description_enc = seal(
                self.fields, "procedures", "description", row.id, row.patient_id, description
            )
            session.add(row)
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent("procedure.create", patient_id=row.patient_id, record=row.id),
            )
            return self._record(session, row)

    def list_for_consultation(self, actor: Actor, consultation_id: str) -> list[ProcedureRecord]:
        with self.database.transaction(write=True) as session:
            consultation = session.get(Consultation, consultation_id)
            if consultation is None:
                raise NotFound("no such consultation", key="consultation.not_found")
            live_patient(session, actor, consultation.patient_id, Permission.PROCEDURES_READ)
            rows = session.scalars(
                select(Procedure)
                .where(Procedure.consultation_id == consultation_id)
                .order_by(Procedure.performed_at, Procedure.id)
            )
            records = [self._record(session, r) for r in rows]
            append_audit(
                session,
                actor,
                AuditEvent(
                    "procedure.list",
                    patient_id=consultation.patient_id,
                    record=consultation_id,
                    detail=f"{len(records)} found",
                ),
            )
            return records

    def list_for_patient(self, actor: Actor, patient_id: str) -> list[ProcedureRecord]:
        with self.database.transaction(write=True) as session:
            live_patient(session, actor, patient_id, Permission.PROCEDURES_READ)
            rows = session.scalars(
                select(Procedure)
                .where(Procedure.patient_id == patient_id)
                .order_by(Procedure.performed_at.desc(), Procedure.id)
                .limit(500)
            )
            records = [self._record(session, r) for r in rows]
            append_audit(
                session,
                actor,
                AuditEvent("procedure.list", patient_id=patient_id, detail=f"{len(records)} found"),
            )
            return records
