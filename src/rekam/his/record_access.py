"""Who may touch which patient's data: the one check every clinical service calls.

``check_patient_access`` is called inside the service's transaction, before any patient data
is read or written. It enforces, in this order:

1. the role's permission (``rekam.his.rbac``);
2. a patient account reaches only its own record (read-only); any other id is NotFound;
3. a **care relationship** for clinical roles:

   - doctors and nurses: the patient has a consultation (any status) with the user's
     practitioner; or was registered, or had a consultation started, in the last 24 hours
     (the day's queue); or has a draft consultation with anyone (the waiting room);
   - lab staff: the patient has a lab order not yet resulted (and not cancelled), or one they
     resulted in the last 24 hours (so the analyst can check what they just entered);
   - pharmacists: the patient has a prescription not yet dispensed (and not cancelled), or one
     dispensed in the last 24 hours;
   - registration staff and administrators: no care rule — their permissions reach
     demographics and administration only, of any patient;

4. outside the care relationship, an active **break-glass** grant of this user for this patient
   (``rekam.his.break_glass``) admits a doctor; every audit entry written in that transaction
   for this patient is then marked as a break-glass access (see ``rekam.his.audit``).

A refusal for lack of a care relationship is ``PermissionDenied`` with
``key="record.no_care_relationship"`` and ``break_glass=True`` when the user may break the glass,
so the UI can offer it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from rekam.his.errors import NotFound, PermissionDenied
from rekam.his.rbac import Actor, Permission, Role, authorize
from rekam.store.models import (
    BreakGlassGrant,
    Consultation,
    LabOrder,
    Patient,
    Practitioner,
    Prescription,
)
from rekam.store.types import utc_now

#: what a patient account may do with its own record
OWN_RECORD_PERMISSIONS = frozenset(
    {
        Permission.PATIENTS_READ,
        Permission.CONSULTATIONS_READ,
        Permission.LAB_READ,
        Permission.PRESCRIPTIONS_READ,
        Permission.PROCEDURES_READ,
        Permission.RECORD_READ,
    }
)

#: roles whose access to a patient needs a care relationship (or break-glass)
CARE_ROLES = frozenset({Role.DOCTOR, Role.NURSE, Role.LAB, Role.PHARMACIST})

#: how long "today's queue" lasts, and how long lab/pharmacy staff keep finished work in view
QUEUE_WINDOW = timedelta(hours=24)

#: statuses that end an order without a result (never "pending")
CANCELLED = ("cancelled", "canceled", "void")

#: key in ``Session.info``: patient id -> break-glass grant id used in this transaction
BREAK_GLASS_SESSION_KEY = "rekam.break_glass_grants"


def check_patient_access(
    session: Session, actor: Actor, patient_id: str, permission: Permission
) -> Patient:
    """The patient row, if ``actor`` may do ``permission`` on this patient; else an error.

    A patient account asking for another patient's data gets NotFound, exactly as for an id that
    does not exist, so ids cannot be probed."""
    if actor.role is Role.PATIENT:
        if permission not in OWN_RECORD_PERMISSIONS:
            raise PermissionDenied(
                "patients can read their own record only", key="error.permission_denied"
            )
        patient = session.get(Patient, patient_id)
        if patient is None or actor.user_id is None or patient.user_id != actor.user_id:
            raise NotFound("no such patient", key="patient.not_found")
        return patient
    authorize(actor, permission)
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient", key="patient.not_found")
    if actor.role not in CARE_ROLES:
        return patient
    now = utc_now()
    if has_care_relationship(session, actor, patient_id, now):
        return patient
    grant_id = active_break_glass_grant(session, actor, patient_id, now)
    if grant_id is not None:
        session.info.setdefault(BREAK_GLASS_SESSION_KEY, {})[patient_id] = grant_id
        return patient
    raise PermissionDenied(
        "this patient is not in your care; a doctor may use emergency access (break the glass)",
        key="record.no_care_relationship",
        break_glass=actor.can(Permission.BREAK_GLASS),
        patient_id=patient_id,
    )


def has_care_relationship(session: Session, actor: Actor, patient_id: str, now: datetime) -> bool:
    """Whether ``actor`` (a clinical role) is caring for this patient right now."""
    since = now - QUEUE_WINDOW
    if actor.role in (Role.DOCTOR, Role.NURSE):
        return _doctor_or_nurse_relationship(session, actor, patient_id, since)
    if actor.role is Role.LAB:
        pending = (
            select(LabOrder.id)
            .where(LabOrder.patient_id == patient_id)
            .where(
                or_(
                    (LabOrder.resulted_at.is_(None)) & (LabOrder.status.not_in(CANCELLED)),
                    LabOrder.resulted_at >= since,
                )
            )
        )
        return bool(session.scalar(select(exists(pending))))
    if actor.role is Role.PHARMACIST:
        pending = (
            select(Prescription.id)
            .where(Prescription.patient_id == patient_id)
            .where(
                or_(
                    (Prescription.dispensed_at.is_(None)) & (Prescription.status.not_in(CANCELLED)),
                    Prescription.dispensed_at >= since,
                )
            )
        )
        return bool(session.scalar(select(exists(pending))))
    return True


def _doctor_or_nurse_relationship(
    session: Session, actor: Actor, patient_id: str, since: datetime
) -> bool:
    registered_today = select(Patient.id).where(
        Patient.id == patient_id, Patient.created_at >= since
    )
    if session.scalar(select(exists(registered_today))):
        return True
    consultations = select(Consultation.id).where(Consultation.patient_id == patient_id)
    conditions = [Consultation.started_at >= since, Consultation.status == "draft"]
    if actor.user_id is not None:
        mine = select(Practitioner.id).where(Practitioner.user_id == actor.user_id)
        conditions.append(Consultation.practitioner_id.in_(mine))
    return bool(session.scalar(select(exists(consultations.where(or_(*conditions))))))


def active_break_glass_grant(
    session: Session, actor: Actor, patient_id: str, now: datetime
) -> str | None:
    """The id of this user's unexpired break-glass grant for this patient, if any."""
    if actor.user_id is None or not actor.can(Permission.BREAK_GLASS):
        return None
    grant_id = session.scalar(
        select(BreakGlassGrant.id)
        .where(
            BreakGlassGrant.user_id == actor.user_id,
            BreakGlassGrant.patient_id == patient_id,
            BreakGlassGrant.granted_at <= now,
            BreakGlassGrant.expires_at > now,
        )
        .order_by(BreakGlassGrant.expires_at.desc())
        .limit(1)
    )
    return str(grant_id) if grant_id is not None else None


def break_glass_grant_in_use(session: Session, patient_id: str | None) -> str | None:
    """The break-glass grant that admitted this transaction to ``patient_id``, if any."""
    if patient_id is None:
        return None
    grants: dict[str, str] = session.info.get(BREAK_GLASS_SESSION_KEY, {})
    return grants.get(patient_id)
