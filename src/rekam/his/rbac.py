"""Roles, permissions and the one check every page, API call and service uses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rekam.his.errors import PermissionDenied


class Role(StrEnum):
    ADMIN = "admin"
    DOCTOR = "doctor"
    NURSE = "nurse"
    PHARMACIST = "pharmacist"
    LAB = "lab"
    REGISTRATION = "registration"
    PATIENT = "patient"


class Permission(StrEnum):
    DASHBOARD_VIEW = "dashboard:view"
    OWN_ACCOUNT_MANAGE = "own-account:manage"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    SETTINGS_READ = "settings:read"
    PATIENTS_READ = "patients:read"
    PATIENTS_WRITE = "patients:write"
    PATIENTS_ERASE = "patients:erase"
    KEYS_MANAGE = "keys:manage"
    AUDIT_READ = "audit:read"
    PRACTITIONERS_READ = "practitioners:read"
    PRACTITIONERS_WRITE = "practitioners:write"
    CONSULTATIONS_READ = "consultations:read"
    CONSULTATIONS_WRITE = "consultations:write"
    CONSULTATIONS_SIGN = "consultations:sign"
    LAB_READ = "lab:read"
    LAB_ORDER = "lab:order"
    LAB_RESULT = "lab:result"
    FORMULARY_WRITE = "formulary:write"
    PRESCRIPTIONS_READ = "prescriptions:read"
    PRESCRIPTIONS_WRITE = "prescriptions:write"
    PRESCRIPTIONS_DISPENSE = "prescriptions:dispense"
    PROCEDURES_READ = "procedures:read"
    PROCEDURES_WRITE = "procedures:write"
    RECORD_READ = "record:read"
    BREAK_GLASS = "record:break-glass"
    OWN_RECORD_READ = "own-record:read"
    MONITOR_VIEW = "monitor:view"
    MONITOR_DEVICES = "monitor:devices"
    MONITOR_ACKNOWLEDGE = "monitor:acknowledge"
    ECG_STUDIES_READ = "ecg-studies:read"
    ECG_STUDIES_SEND = "ecg-studies:send"
    ECG_STUDIES_REPORT = "ecg-studies:report"
    ECG_SIGNATURE_OVERRIDE = "ecg-studies:override"


_EVERYONE = frozenset({Permission.DASHBOARD_VIEW, Permission.OWN_ACCOUNT_MANAGE})
_STAFF = _EVERYONE | {Permission.PRACTITIONERS_READ}

_CLINICAL_WRITE = frozenset({Permission.PATIENTS_READ, Permission.PATIENTS_WRITE})
_CLINICIAN = _CLINICAL_WRITE | {
    Permission.CONSULTATIONS_READ,
    Permission.CONSULTATIONS_WRITE,
    Permission.LAB_READ,
    Permission.PRESCRIPTIONS_READ,
    Permission.PROCEDURES_READ,
    Permission.PROCEDURES_WRITE,
    Permission.RECORD_READ,
    Permission.MONITOR_VIEW,
    Permission.MONITOR_DEVICES,
    Permission.MONITOR_ACKNOWLEDGE,
    Permission.ECG_STUDIES_READ,
    Permission.ECG_STUDIES_SEND,
}

# Administrators run the installation (accounts, keys, audit, erasure) but do not read charts.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _STAFF
    | {
        Permission.USERS_READ,
        Permission.USERS_WRITE,
        Permission.SETTINGS_READ,
        Permission.PATIENTS_ERASE,
        Permission.KEYS_MANAGE,
        Permission.AUDIT_READ,
        Permission.PRACTITIONERS_WRITE,
        Permission.FORMULARY_WRITE,
    },
    Role.DOCTOR: _STAFF
    | _CLINICIAN
    | {
        Permission.CONSULTATIONS_SIGN,
        Permission.LAB_ORDER,
        Permission.PRESCRIPTIONS_WRITE,
        Permission.BREAK_GLASS,
        Permission.ECG_STUDIES_REPORT,
        Permission.ECG_SIGNATURE_OVERRIDE,
    },
    Role.NURSE: _STAFF | _CLINICIAN,
    Role.PHARMACIST: _STAFF
    | {
        Permission.PATIENTS_READ,
        Permission.PRESCRIPTIONS_READ,
        Permission.PRESCRIPTIONS_DISPENSE,
        Permission.FORMULARY_WRITE,
    },
    Role.LAB: _STAFF | {Permission.PATIENTS_READ, Permission.LAB_READ, Permission.LAB_RESULT},
    Role.REGISTRATION: _STAFF | _CLINICAL_WRITE,
    Role.PATIENT: _EVERYONE | {Permission.OWN_RECORD_READ},
}


@dataclass(frozen=True)
class Actor:
    """Who is asking: the logged-in user, or the system itself (CLI, migrations)."""

    user_id: str | None
    username: str
    role: Role
    source_address: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None, username="system", role=Role.ADMIN, source_address="local")

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def authorize(actor: Actor, permission: Permission) -> None:
    """Raise PermissionDenied unless the actor's role grants ``permission``."""
    if not actor.can(permission):
        raise PermissionDenied(
            f"role '{actor.role}' may not do this ({permission})",
            key="error.permission_denied",
            permission=str(permission),
        )
