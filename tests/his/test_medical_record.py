"""The medical-record timeline: everything of one patient, newest first, one audit entry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rekam.his.consultations import ConsultationInput, ConsultationService, DiagnosisInput
from rekam.his.installation import Clinic, open_clinic
from rekam.his.medical_record import MedicalRecordService
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.rbac import Actor, Role
from rekam.store.models import AuditEntry
from support.people import make_patient
from support.servers import make_installation


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("record"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


def test_timeline_with_amendments_of_several_visits(clinic: Clinic) -> None:
    made = clinic.accounts.create_user(Actor.system(), "dr.rec", "dr. Rec", Role.DOCTOR)
    doctor = Actor(user_id=made.user.id, username="dr.rec", role=Role.DOCTOR)
    PractitionerService.for_clinic(clinic).create(
        Actor.system(), PractitionerInput(name="dr. Rec", profession="doctor", user_id=made.user.id)
    )
    patient = clinic.patients.register(
        Actor(user_id=None, username="desk", role=Role.REGISTRATION), make_patient("Rekam Waktu")
    )
    visits = ConsultationService.for_clinic(clinic)
    now = datetime.now(UTC)
    first = visits.create(
        doctor,
        patient.id,
        ConsultationInput(
            started_at=now - timedelta(days=10),
            complaint="batuk",
            diagnoses=[DiagnosisInput(code="J06.9", text="ISPA")],
            plan="rencana lama",
        ),
    )
    visits.sign(doctor, first.id)
    visits.amend(doctor, first.id, "plan", "rencana baru", "salah tulis dosis")
    second = visits.create(
        doctor,
        patient.id,
        ConsultationInput(
            started_at=now - timedelta(days=1),
            complaint="kontrol",
            diagnoses=[DiagnosisInput(code="I10", text="hipertensi"), DiagnosisInput(code="E11.9")],
        ),
    )

    with clinic.database.transaction() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    record = MedicalRecordService.for_clinic(clinic).timeline(doctor, patient.id)
    with clinic.database.transaction() as session:
        after = session.scalar(select(func.count()).select_from(AuditEntry))
    assert after == before + 1  # one request, one audit entry

    consultations = [e.consultation for e in record.events if e.consultation is not None]
    assert [c.id for c in consultations] == [second.id, first.id]  # newest first
    newest, oldest = consultations
    assert [d.code for d in newest.diagnoses] == ["I10", "E11.9"]
    assert [d.code for d in oldest.diagnoses] == ["J06.9"]
    assert oldest.plan == "rencana baru"
    assert [(a.field, a.old_value, a.new_value, a.reason) for a in oldest.amendments] == [
        ("plan", "rencana lama", "rencana baru", "salah tulis dosis")
    ]
    assert newest.amendments == []
