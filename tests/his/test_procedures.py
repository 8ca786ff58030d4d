"""Procedures (tindakan) through the service: ICD-9-CM codes, performer, sign-off, audit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rekam.his.consultations import ConsultationInput, ConsultationService, DiagnosisInput
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.icd import ICD9CM_COMMON, ICD10_COMMON, normalise_icd9cm, normalise_icd10
from rekam.his.installation import Clinic, open_clinic
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.procedures import ProcedureInput, ProcedureService
from rekam.his.rbac import Actor, Role
from rekam.store.models import AuditEntry, Procedure
from support.people import make_patient
from support.servers import make_installation

ADMIN = Actor(user_id=None, username="admin.test", role=Role.ADMIN, source_address="10.0.0.9")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("procedures"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


def _linked(clinic: Clinic, username: str, role: Role, profession: str) -> tuple[Actor, str]:
    created = clinic.accounts.create_user(
        Actor.system(), username, username, role, "Pagi-Cerah-Sehat-2026"
    )
    actor = Actor(user_id=created.user.id, username=username, role=role)
    practitioner = PractitionerService.for_clinic(clinic).create(
        ADMIN, PractitionerInput(username, profession, user_id=created.user.id)
    )
    return actor, practitioner.id


@pytest.fixture(scope="module")
def people(clinic: Clinic) -> dict[str, tuple[Actor, str]]:
    return {
        "doctor": _linked(clinic, "dr.proc", Role.DOCTOR, "doctor"),
        "nurse": _linked(clinic, "ns.proc", Role.NURSE, "nurse"),
    }


def _draft(clinic: Clinic, doctor: Actor) -> str:
    patient = clinic.patients.register(doctor, make_patient("Agus Salim", "M")).id
    data = ConsultationInput(complaint="luka robek", diagnoses=(DiagnosisInput("T14.1"),))
    return ConsultationService.for_clinic(clinic).create(doctor, patient, data).id


def test_icd_code_formats() -> None:
    assert normalise_icd10(" e119 ") == "E11.9"
    assert normalise_icd9cm("8952") == "89.52"
    assert normalise_icd9cm("99") == "99"
    for bad in ("8", "899.52", "A9.1", "99.123", "99-21"):
        with pytest.raises(ValidationFailed) as refused:
            normalise_icd9cm(bad)
        assert refused.value.key == "icd9cm.format"
    # the built-in tables hold only well-formed codes, each named in both languages
    assert len(ICD10_COMMON) >= 30 and len(ICD9CM_COMMON) >= 20
    for table, check in ((ICD10_COMMON, normalise_icd10), (ICD9CM_COMMON, normalise_icd9cm)):
        for code, name in table.items():
            assert check(code) == code
            assert name.id and name.en


def test_record_and_list_procedures(clinic: Clinic, people: dict[str, tuple[Actor, str]]) -> None:
    service = ProcedureService.for_clinic(clinic)
    doctor, doctor_id = people["doctor"]
    nurse, nurse_id = people["nurse"]
    consultation = _draft(clinic, doctor)
    sutured = service.create(
        nurse, consultation, ProcedureInput("8659", "hecting 4 jahitan di lengan kiri")
    )
    assert sutured.code == "86.59" and sutured.performer_id == nurse_id
    cleaned = service.create(nurse, consultation, ProcedureInput("86.22", performer_id=doctor_id))
    assert cleaned.performer_id == doctor_id
    listed = service.list_for_consultation(doctor, consultation)
    assert {p.id for p in listed} == {sutured.id, cleaned.id}
    by_patient = service.list_for_patient(doctor, sutured.patient_id)
    assert {p.id for p in by_patient} == {sutured.id, cleaned.id}
    with clinic.database.transaction() as session:
        row = session.get(Procedure, sutured.id)
        assert row is not None
        assert b"86.59" not in row.code_enc and b"hecting" not in (row.description_enc or b"")


def test_procedure_rules(clinic: Clinic, people: dict[str, tuple[Actor, str]]) -> None:
    service = ProcedureService.for_clinic(clinic)
    doctor, _ = people["doctor"]
    consultation = _draft(clinic, doctor)
    with pytest.raises(ValidationFailed) as refused:
        service.create(doctor, consultation, ProcedureInput("ABC"))
    assert refused.value.key == "icd9cm.format"
    future = datetime.now(UTC) + timedelta(hours=3)
    with pytest.raises(ValidationFailed) as refused:
        service.create(doctor, consultation, ProcedureInput("99.21", performed_at=future))
    assert refused.value.key == "procedure.performed_at"
    unlinked = Actor(user_id=None, username="ns.none", role=Role.NURSE)
    with pytest.raises(ValidationFailed) as refused:
        service.create(unlinked, consultation, ProcedureInput("99.21"))
    assert refused.value.key == "procedure.performer"
    pharmacist = Actor(user_id=None, username="apt", role=Role.PHARMACIST)
    with pytest.raises(PermissionDenied):
        service.create(pharmacist, consultation, ProcedureInput("99.21"))
    with pytest.raises(PermissionDenied):
        service.list_for_consultation(pharmacist, consultation)
    with pytest.raises(NotFound):
        service.create(doctor, "missing", ProcedureInput("99.21"))
    ConsultationService.for_clinic(clinic).sign(doctor, consultation)
    with pytest.raises(Conflict) as closed:
        service.create(doctor, consultation, ProcedureInput("99.21"))
    assert closed.value.key == "procedure.consultation_signed"
    assert service.list_for_consultation(doctor, consultation) == []


def test_one_audit_entry_per_call(clinic: Clinic, people: dict[str, tuple[Actor, str]]) -> None:
    service = ProcedureService.for_clinic(clinic)
    doctor, _ = people["doctor"]
    consultation = _draft(clinic, doctor)

    def audit() -> tuple[int, str]:
        with clinic.database.transaction() as session:
            count = int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            last = session.scalar(select(AuditEntry.action).order_by(AuditEntry.seq.desc()))
            return count, str(last)

    before, _ = audit()
    service.create(doctor, consultation, ProcedureInput("99.21", "injeksi ATS"))
    assert audit() == (before + 1, "procedure.create")
    service.list_for_consultation(doctor, consultation)
    assert audit() == (before + 2, "procedure.list")
