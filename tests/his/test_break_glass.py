"""Break-glass: a doctor's time-limited, audited emergency access, reviewed by administrators."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from rekam.his.audit import AuditFilter, AuditService, verify_audit_chain
from rekam.his.break_glass import BreakGlassService
from rekam.his.errors import Conflict, PermissionDenied, ValidationFailed
from rekam.his.installation import Clinic, open_clinic
from rekam.his.rbac import Actor, Permission, Role
from rekam.his.record_access import check_patient_access
from rekam.store.models import AuditEntry, Patient
from rekam.store.types import utc_now
from support.people import make_patient
from support.servers import make_installation

REGISTRAR = Actor(user_id=None, username="reg.test", role=Role.REGISTRATION)
REASON = "unconscious patient brought in, no regular doctor available"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    inst = make_installation(tmp_path_factory.mktemp("glass"), "ecdsa-p256")
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


def staff(clinic: Clinic, name: str, role: Role) -> Actor:
    made = clinic.accounts.create_user(Actor.system(), name, name.title(), role)
    return Actor(user_id=made.user.id, username=name, role=role, source_address="10.0.0.7")


@pytest.fixture(scope="module")
def doctor(clinic: Clinic) -> Actor:
    return staff(clinic, "dr.glass", Role.DOCTOR)


@pytest.fixture(scope="module")
def admin(clinic: Clinic) -> Actor:
    return staff(clinic, "adm.glass", Role.ADMIN)


def old_patient(clinic: Clinic) -> str:
    patient_id = clinic.patients.register(REGISTRAR, make_patient()).id
    with clinic.database.transaction(write=True) as session:
        row = session.get(Patient, patient_id)
        assert row is not None
        row.created_at = utc_now() - timedelta(days=30)
    return patient_id


def can_read(clinic: Clinic, actor: Actor, patient_id: str) -> bool:
    with clinic.database.transaction() as session:
        try:
            check_patient_access(session, actor, patient_id, Permission.RECORD_READ)
        except PermissionDenied:
            return False
    return True


def test_only_doctors_with_a_reason(clinic: Clinic, doctor: Actor) -> None:
    glass = BreakGlassService.for_clinic(clinic)
    patient_id = old_patient(clinic)
    with pytest.raises(ValidationFailed) as short:
        glass.open(doctor, patient_id, "urgent   ")
    assert short.value.field == "reason"
    nurse = staff(clinic, "ns.glass", Role.NURSE)
    with pytest.raises(PermissionDenied):
        glass.open(nurse, patient_id, REASON)
    with pytest.raises(ValidationFailed):
        glass.open(doctor, patient_id, REASON, minutes=24 * 60)
    assert not can_read(clinic, doctor, patient_id)


def test_grant_admits_that_doctor_to_that_patient_and_is_audited(
    clinic: Clinic, doctor: Actor, admin: Actor
) -> None:
    glass = BreakGlassService.for_clinic(clinic)
    patient_id, elsewhere = old_patient(clinic), old_patient(clinic)
    other_doctor = staff(clinic, "dr.glass2", Role.DOCTOR)
    assert not can_read(clinic, doctor, patient_id)

    grant = glass.open(doctor, patient_id, REASON)
    assert grant.expires_at - grant.granted_at == timedelta(minutes=60)
    assert can_read(clinic, doctor, patient_id)
    assert not can_read(clinic, doctor, elsewhere)
    assert not can_read(clinic, other_doctor, patient_id)

    clinic.patients.get(doctor, patient_id)  # a read under the grant
    with clinic.database.transaction() as session:
        entries = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.patient_id == patient_id)
                .order_by(AuditEntry.seq)
            )
        )
        assert verify_audit_chain(session).intact
    opened, read = entries[-2], entries[-1]
    assert (opened.action, opened.outcome, opened.actor) == (
        "break-glass.open",
        "break-glass",
        "dr.glass",
    )
    assert REASON not in opened.detail  # the reason stays in the grant
    assert read.action == "patient.read"
    assert read.detail.startswith(f"break-glass grant={grant.id}")

    found = AuditService.for_clinic(clinic).browse(
        admin, AuditFilter(patient_id=patient_id, break_glass_only=True)
    )
    assert [e.action for e in found.entries] == ["patient.read", "break-glass.open"]
    assert all(e.break_glass for e in found.entries)


def test_grant_expires(clinic: Clinic, doctor: Actor) -> None:
    patient_id = old_patient(clinic)
    earlier = BreakGlassService(
        clinic.database, clinic.fields, clock=lambda: utc_now() - timedelta(hours=2)
    )
    earlier.open(doctor, patient_id, REASON, minutes=60)
    assert not can_read(clinic, doctor, patient_id)
    BreakGlassService(clinic.database, clinic.fields).open(doctor, patient_id, REASON, minutes=5)
    assert can_read(clinic, doctor, patient_id)


def test_admins_review_grants_unreviewed_first(clinic: Clinic, doctor: Actor, admin: Actor) -> None:
    glass = BreakGlassService.for_clinic(clinic)
    first = glass.open(doctor, old_patient(clinic), REASON)
    second = glass.open(doctor, old_patient(clinic), REASON)
    with pytest.raises(PermissionDenied):
        glass.grants(doctor)
    with pytest.raises(PermissionDenied):
        glass.review(doctor, first.id)
    reviewed = glass.review(admin, first.id)
    assert reviewed.reviewed and reviewed.reviewed_by == "adm.glass"
    with pytest.raises(Conflict):
        glass.review(admin, first.id)
    listed = glass.grants(admin)
    flags = [g.reviewed for g in listed]
    assert flags == sorted(flags)  # every unreviewed grant before every reviewed one
    ids = [g.id for g in listed]
    assert ids.index(second.id) < ids.index(first.id)
    assert listed[ids.index(second.id)].username == "dr.glass"
    assert glass.count_unreviewed(admin) == sum(1 for g in listed if not g.reviewed)


def test_the_reason_is_stored_encrypted(clinic: Clinic, doctor: Actor, admin: Actor) -> None:
    from rekam.store.models import BreakGlassGrant

    patient_id = old_patient(clinic)
    reason = "pasien tidak sadar, dugaan stroke KANARIBG42 di IGD"
    BreakGlassService.for_clinic(clinic).open(doctor, patient_id, reason)
    with clinic.database.transaction() as session:
        row = session.scalars(
            select(BreakGlassGrant).where(BreakGlassGrant.patient_id == patient_id)
        ).one()
        assert row.reason == ""
        assert row.reason_enc is not None and b"KANARIBG42" not in row.reason_enc
    listed = BreakGlassService.for_clinic(clinic).grants(admin)
    assert reason in [g.reason for g in listed]
