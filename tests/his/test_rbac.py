"""The role table and the one authorisation check."""

from __future__ import annotations

import pytest

from rekam.his.errors import PermissionDenied
from rekam.his.rbac import ROLE_PERMISSIONS, Actor, Permission, Role, authorize

# The expected table, written out by hand independently of ROLE_PERMISSIONS:
# role -> the permissions it must have (everything else must be refused).
A, D, N, P, L, R, PT = ["admin", "doctor", "nurse", "pharmacist", "lab", "registration", "patient"]
EXPECTED: dict[str, set[str]] = {
    "dashboard:view": {A, D, N, P, L, R, PT},
    "own-account:manage": {A, D, N, P, L, R, PT},
    "users:read": {A},
    "users:write": {A},
    "settings:read": {A},
    "patients:read": {D, N, P, L, R},
    "patients:write": {D, N, R},
    "patients:erase": {A},
    "keys:manage": {A},
    "audit:read": {A},
    "practitioners:read": {A, D, N, P, L, R},
    "practitioners:write": {A},
    "consultations:read": {D, N},
    "consultations:write": {D, N},
    "consultations:sign": {D},
    "lab:read": {D, N, L},
    "lab:order": {D},
    "lab:result": {L},
    "formulary:write": {A, P},
    "prescriptions:read": {D, N, P},
    "prescriptions:write": {D},
    "prescriptions:dispense": {P},
    "procedures:read": {D, N},
    "procedures:write": {D, N},
    "record:read": {D, N},
    "record:break-glass": {D},
    "own-record:read": {PT},
    "monitor:view": {D, N},
    "monitor:devices": {D, N},
    "monitor:acknowledge": {D, N},
    "ecg-studies:read": {D, N},
    "ecg-studies:send": {D, N},
    "ecg-studies:report": {D},
    "ecg-studies:override": {D},
}


def test_the_expected_table_covers_every_permission() -> None:
    assert set(EXPECTED) == {p.value for p in Permission}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_permission_matrix(role: Role, permission: Permission) -> None:
    actor = Actor(user_id="u", username="u", role=role)
    expected = role.value in EXPECTED[permission.value]
    assert actor.can(permission) is expected
    if expected:
        authorize(actor, permission)
    else:
        with pytest.raises(PermissionDenied):
            authorize(actor, permission)


def test_every_role_has_an_entry() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
