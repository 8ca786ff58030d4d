"""The medical record: one timeline per patient of everything the forms hold.

Consultations (with diagnoses, vital signs, sign-off and amendments), procedures, laboratory
orders and results, prescriptions and their dispensing, and attached files — read in one
transaction, checked once against the patient-access rule and audited as one read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select

from rekam.his.audit import AuditEvent, append_audit
from rekam.his.consultations import ConsultationRecord, ConsultationService
from rekam.his.laboratory import LaboratoryService, LabOrderView
from rekam.his.patients import PatientFileInfo, PatientRecord, PatientService
from rekam.his.pharmacy import PharmacyService, PrescriptionView
from rekam.his.procedures import ProcedureRecord, ProcedureService
from rekam.his.rbac import Actor, Permission
from rekam.his.record_access import check_patient_access
from rekam.store import Database
from rekam.store.models import LabOrder, Medicine, Prescription, Procedure

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

EventKind = Literal["consultation", "procedure", "lab", "prescription", "file"]


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    kind: EventKind
    consultation: ConsultationRecord | None = None
    procedure: ProcedureRecord | None = None
    lab: LabOrderView | None = None
    prescription: PrescriptionView | None = None
    file: PatientFileInfo | None = None


@dataclass(frozen=True)
class MedicalRecord:
    patient: PatientRecord
    events: list[TimelineEvent]  # newest first


class MedicalRecordService:
    def __init__(
        self,
        database: Database,
        patients: PatientService,
        consultations: ConsultationService,
        procedures: ProcedureService,
        laboratory: LaboratoryService,
        pharmacy: PharmacyService,
    ) -> None:
        self.database = database
        self.patients = patients
        self.consultations = consultations
        self.procedures = procedures
        self.laboratory = laboratory
        self.pharmacy = pharmacy

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> MedicalRecordService:
        return cls(
            clinic.database,
            clinic.patients,
            ConsultationService.for_clinic(clinic),
            ProcedureService.for_clinic(clinic),
            LaboratoryService.for_clinic(clinic),
            PharmacyService.for_clinic(clinic),
        )

    def timeline(self, actor: Actor, patient_id: str) -> MedicalRecord:
        # The read is one unit: the private readers below decrypt without auditing each part.
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.RECORD_READ)
            record = self.patients._record(patient)
            events: list[TimelineEvent] = []
            for consultation in self.consultations.records_for_patient(session, patient_id):
                events.append(
                    TimelineEvent(
                        consultation.started_at, "consultation", consultation=consultation
                    )
                )
            for step in session.scalars(
                select(Procedure).where(Procedure.patient_id == patient_id)
            ):
                procedure = self.procedures._record(session, step)
                events.append(TimelineEvent(step.performed_at, "procedure", procedure=procedure))
            for order in session.scalars(select(LabOrder).where(LabOrder.patient_id == patient_id)):
                lab = self.laboratory._view(session, order, patient)
                when = order.resulted_at or order.ordered_at
                events.append(TimelineEvent(when, "lab", lab=lab))
            prescriptions = session.execute(
                select(Prescription, Medicine)
                .join(Medicine, Medicine.id == Prescription.medicine_id)
                .where(Prescription.patient_id == patient_id)
            )
            for line, medicine in prescriptions:
                view = self.pharmacy._view(line, patient, medicine)
                events.append(TimelineEvent(line.prescribed_at, "prescription", prescription=view))
            for info in self.patients._files(session, patient_id):
                events.append(TimelineEvent(info.created_at, "file", file=info))
            append_audit(session, actor, AuditEvent("record.read", patient_id=patient_id))
        events.sort(key=lambda e: e.at, reverse=True)
        return MedicalRecord(patient=record, events=events)
