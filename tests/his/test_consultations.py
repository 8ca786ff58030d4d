"""Consultations through the service: validation, sign-off, amendments, concurrency, audit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from rekam.his import consultations as consultations_module
from rekam.his.audit import verify_audit_chain
from rekam.his.consultations import (
    ConsultationInput,
    ConsultationService,
    DiagnosisInput,
    VitalSigns,
)
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.installation import Clinic, open_clinic
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.rbac import Actor, Role
from rekam.store.models import Amendment, AuditEntry, Consultation, Diagnosis
from support.people import make_patient
from support.servers import make_installation

ADMIN = Actor(user_id=None, username="admin.test", role=Role.ADMIN, source_address="10.0.0.9")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    """A clinic on each database engine (the PostgreSQL one on a real server)."""
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("consultations"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


@dataclass
class Staff:
    doctor: Actor
    doctor_practitioner: str
    other_doctor: Actor
    nurse: Actor
    nurse_practitioner: str
    pharmacist: Actor
    unlinked_doctor: Actor


_counter = iter(range(1, 1_000_000))


def _user(clinic: Clinic, prefix: str, role: Role) -> Actor:
    username = f"{prefix}{next(_counter)}"
    created = clinic.accounts.create_user(
        Actor.system(), username, username.title(), role, "Pagi-Cerah-Sehat-2026"
    )
    return Actor(user_id=created.user.id, username=username, role=role, source_address="10.0.0.7")


def _practitioner(clinic: Clinic, actor: Actor, profession: str, name: str) -> str:
    service = PractitionerService.for_clinic(clinic)
    record = service.create(
        ADMIN, PractitionerInput(name=name, profession=profession, user_id=actor.user_id)
    )
    return record.id


@pytest.fixture(scope="module")
def staff(clinic: Clinic) -> Staff:
    doctor = _user(clinic, "dr.", Role.DOCTOR)
    other = _user(clinic, "dr.other.", Role.DOCTOR)
    _practitioner(clinic, other, "doctor", "dr. Budi Santoso")
    nurse = _user(clinic, "ns.", Role.NURSE)
    return Staff(
        doctor=doctor,
        doctor_practitioner=_practitioner(clinic, doctor, "doctor", "dr. Andi Wijaya"),
        other_doctor=other,
        nurse=nurse,
        nurse_practitioner=_practitioner(clinic, nurse, "nurse", "Ns. Dewi Lestari"),
        pharmacist=_user(clinic, "apt.", Role.PHARMACIST),
        unlinked_doctor=_user(clinic, "dr.unlinked.", Role.DOCTOR),
    )


@pytest.fixture
def service(clinic: Clinic) -> ConsultationService:
    return ConsultationService.for_clinic(clinic)


def _patient(clinic: Clinic, staff: Staff) -> str:
    return clinic.patients.register(staff.nurse, make_patient("Siti Rahmawati")).id


def _audit_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _last_audit(clinic: Clinic) -> AuditEntry:
    with clinic.database.transaction() as session:
        entry = session.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
        assert entry is not None
        return entry


GOOD = ConsultationInput(
    complaint="batuk pilek 3 hari, demam",
    examination="faring hiperemis",
    vital_signs=VitalSigns(systolic=150, diastolic=95, heart_rate=88, temperature=37.9, spo2=98),
    diagnoses=(DiagnosisInput("j069", "ISPA"), DiagnosisInput("I10", "hipertensi")),
    plan="paracetamol 3x500 mg, kontrol 3 hari",
)


def test_create_and_read_a_draft(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    patient = _patient(clinic, staff)
    created = service.create(staff.doctor, patient, GOOD)
    assert created.status == "draft"
    assert created.practitioner_id == staff.doctor_practitioner
    assert created.started_at.tzinfo is not None
    assert created.started_at.utcoffset() == timedelta(0)
    read = service.get(staff.nurse, created.id)
    assert read.complaint == "batuk pilek 3 hari, demam"
    assert read.vital_signs == VitalSigns(
        systolic=150, diastolic=95, heart_rate=88, temperature=37.9, spo2=98
    )
    assert [(d.rank, d.code, d.text) for d in read.diagnoses] == [
        (1, "J06.9", "ISPA"),
        (2, "I10", "hipertensi"),
    ]
    # nothing readable in the database
    with clinic.database.transaction() as session:
        row = session.get(Consultation, created.id)
        assert row is not None and row.complaint_enc is not None
        assert b"batuk" not in row.complaint_enc
        assert b"150" not in (row.vital_signs_enc or b"")
        codes = list(session.scalars(select(Diagnosis.code_enc)))
        assert codes and all(b"J06" not in c and b"I10" not in c for c in codes)


def test_ranks_put_the_primary_diagnosis_first(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    data = ConsultationInput(
        diagnoses=(DiagnosisInput("E11.9", rank=2), DiagnosisInput("K30", rank=1))
    )
    record = service.create(staff.doctor, _patient(clinic, staff), data)
    assert [d.code for d in record.diagnoses] == ["K30", "E11.9"]


@pytest.mark.parametrize(
    ("vitals", "key", "field"),
    [
        (VitalSigns(systolic=20), "vitals.systolic", "systolic"),
        (VitalSigns(systolic=400), "vitals.systolic", "systolic"),
        (VitalSigns(diastolic=250), "vitals.diastolic", "diastolic"),
        (VitalSigns(heart_rate=5), "vitals.heart_rate", "heart_rate"),
        (VitalSigns(temperature=47.5), "vitals.temperature", "temperature"),
        (VitalSigns(temperature=25), "vitals.temperature", "temperature"),
        (VitalSigns(spo2=101), "vitals.spo2", "spo2"),
        (VitalSigns(weight=0), "vitals.weight", "weight"),
        (VitalSigns(height=300), "vitals.height", "height"),
        (VitalSigns(systolic=80, diastolic=90), "vitals.pressure_order", "diastolic"),
        (VitalSigns(spo2=float("nan")), "vitals.spo2", "spo2"),
    ],
)
def test_vital_signs_out_of_range_are_refused(
    clinic: Clinic,
    staff: Staff,
    service: ConsultationService,
    vitals: VitalSigns,
    key: str,
    field: str,
) -> None:
    patient = _patient(clinic, staff)
    before = _audit_count(clinic)
    with pytest.raises(ValidationFailed) as refused:
        service.create(staff.doctor, patient, ConsultationInput(vital_signs=vitals))
    assert refused.value.key == key and refused.value.field == field
    assert _audit_count(clinic) == before


def test_boundary_vital_signs_are_accepted(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    vitals = VitalSigns(systolic=300, diastolic=20, heart_rate=20, temperature=45, spo2=100)
    record = service.create(
        staff.doctor, _patient(clinic, staff), ConsultationInput(vital_signs=vitals)
    )
    assert record.vital_signs is not None and record.vital_signs.spo2 == 100


@pytest.mark.parametrize("code", ["I1", "110", "E11.999", "EE1.9", "J06-9", "", "Z"])
def test_malformed_icd10_codes_are_refused(
    clinic: Clinic, staff: Staff, service: ConsultationService, code: str
) -> None:
    data = ConsultationInput(diagnoses=(DiagnosisInput(code),))
    with pytest.raises(ValidationFailed) as refused:
        service.create(staff.doctor, _patient(clinic, staff), data)
    assert refused.value.key == "icd10.format"


def test_duplicate_diagnoses_and_ranks_are_refused(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    patient = _patient(clinic, staff)
    twice = ConsultationInput(diagnoses=(DiagnosisInput("I10"), DiagnosisInput("i10")))
    with pytest.raises(ValidationFailed) as refused:
        service.create(staff.doctor, patient, twice)
    assert refused.value.key == "diagnosis.duplicate"
    same_rank = ConsultationInput(
        diagnoses=(DiagnosisInput("I10", rank=1), DiagnosisInput("K30", rank=1))
    )
    with pytest.raises(ValidationFailed) as refused:
        service.create(staff.doctor, patient, same_rank)
    assert refused.value.key == "diagnosis.rank"


def test_time_must_be_plausible(clinic: Clinic, staff: Staff, service: ConsultationService) -> None:
    patient = _patient(clinic, staff)
    future = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(ValidationFailed) as refused:
        service.create(staff.doctor, patient, ConsultationInput(started_at=future))
    assert refused.value.key == "consultation.started_at"
    naive = datetime(2026, 1, 5, 9, 0)
    with pytest.raises(ValidationFailed):
        service.create(staff.doctor, patient, ConsultationInput(started_at=naive))
    jakarta = datetime.fromisoformat("2026-01-05T09:00:00+07:00")
    stored = service.create(staff.doctor, patient, ConsultationInput(started_at=jakarta))
    assert stored.started_at == datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def test_practitioner_defaults_to_the_actor_or_must_be_chosen(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    patient = _patient(clinic, staff)
    with pytest.raises(ValidationFailed) as refused:
        service.create(staff.unlinked_doctor, patient, GOOD)
    assert refused.value.key == "consultation.no_practitioner"
    chosen = service.create(staff.nurse, patient, GOOD, practitioner_id=staff.doctor_practitioner)
    assert chosen.practitioner_id == staff.doctor_practitioner
    by_nurse = service.create(staff.nurse, patient, GOOD)
    assert by_nurse.practitioner_id == staff.nurse_practitioner


def test_roles_are_refused(clinic: Clinic, staff: Staff, service: ConsultationService) -> None:
    patient = _patient(clinic, staff)
    created = service.create(staff.doctor, patient, GOOD)
    for actor in (staff.pharmacist, ADMIN):
        with pytest.raises(PermissionDenied):
            service.create(actor, patient, GOOD)
        with pytest.raises(PermissionDenied):
            service.get(actor, created.id)
        with pytest.raises(PermissionDenied):
            service.list_for_patient(actor, patient)
    with pytest.raises(PermissionDenied):
        service.sign(staff.nurse, created.id)  # nurses do not sign
    with pytest.raises(NotFound):
        service.get(staff.doctor, "00000000-0000-0000-0000-000000000000")


def test_a_patient_account_sees_only_its_own_consultations(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    patient = _patient(clinic, staff)
    created = service.create(staff.doctor, patient, GOOD)
    stranger = _user(clinic, "pasien.", Role.PATIENT)
    with pytest.raises(NotFound):
        service.get(stranger, created.id)


def test_sign_off_only_by_its_own_doctor(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), GOOD)
    with pytest.raises(PermissionDenied) as refused:
        service.sign(staff.other_doctor, created.id)
    assert refused.value.key == "consultation.not_own"
    signed = service.sign(staff.doctor, created.id, version=created.version)
    assert signed.status == "signed"
    assert signed.signed_by == staff.doctor.user_id
    assert signed.signed_at is not None
    with pytest.raises(Conflict):
        service.sign(staff.doctor, created.id)


def test_sign_off_needs_a_diagnosis(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), ConsultationInput())
    with pytest.raises(ValidationFailed) as refused:
        service.sign(staff.doctor, created.id)
    assert refused.value.key == "consultation.sign_needs_diagnosis"
    assert service.get(staff.doctor, created.id).status == "draft"


def test_update_draft_with_optimistic_concurrency(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), GOOD)
    first = ConsultationInput(complaint="batuk 5 hari", diagnoses=(DiagnosisInput("J00"),))
    updated = service.update(staff.nurse, created.id, first, version=created.version)
    assert updated.version == created.version + 1
    assert updated.complaint == "batuk 5 hari"
    assert [d.code for d in updated.diagnoses] == ["J00"]
    assert updated.vital_signs is None
    with pytest.raises(Conflict) as refused:  # the doctor still holds the old version
        service.update(staff.doctor, created.id, GOOD, version=created.version)
    assert refused.value.key == "encounters.stale"
    assert service.get(staff.doctor, created.id).complaint == "batuk 5 hari"


def test_no_update_after_sign_off_only_amendments(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), GOOD)
    signed = service.sign(staff.doctor, created.id)
    with pytest.raises(Conflict) as refused:
        service.update(staff.doctor, created.id, GOOD, version=signed.version)
    assert refused.value.key == "consultation.signed"

    amended = service.amend(
        staff.doctor, created.id, "plan", "amoksisilin 3x500 mg", "salah tulis obat"
    )
    assert amended.plan == "amoksisilin 3x500 mg"
    assert amended.status == "signed"
    [history] = amended.amendments
    assert history.field == "plan"
    assert history.old_value == GOOD.plan
    assert history.new_value == "amoksisilin 3x500 mg"
    assert history.reason == "salah tulis obat"
    assert history.amended_by == staff.doctor.user_id

    vitals = VitalSigns(systolic=140, diastolic=90)
    again = service.amend(staff.doctor, created.id, "vital_signs", vitals, "tensi diulang")
    assert again.vital_signs == vitals
    assert '"systolic": 150' in (again.amendments[1].old_value or "")

    diagnoses = [DiagnosisInput("J02.9", "faringitis")]
    third = service.amend(staff.doctor, created.id, "diagnoses", diagnoses, "koreksi diagnosis")
    assert [d.code for d in third.diagnoses] == ["J02.9"]
    assert "J06.9" in (third.amendments[2].old_value or "")
    # the stored history is encrypted
    with clinic.database.transaction() as session:
        rows = list(session.scalars(select(Amendment).where(Amendment.record_id == created.id)))
        assert len(rows) == 3
        assert all(b"salah" not in r.reason_enc for r in rows)
        assert all(b"paracetamol" not in (r.old_value_enc or b"") for r in rows)


def test_amendment_rules(clinic: Clinic, staff: Staff, service: ConsultationService) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), GOOD)
    with pytest.raises(Conflict):  # drafts are edited, not amended
        service.amend(staff.doctor, created.id, "plan", "x", "alasan jelas")
    service.sign(staff.doctor, created.id)
    with pytest.raises(PermissionDenied):
        service.amend(staff.other_doctor, created.id, "plan", "x", "alasan jelas")
    with pytest.raises(ValidationFailed) as refused:
        service.amend(staff.doctor, created.id, "plan", "x", "ok")
    assert refused.value.key == "amendment.reason"
    with pytest.raises(ValidationFailed) as refused:
        service.amend(staff.doctor, created.id, "status", "draft", "alasan jelas")
    assert refused.value.key == "amendment.field"
    with pytest.raises(ValidationFailed) as refused:
        service.amend(staff.doctor, created.id, "plan", GOOD.plan, "alasan jelas")
    assert refused.value.key == "amendment.unchanged"
    with pytest.raises(ValidationFailed) as refused:
        service.amend(staff.doctor, created.id, "vital_signs", VitalSigns(spo2=120), "alasan jelas")
    assert refused.value.key == "vitals.spo2"
    assert service.get(staff.doctor, created.id).amendments == []


def test_exactly_one_audit_entry_per_call(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    patient = _patient(clinic, staff)
    calls: list[tuple[str, Any]] = []

    def run(action: str, call: Any) -> Any:
        before = _audit_count(clinic)
        result = call()
        assert _audit_count(clinic) == before + 1, action
        entry = _last_audit(clinic)
        assert entry.action == action
        assert entry.patient_id in (patient, None)
        calls.append((action, result))
        return result

    created = run("consultation.create", lambda: service.create(staff.doctor, patient, GOOD))
    run("consultation.read", lambda: service.get(staff.doctor, created.id))
    updated = run(
        "consultation.update",
        lambda: service.update(staff.doctor, created.id, GOOD, version=created.version),
    )
    run("consultation.list", lambda: service.list_for_patient(staff.doctor, patient))
    run("consultation.worklist", lambda: service.worklist(staff.doctor))
    run("consultation.sign", lambda: service.sign(staff.doctor, created.id, updated.version))
    run(
        "consultation.amend",
        lambda: service.amend(staff.doctor, created.id, "complaint", "batuk", "typo keluhan"),
    )
    assert _last_audit(clinic).record == created.id
    with clinic.database.transaction() as session:
        assert verify_audit_chain(session).intact
        details = " ".join(session.scalars(select(AuditEntry.detail)))
    assert "batuk" not in details  # no clinical content in the audit trail


def test_no_partial_write_on_error(
    clinic: Clinic, staff: Staff, service: ConsultationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), GOOD)
    service.sign(staff.doctor, created.id)

    def broken_audit(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(consultations_module, "append_audit", broken_audit)
    with pytest.raises(RuntimeError):
        service.amend(
            staff.doctor, created.id, "diagnoses", [DiagnosisInput("A09")], "koreksi diagnosis"
        )
    monkeypatch.undo()
    after = service.get(staff.doctor, created.id)
    assert [d.code for d in after.diagnoses] == ["J06.9", "I10"]
    assert after.amendments == []
    with clinic.database.transaction() as session:
        count = session.scalar(
            select(func.count()).select_from(Amendment).where(Amendment.record_id == created.id)
        )
        assert count == 0


def test_worklist_shows_own_drafts_and_recent_signed(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    patient = _patient(clinic, staff)
    draft = service.create(staff.doctor, patient, GOOD)
    done = service.create(staff.doctor, patient, GOOD)
    service.sign(staff.doctor, done.id)
    other = service.create(staff.other_doctor, patient, GOOD)
    service.sign(staff.other_doctor, other.id)
    mine = service.worklist(staff.doctor)
    assert draft.id in [s.id for s in mine.drafts]
    assert done.id in [s.id for s in mine.recent]
    assert other.id not in [s.id for s in mine.recent]
    entry = next(s for s in mine.drafts if s.id == draft.id)
    assert entry.patient_name == "Siti Rahmawati"
    assert entry.primary_diagnosis == "J06.9"
    with pytest.raises(PermissionDenied):
        service.worklist(staff.pharmacist)


def test_concurrent_updates_of_one_version_let_exactly_one_win(
    clinic: Clinic, staff: Staff, service: ConsultationService
) -> None:
    created = service.create(staff.doctor, _patient(clinic, staff), GOOD)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def edit(number: int) -> None:
        data = ConsultationInput(complaint=f"versi {number}", diagnoses=(DiagnosisInput("J00"),))
        barrier.wait()
        try:
            service.update(staff.nurse, created.id, data, version=created.version)
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "saved"]
    final = service.get(staff.doctor, created.id)
    assert final.version == created.version + 1
    assert [d.code for d in final.diagnoses] == ["J00"]  # one writer's diagnoses, not a mix
