"""Fictitious visits for the demo clinic: a formulary, practitioners for the demo doctors and
nurse, and signed consultations with vital signs, diagnoses, lab results and dispensed
prescriptions, so a newcomer's medical records are not empty."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from rekam.his.consultations import (
    ConsultationInput,
    ConsultationService,
    DiagnosisInput,
    VitalSigns,
)
from rekam.his.errors import HisError
from rekam.his.laboratory import LaboratoryService, RequestedTest, ResultInput
from rekam.his.pharmacy import AllergyWarning, MedicineInput, PharmacyService, PrescriptionInput
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.rbac import Actor, Role

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

FORMULARY = (
    ("Amlodipin", "tablet", "5 mg"),
    ("Metformin", "tablet", "500 mg"),
    ("Parasetamol", "tablet", "500 mg"),
    ("Amoksisilin", "kapsul", "500 mg"),
    ("Omeprazol", "kapsul", "20 mg"),
    ("Salbutamol", "inhaler", "100 mcg/dosis"),
    ("Cetirizin", "tablet", "10 mg"),
    ("Oralit", "serbuk", "200 ml"),
)


@dataclass(frozen=True)
class Scenario:
    complaint: str
    examination: str
    vitals: VitalSigns
    diagnosis: tuple[str, str]
    plan: str
    lab: tuple[str, str] | None  # catalogue code, value
    medicine: str
    dose: str
    frequency: str
    days: int


SCENARIOS = (
    Scenario(
        "pusing, tengkuk terasa berat",
        "kesadaran baik, jantung paru normal",
        VitalSigns(systolic=162, diastolic=96, heart_rate=84, temperature=36.6),
        ("I10", "hipertensi esensial"),
        "diet rendah garam, kontrol 2 minggu",
        ("2093-3", "236"),
        "Amlodipin",
        "5 mg",
        "1x sehari",
        14,
    ),
    Scenario(
        "sering haus dan buang air kecil",
        "gizi lebih, akral hangat",
        VitalSigns(systolic=134, diastolic=84, heart_rate=78, weight=82, height=165),
        ("E11.9", "diabetes melitus tipe 2"),
        "edukasi diet, olahraga, kontrol 1 bulan",
        ("2345-7", "248"),
        "Metformin",
        "500 mg",
        "2x sehari",
        30,
    ),
    Scenario(
        "demam, batuk pilek 3 hari",
        "faring hiperemis, paru bersih",
        VitalSigns(temperature=38.2, heart_rate=96, spo2=98),
        ("J06.9", "ISPA"),
        "istirahat, banyak minum",
        None,
        "Parasetamol",
        "500 mg",
        "3x sehari bila demam",
        3,
    ),
    Scenario(
        "nyeri ulu hati, mual",
        "nyeri tekan epigastrium",
        VitalSigns(systolic=118, diastolic=76, heart_rate=80, temperature=36.8),
        ("K30", "dispepsia"),
        "makan teratur, hindari pedas",
        None,
        "Omeprazol",
        "20 mg",
        "1x sehari sebelum makan",
        7,
    ),
    Scenario(
        "diare cair 5x sejak kemarin",
        "turgor baik, bising usus meningkat",
        VitalSigns(temperature=37.4, heart_rate=92),
        ("A09", "gastroenteritis"),
        "rehidrasi oral",
        ("718-7", "13.1"),
        "Oralit",
        "1 sachet",
        "setiap kali BAB cair",
        3,
    ),
)


def _actor(clinic: Clinic, username: str, role: Role) -> Actor:
    user = clinic.accounts.get_user(Actor.system(), username)
    return Actor(user_id=user.id, username=user.username, role=role, source_address="local")


def load_demo_visits(clinic: Clinic, patient_ids: list[str], seed: int = 2026) -> int:
    """Give some demo patients a signed visit each; returns how many visits were recorded."""
    rng = random.Random(seed)  # noqa: S311 - fictitious demo data, not security
    practitioners = PractitionerService.for_clinic(clinic)
    consultations = ConsultationService.for_clinic(clinic)
    laboratory = LaboratoryService.for_clinic(clinic)
    pharmacy = PharmacyService.for_clinic(clinic)
    doctor = _actor(clinic, "dr.sari", Role.DOCTOR)
    lab = _actor(clinic, "lab.agus", Role.LAB)
    pharmacist = _actor(clinic, "apt.rina", Role.PHARMACIST)
    for username, name, profession, specialty in (
        ("dr.sari", "dr. Sari Wulandari", "doctor", None),
        ("dr.bambang", "dr. Bambang Hartono, Sp.JP", "doctor", "Jantung dan pembuluh darah"),
        ("ns.dewi", "Ns. Dewi Lestari", "nurse", None),
    ):
        user = clinic.accounts.get_user(Actor.system(), username)
        if practitioners.practitioner_for_user(user.id) is None:
            practitioners.create(
                Actor.system(),
                PractitionerInput(
                    name=name, profession=profession, specialty=specialty, user_id=user.id
                ),
            )
    medicines = {m.name: m.id for m in pharmacy.list_medicines(Actor.system())}
    for name, form, strength in FORMULARY:
        if name not in medicines:
            created = pharmacy.create_medicine(
                Actor.system(), MedicineInput(name=name, form=form, strength=strength), stock=500
            )
            medicines[name] = created.id
    visits = 0
    now = datetime.now(UTC)
    for patient_id in patient_ids:
        scenario = rng.choice(SCENARIOS)
        try:
            visit = consultations.create(
                doctor,
                patient_id,
                ConsultationInput(
                    started_at=now - timedelta(days=rng.randint(1, 60), hours=rng.randint(0, 8)),
                    complaint=scenario.complaint,
                    examination=scenario.examination,
                    vital_signs=scenario.vitals,
                    diagnoses=[
                        DiagnosisInput(code=scenario.diagnosis[0], text=scenario.diagnosis[1])
                    ],
                    plan=scenario.plan,
                ),
            )
            if scenario.lab is not None:
                order = laboratory.order_tests(
                    doctor, visit.id, [RequestedTest(code=scenario.lab[0])]
                )
                laboratory.enter_result(lab, order[0].id, ResultInput(value=scenario.lab[1]))
            line = PrescriptionInput(
                medicine_id=medicines[scenario.medicine],
                dose=scenario.dose,
                route="oral",
                frequency=scenario.frequency,
                duration=f"{scenario.days} hari",
                quantity=scenario.days if scenario.days < 30 else 60,
            )
            try:
                prescription = pharmacy.prescribe(doctor, visit.id, line)
            except AllergyWarning:  # as a doctor would: confirm it with a reason
                confirmed = replace(
                    line, allergy_override_reason="alergi dikonfirmasi tidak relevan"
                )
                prescription = pharmacy.prescribe(doctor, visit.id, confirmed)
            consultations.sign(doctor, visit.id)
            pharmacy.dispense(pharmacist, prescription.id)
        except HisError:
            continue  # a demo patient the scenario does not fit: skip, the rest still loads
        visits += 1
    return visits
