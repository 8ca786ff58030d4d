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


_STAFF = frozenset({Permission.DASHBOARD_VIEW, Permission.OWN_ACCOUNT_MANAGE})

_CLINICAL_WRITE = frozenset({Permission.PATIENTS_READ, Permission.PATIENTS_WRITE})

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
    },
    Role.DOCTOR: _STAFF | _CLINICAL_WRITE,
    Role.NURSE: _STAFF | _CLINICAL_WRITE,
    Role.PHARMACIST: _STAFF | {Permission.PATIENTS_READ},
    Role.LAB: _STAFF | {Permission.PATIENTS_READ},
    Role.REGISTRATION: _STAFF | _CLINICAL_WRITE,
    Role.PATIENT: _STAFF,
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
