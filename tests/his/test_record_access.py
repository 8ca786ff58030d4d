"""The one patient-access check: role permission, own record for patients, care relationship
for clinical roles, and break-glass outside it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from rekam.his.errors import NotFound, PermissionDenied
from rekam.his.installation import Clinic, open_clinic
from rekam.his.rbac import Actor, Permission, Role
from rekam.his.record_access import check_patient_access
from rekam.store.models import (
    Consultation,
    LabOrder,
    Medicine,
    Patient,
    Practitioner,
    Prescription,
)
from rekam.store.types import utc_now
from support.people import make_patient
from support.servers import make_installation

REGISTRAR = Actor(user_id=None, username="reg.test", role=Role.REGISTRATION)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    inst = make_installation(tmp_path_factory.mktemp("access"), "ecdsa-p256")
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


def staff(clinic: Clinic, name: str, role: Role) -> Actor:
    made = clinic.accounts.create_user(Actor.system(), name, name.title(), role)
    return Actor(user_id=made.user.id, username=name, role=role, source_address="10.0.0.5")


def practitioner(clinic: Clinic, actor: Actor | None, profession: str = "doctor") -> str:
    with clinic.database.transaction(write=True) as session:
        row = Practitioner(
            user_id=actor.user_id if actor else None, name="dr. Test", profession=profession
        )
        session.add(row)
        session.flush()
        return row.id


def old_patient(clinic: Clinic, days: int = 3) -> str:
    """A patient registered ``days`` ago (so no longer in today's queue)."""
    patient_id = clinic.patients.register(REGISTRAR, make_patient()).id
    with clinic.database.transaction(write=True) as session:
        row = session.get(Patient, patient_id)
        assert row is not None
        row.created_at = utc_now() - timedelta(days=days)
    return patient_id


def consultation(
    clinic: Clinic, patient_id: str, practitioner_id: str, status: str, days_ago: float
) -> str:
    with clinic.database.transaction(write=True) as session:
        row = Consultation(
            patient_id=patient_id,
            practitioner_id=practitioner_id,
            started_at=utc_now() - timedelta(days=days_ago),
            status=status,
        )
        session.add(row)
        session.flush()
        return row.id


def allowed(clinic: Clinic, actor: Actor, patient_id: str, permission: Permission) -> bool:
    with clinic.database.transaction() as session:
        try:
            check_patient_access(session, actor, patient_id, permission)
        except PermissionDenied:
            return False
    return True


@pytest.fixture(scope="module")
def people(clinic: Clinic) -> dict[str, Actor]:
    return {
        "doctor": staff(clinic, "dr.access", Role.DOCTOR),
        "other_doctor": staff(clinic, "dr.other", Role.DOCTOR),
        "nurse": staff(clinic, "ns.access", Role.NURSE),
        "lab": staff(clinic, "lab.access", Role.LAB),
        "pharmacist": staff(clinic, "ph.access", Role.PHARMACIST),
        "registration": staff(clinic, "reg.access", Role.REGISTRATION),
        "admin": staff(clinic, "adm.access", Role.ADMIN),
    }


def test_patient_outside_care_is_refused_with_break_glass_offered(
    clinic: Clinic, people: dict[str, Actor]
) -> None:
    patient_id = old_patient(clinic)
    with clinic.database.transaction() as session, pytest.raises(PermissionDenied) as refused:
        check_patient_access(session, people["doctor"], patient_id, Permission.RECORD_READ)
    assert refused.value.key == "record.no_care_relationship"
    assert refused.value.details["break_glass"] is True
    with clinic.database.transaction() as session, pytest.raises(PermissionDenied) as refused:
        check_patient_access(session, people["nurse"], patient_id, Permission.PATIENTS_READ)
    assert refused.value.details["break_glass"] is False


def test_todays_queue_is_in_care(clinic: Clinic, people: dict[str, Actor]) -> None:
    patient_id = clinic.patients.register(REGISTRAR, make_patient()).id
    for who in ("doctor", "nurse"):
        assert allowed(clinic, people[who], patient_id, Permission.CONSULTATIONS_WRITE)


def test_own_consultation_any_status_any_age(clinic: Clinic, people: dict[str, Actor]) -> None:
    mine = practitioner(clinic, people["doctor"])
    theirs = practitioner(clinic, people["other_doctor"])
    patient_id = old_patient(clinic, days=400)
    consultation(clinic, patient_id, mine, "signed", days_ago=300)
    assert allowed(clinic, people["doctor"], patient_id, Permission.RECORD_READ)
    assert not allowed(clinic, people["other_doctor"], patient_id, Permission.RECORD_READ)
    assert not allowed(clinic, people["nurse"], patient_id, Permission.RECORD_READ)
    # seen today by someone else: the day's queue admits every doctor and nurse
    consultation(clinic, patient_id, theirs, "signed", days_ago=0.1)
    assert allowed(clinic, people["other_doctor"], patient_id, Permission.RECORD_READ)
    assert allowed(clinic, people["nurse"], patient_id, Permission.RECORD_READ)


def test_waiting_room_draft_admits_any_doctor_or_nurse(
    clinic: Clinic, people: dict[str, Actor]
) -> None:
    patient_id = old_patient(clinic, days=10)
    theirs = practitioner(clinic, None)
    consultation(clinic, patient_id, theirs, "signed", days_ago=9)
    assert not allowed(clinic, people["nurse"], patient_id, Permission.CONSULTATIONS_READ)
    consultation(clinic, patient_id, theirs, "draft", days_ago=5)
    assert allowed(clinic, people["nurse"], patient_id, Permission.CONSULTATIONS_READ)
    assert allowed(clinic, people["doctor"], patient_id, Permission.CONSULTATIONS_READ)


def test_lab_staff_reach_patients_with_pending_orders(
    clinic: Clinic, people: dict[str, Actor]
) -> None:
    lab = people["lab"]
    patient_id = old_patient(clinic)
    assert not allowed(clinic, lab, patient_id, Permission.LAB_READ)
    visit = consultation(clinic, patient_id, practitioner(clinic, None), "signed", days_ago=3)
    with clinic.database.transaction(write=True) as session:
        order = LabOrder(
            consultation_id=visit,
            patient_id=patient_id,
            test_enc=b"x",
            status="ordered",
            ordered_by="someone",
            ordered_at=utc_now() - timedelta(days=3),
        )
        session.add(order)
        session.flush()
        order_id = order.id
    assert allowed(clinic, lab, patient_id, Permission.LAB_RESULT)
    assert allowed(clinic, lab, patient_id, Permission.PATIENTS_READ)
    with clinic.database.transaction(write=True) as session:
        row = session.get(LabOrder, order_id)
        assert row is not None
        row.status, row.resulted_at = "resulted", utc_now() - timedelta(hours=2)
    assert allowed(clinic, lab, patient_id, Permission.LAB_READ)  # just resulted
    with clinic.database.transaction(write=True) as session:
        row = session.get(LabOrder, order_id)
        assert row is not None
        row.resulted_at = utc_now() - timedelta(days=2)
    assert not allowed(clinic, lab, patient_id, Permission.LAB_READ)
    # lab staff have no other clinical permission at all
    assert not allowed(clinic, lab, patient_id, Permission.CONSULTATIONS_READ)


def test_pharmacists_reach_patients_with_undispensed_prescriptions(
    clinic: Clinic, people: dict[str, Actor]
) -> None:
    pharmacist = people["pharmacist"]
    patient_id = old_patient(clinic)
    visit = consultation(clinic, patient_id, practitioner(clinic, None), "signed", days_ago=3)
    assert not allowed(clinic, pharmacist, patient_id, Permission.PRESCRIPTIONS_DISPENSE)
    with clinic.database.transaction(write=True) as session:
        medicine = Medicine(name="Parasetamol", form="tablet", strength="500 mg", stock=10)
        session.add(medicine)
        session.flush()
        line = Prescription(
            consultation_id=visit,
            patient_id=patient_id,
            medicine_id=medicine.id,
            quantity=10,
            details_enc=b"x",
            prescribed_by="someone",
            prescribed_at=utc_now() - timedelta(days=3),
            status="cancelled",
        )
        session.add(line)
        session.flush()
        line_id = line.id
    assert not allowed(clinic, pharmacist, patient_id, Permission.PRESCRIPTIONS_DISPENSE)
    with clinic.database.transaction(write=True) as session:
        row = session.get(Prescription, line_id)
        assert row is not None
        row.status = "prescribed"
    assert allowed(clinic, pharmacist, patient_id, Permission.PRESCRIPTIONS_DISPENSE)
    with clinic.database.transaction(write=True) as session:
        row = session.get(Prescription, line_id)
        assert row is not None
        row.status, row.dispensed_at = "dispensed", utc_now() - timedelta(days=2)
    assert not allowed(clinic, pharmacist, patient_id, Permission.PRESCRIPTIONS_READ)


def test_registration_and_admin_have_no_care_rule_but_only_their_permissions(
    clinic: Clinic, people: dict[str, Actor]
) -> None:
    patient_id = old_patient(clinic, days=100)
    assert allowed(clinic, people["registration"], patient_id, Permission.PATIENTS_READ)
    assert allowed(clinic, people["registration"], patient_id, Permission.PATIENTS_WRITE)
    assert not allowed(clinic, people["registration"], patient_id, Permission.RECORD_READ)
    assert allowed(clinic, people["admin"], patient_id, Permission.PATIENTS_ERASE)
    assert not allowed(clinic, people["admin"], patient_id, Permission.PATIENTS_READ)
    assert not allowed(clinic, people["admin"], patient_id, Permission.CONSULTATIONS_READ)


def test_patient_account_reaches_only_its_own_record(clinic: Clinic) -> None:
    me = staff(clinic, "pasien.access", Role.PATIENT)
    mine, other = old_patient(clinic), old_patient(clinic)
    with clinic.database.transaction(write=True) as session:
        row = session.get(Patient, mine)
        assert row is not None
        row.user_id = me.user_id
    assert allowed(clinic, me, mine, Permission.RECORD_READ)
    for patient_id in (other, "00000000-0000-0000-0000-000000000000"):
        with clinic.database.transaction() as session, pytest.raises(NotFound):
            check_patient_access(session, me, patient_id, Permission.RECORD_READ)
    assert not allowed(clinic, me, mine, Permission.PATIENTS_WRITE)


def test_unknown_patient_is_not_found_for_staff(clinic: Clinic, people: dict[str, Actor]) -> None:
    with clinic.database.transaction() as session, pytest.raises(NotFound):
        check_patient_access(session, people["doctor"], "no-such-id", Permission.RECORD_READ)
