"""Pharmacy through the service: formulary, prescriptions, allergy warnings, dispensing and stock,
concurrency, roles, audit — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from rekam.crypto import FieldContext
from rekam.his.audit import verify_audit_chain
from rekam.his.errors import Conflict, HisError, NotFound, PermissionDenied, ValidationFailed
from rekam.his.installation import Clinic, open_clinic
from rekam.his.pharmacy import (
    AllergyWarning,
    MedicineInput,
    PharmacyService,
    PrescriptionInput,
    matching_allergy,
)
from rekam.his.rbac import Actor, Role
from rekam.store.models import AuditEntry, Consultation, Medicine, Practitioner, Prescription
from support.people import make_patient
from support.servers import make_installation


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("pharmacy"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


@pytest.fixture(scope="module")
def pharmacy(clinic: Clinic) -> PharmacyService:
    return PharmacyService.for_clinic(clinic)


DOCTOR = Actor(user_id=None, username="dr.test", role=Role.DOCTOR, source_address="10.0.0.9")
NURSE = Actor(user_id=None, username="ns.test", role=Role.NURSE, source_address="10.0.0.9")
PHARMACIST = Actor(user_id=None, username="ph.test", role=Role.PHARMACIST)
PHARMACIST_2 = Actor(user_id=None, username="ph.two", role=Role.PHARMACIST)
ANALYST = Actor(user_id=None, username="lab.test", role=Role.LAB)
ADMIN = Actor(user_id=None, username="admin.test", role=Role.ADMIN)
REGISTRATION = Actor(user_id=None, username="reg.test", role=Role.REGISTRATION)


def new_consultation(clinic: Clinic, allergies: str = "udang") -> tuple[str, str]:
    patient = clinic.patients.register(
        NURSE, replace(make_patient("Budi Santoso", "M"), allergies=allergies)
    )
    with clinic.database.transaction(write=True) as session:
        doctor = Practitioner(name="dr. Rina", profession="doctor")
        session.add(doctor)
        session.flush()
        consultation = Consultation(
            patient_id=patient.id, practitioner_id=doctor.id, started_at=datetime.now(UTC)
        )
        session.add(consultation)
        session.flush()
        return patient.id, consultation.id


def new_medicine(pharmacy: PharmacyService, name: str, stock: int) -> str:
    unique = uuid.uuid4().hex[:6]
    return pharmacy.create_medicine(
        PHARMACIST, MedicineInput(name, "tablet", f"500 mg {unique}"), stock=stock
    ).id


def line(medicine_id: str, quantity: int = 10, **extra: str) -> PrescriptionInput:
    return PrescriptionInput(
        medicine_id=medicine_id,
        dose="500 mg",
        route="oral",
        frequency="3x sehari",
        duration="5 hari",
        quantity=quantity,
        **extra,
    )


def audit_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def prescription_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Prescription)) or 0)


def stock_of(clinic: Clinic, medicine_id: str) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(Medicine.stock).where(Medicine.id == medicine_id)) or 0)


def last_action(clinic: Clinic) -> tuple[str, str | None]:
    with clinic.database.transaction() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert entry is not None
        return entry.action, entry.patient_id


# Allergy matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allergies", "medicine", "matched"),
    [
        ("penisilin", "Amoxicillin", "penisilin"),
        ("Penicillin", "Amoksisilin", "Penicillin"),
        ("udang, alergi penisilin", "Ampisilin", "alergi penisilin"),
        ("sulfa", "Kotrimoksazol", "sulfa"),
        ("sulfa", "Cotrimoxazole forte", "sulfa"),
        ("amoksisilin", "Amoxicillin", "amoksisilin"),
        ("amoxicillin", "Co-Amoxiclav", None),
        ("penisilin", "Co-Amoxiclav", "penisilin"),
        ("OAINS", "Ibuprofen", "OAINS"),
        ("asetosal; debu", "Aspirin", "asetosal"),
        ("penisilin", "Paracetamol", None),
        ("udang, kacang", "Amoxicillin", None),
        ("", "Amoxicillin", None),
        (None, "Amoxicillin", None),
    ],
)
def test_allergy_matching_table(allergies: str | None, medicine: str, matched: str | None) -> None:
    assert matching_allergy(allergies, medicine) == matched


# Formulary ---------------------------------------------------------------------------------------


def test_formulary_create_update_receive(clinic: Clinic, pharmacy: PharmacyService) -> None:
    before = audit_count(clinic)
    created = pharmacy.create_medicine(
        PHARMACIST, MedicineInput("Metformin", "tablet", "500 mg"), stock=30
    )
    assert audit_count(clinic) == before + 1 and last_action(clinic) == ("medicine.create", None)
    with pytest.raises(Conflict):
        pharmacy.create_medicine(PHARMACIST, MedicineInput("Metformin", "tablet", "500 mg"))
    with pytest.raises(ValidationFailed):
        pharmacy.create_medicine(PHARMACIST, MedicineInput("M", "tablet", "500 mg"))
    updated = pharmacy.update_medicine(
        ADMIN, created.id, MedicineInput("Metformin HCl", "tablet", "500 mg"), created.version
    )
    assert updated.name == "Metformin HCl" and updated.version == created.version + 1
    with pytest.raises(Conflict):  # a stale form
        pharmacy.update_medicine(
            PHARMACIST, created.id, MedicineInput("Metformin X", "tablet", "500 mg"), 1
        )
    received = pharmacy.receive_stock(PHARMACIST, created.id, 70)
    assert received.stock == 100 and stock_of(clinic, created.id) == 100
    with pytest.raises(ValidationFailed):
        pharmacy.receive_stock(PHARMACIST, created.id, 0)
    with pytest.raises(NotFound):
        pharmacy.receive_stock(PHARMACIST, "no-such-medicine", 5)
    assert pharmacy.get_medicine(NURSE, created.id).name == "Metformin HCl"
    assert created.id in [m.id for m in pharmacy.list_medicines(DOCTOR)]


@pytest.mark.parametrize("actor", [DOCTOR, NURSE, ANALYST, REGISTRATION])
def test_formulary_writes_need_the_permission(pharmacy: PharmacyService, actor: Actor) -> None:
    with pytest.raises(PermissionDenied):
        pharmacy.create_medicine(actor, MedicineInput("Antasida", "tablet", "200 mg"))


# Prescriptions -----------------------------------------------------------------------------------


def test_prescription_is_encrypted_and_audited(clinic: Clinic, pharmacy: PharmacyService) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Paracetamol", 100)
    before = audit_count(clinic)
    made = pharmacy.prescribe(
        DOCTOR, consultation_id, line(medicine_id, 10, instructions="sesudah makan"), patient_id
    )
    assert audit_count(clinic) == before + 1
    assert last_action(clinic) == ("prescription.create", patient_id)
    assert (made.status, made.quantity, made.dose, made.route) == (
        "prescribed",
        10,
        "500 mg",
        "oral",
    )
    assert made.patient_name == "Budi Santoso" and made.allergy_override_reason is None
    with clinic.database.transaction() as session:
        row = session.get(Prescription, made.id)
        assert row is not None and b"sesudah" not in row.details_enc
        details = json.loads(
            clinic.fields.decrypt_text(
                row.details_enc, FieldContext("prescriptions", "details", made.id, patient_id)
            )
        )
        assert details["frequency"] == "3x sehari" and details["instructions"] == "sesudah makan"
    assert [p.id for p in pharmacy.for_consultation(NURSE, consultation_id)] == [made.id]


def test_prescription_validation_writes_nothing(clinic: Clinic, pharmacy: PharmacyService) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    _, other_consultation = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Paracetamol", 100)
    before = (prescription_count(clinic), audit_count(clinic))
    for data, key in (
        (replace(line(medicine_id), dose=""), "prescription.dose_invalid"),
        (replace(line(medicine_id), route="telinga kiri"), "prescription.route_invalid"),
        (replace(line(medicine_id), quantity=0), "prescription.quantity"),
        (replace(line(medicine_id), quantity=10_001), "prescription.quantity"),
        (replace(line(medicine_id), frequency="x" * 101), "prescription.frequency_invalid"),
        (line("no-such-medicine"), "prescription.medicine"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            pharmacy.prescribe(DOCTOR, consultation_id, data)
        assert refused.value.key == key
    with pytest.raises(ValidationFailed):
        pharmacy.prescribe(DOCTOR, other_consultation, line(medicine_id), patient_id)
    with pytest.raises(NotFound):
        pharmacy.prescribe(DOCTOR, "no-such-consultation", line(medicine_id))
    assert (prescription_count(clinic), audit_count(clinic)) == before


def test_allergy_warning_and_override(clinic: Clinic, pharmacy: PharmacyService) -> None:
    _, consultation_id = new_consultation(clinic, allergies="debu, penisilin")
    amoxicillin = new_medicine(pharmacy, "Amoksisilin", 100)
    before = (prescription_count(clinic), audit_count(clinic))
    with pytest.raises(AllergyWarning) as warned:
        pharmacy.prescribe(DOCTOR, consultation_id, line(amoxicillin))
    assert warned.value.code == "allergy_warning"
    assert warned.value.details["allergy"] == "penisilin"
    assert (prescription_count(clinic), audit_count(clinic)) == before
    with pytest.raises(ValidationFailed):  # a reason too short to mean anything
        pharmacy.prescribe(DOCTOR, consultation_id, line(amoxicillin, allergy_override_reason="ok"))
    made = pharmacy.prescribe(
        DOCTOR,
        consultation_id,
        line(amoxicillin, allergy_override_reason="riwayat ruam ringan, sudah uji kulit negatif"),
    )
    assert made.allergy_override_reason == "riwayat ruam ringan, sudah uji kulit negatif"
    with clinic.database.transaction() as session:
        row = session.get(Prescription, made.id)
        assert row is not None and row.allergy_override_enc is not None
        assert b"ruam" not in row.allergy_override_enc
    # an override reason for a medicine that matches nothing is not stored
    paracetamol = new_medicine(pharmacy, "Paracetamol", 10)
    plain = pharmacy.prescribe(
        DOCTOR, consultation_id, line(paracetamol, 1, allergy_override_reason="tidak perlu")
    )
    assert plain.allergy_override_reason is None


@pytest.mark.parametrize("actor", [NURSE, PHARMACIST, ANALYST, ADMIN, REGISTRATION])
def test_only_doctors_prescribe(clinic: Clinic, pharmacy: PharmacyService, actor: Actor) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Paracetamol", 10)
    before = prescription_count(clinic)
    with pytest.raises(PermissionDenied):
        pharmacy.prescribe(actor, consultation_id, line(medicine_id, 1))
    assert prescription_count(clinic) == before


# Dispensing --------------------------------------------------------------------------------------


def test_dispense_decrements_stock_once(clinic: Clinic, pharmacy: PharmacyService) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Captopril", 25)
    made = pharmacy.prescribe(DOCTOR, consultation_id, line(medicine_id, 10))
    assert made.id in [p.id for p in pharmacy.worklist(PHARMACIST)]
    before = audit_count(clinic)
    done = pharmacy.dispense(PHARMACIST, made.id)
    assert audit_count(clinic) == before + 1
    assert last_action(clinic) == ("prescription.dispense", patient_id)
    assert done.status == "dispensed" and done.dispensed_by == "ph.test"
    assert done.dispensed_at is not None
    assert stock_of(clinic, medicine_id) == 15
    before = audit_count(clinic)
    with pytest.raises(Conflict) as twice:
        pharmacy.dispense(PHARMACIST, made.id)
    assert twice.value.key == "prescription.already_dispensed"
    assert stock_of(clinic, medicine_id) == 15 and audit_count(clinic) == before
    assert made.id not in [p.id for p in pharmacy.worklist(PHARMACIST)]
    assert made.id in [p.id for p in pharmacy.worklist(PHARMACIST, status="dispensed")]


def test_insufficient_stock_is_refused_and_nothing_changes(
    clinic: Clinic, pharmacy: PharmacyService
) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Salbutamol", 5)
    made = pharmacy.prescribe(DOCTOR, consultation_id, line(medicine_id, 6))
    before = audit_count(clinic)
    with pytest.raises(Conflict) as short:
        pharmacy.dispense(PHARMACIST, made.id)
    assert short.value.key == "prescription.insufficient_stock"
    assert short.value.details["available"] == 5
    assert stock_of(clinic, medicine_id) == 5 and audit_count(clinic) == before
    assert pharmacy.get_prescription(PHARMACIST, made.id).status == "prescribed"  # rolled back
    pharmacy.receive_stock(PHARMACIST, medicine_id, 1)
    assert pharmacy.dispense(PHARMACIST, made.id).status == "dispensed"
    assert stock_of(clinic, medicine_id) == 0


@pytest.mark.parametrize("actor", [DOCTOR, NURSE, ANALYST, ADMIN, REGISTRATION])
def test_only_pharmacists_dispense(clinic: Clinic, pharmacy: PharmacyService, actor: Actor) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Antasida", 10)
    made = pharmacy.prescribe(DOCTOR, consultation_id, line(medicine_id, 1))
    with pytest.raises(PermissionDenied):
        pharmacy.dispense(actor, made.id)
    assert stock_of(clinic, medicine_id) == 10


def test_pharmacist_and_lab_access(clinic: Clinic, pharmacy: PharmacyService) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Antasida", 10)
    made = pharmacy.prescribe(DOCTOR, consultation_id, line(medicine_id, 1))
    before = audit_count(clinic)
    assert pharmacy.get_prescription(PHARMACIST, made.id).id == made.id
    assert audit_count(clinic) == before + 1
    for actor in (ANALYST, ADMIN, REGISTRATION):
        with pytest.raises(PermissionDenied):
            pharmacy.get_prescription(actor, made.id)
        with pytest.raises(PermissionDenied):
            pharmacy.worklist(actor)
    assert audit_count(clinic) == before + 1


def _race(calls: list[tuple[Actor, str]], pharmacy: PharmacyService) -> list[object]:
    start = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, actor: Actor, prescription_id: str) -> None:
        start.wait()
        try:
            outcomes[index] = pharmacy.dispense(actor, prescription_id).status
        except HisError as exc:
            outcomes[index] = exc.key

    threads = [
        threading.Thread(target=run, args=(i, actor, pid)) for i, (actor, pid) in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_dispensers_cannot_oversell(clinic: Clinic, pharmacy: PharmacyService) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Ambroxol", 7)
    made = [pharmacy.prescribe(DOCTOR, consultation_id, line(medicine_id, 2)) for _ in range(6)]
    outcomes = _race(
        [(PHARMACIST if i % 2 else PHARMACIST_2, p.id) for i, p in enumerate(made)], pharmacy
    )
    assert outcomes.count("dispensed") == 3
    assert outcomes.count("prescription.insufficient_stock") == 3
    assert stock_of(clinic, medicine_id) == 1


def test_one_prescription_dispensed_concurrently_only_once(
    clinic: Clinic, pharmacy: PharmacyService
) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Loratadin", 50)
    made = pharmacy.prescribe(DOCTOR, consultation_id, line(medicine_id, 5))
    outcomes = _race([(PHARMACIST, made.id), (PHARMACIST_2, made.id)] * 2, pharmacy)
    assert outcomes.count("dispensed") == 1
    assert outcomes.count("prescription.already_dispensed") == 3
    assert stock_of(clinic, medicine_id) == 45


def test_audit_chain_still_verifies(clinic: Clinic) -> None:
    with clinic.database.transaction() as session:
        assert verify_audit_chain(session).intact


def test_text_that_cannot_be_stored_is_refused(clinic: Clinic, pharmacy: PharmacyService) -> None:
    _, consultation_id = new_consultation(clinic)
    medicine_id = new_medicine(pharmacy, "Paracetamol", 10)
    before = (prescription_count(clinic), audit_count(clinic))
    for bad in ("500\x00 mg", "500 \ud800mg"):
        with pytest.raises(ValidationFailed) as refused:
            pharmacy.prescribe(DOCTOR, consultation_id, replace(line(medicine_id), dose=bad))
        assert refused.value.key == "orders.text_invalid"
    with pytest.raises(ValidationFailed):
        pharmacy.create_medicine(PHARMACIST, MedicineInput("Obat\x00", "tablet", "1 mg"))
    for odd_id in ("x\x00y", "a" * 37, "Robert'); --"):
        with pytest.raises(NotFound):
            pharmacy.dispense(PHARMACIST, odd_id)
        with pytest.raises(NotFound):
            pharmacy.receive_stock(PHARMACIST, odd_id, 1)
        with pytest.raises(NotFound):
            pharmacy.prescribe(DOCTOR, odd_id, line(medicine_id))
    assert (prescription_count(clinic), audit_count(clinic)) == before
