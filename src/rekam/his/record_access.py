"""Who may touch which patient's data: the one check every clinical service calls.

``check_patient_access`` is called inside the service's transaction, before any patient data
is read or written. It enforces the role's permission (``rekam.his.rbac``), and that a patient
account reaches only its own record (read-only). Break-glass (time-limited emergency access
outside normal access) plugs in here too.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rekam.his.errors import NotFound, PermissionDenied
from rekam.his.rbac import Actor, Permission, Role, authorize
from rekam.store.models import Patient

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
    return patient
