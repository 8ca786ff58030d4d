"""The role table and the one authorisation check."""

from __future__ import annotations

import pytest

from rekam.his.errors import PermissionDenied
from rekam.his.rbac import ROLE_PERMISSIONS, Actor, Permission, Role, authorize

# The expected table, written out independently of ROLE_PERMISSIONS.
EXPECTED_ADMIN_ONLY = {Permission.USERS_READ, Permission.USERS_WRITE, Permission.SETTINGS_READ}
EVERYONE = {Permission.DASHBOARD_VIEW, Permission.OWN_ACCOUNT_MANAGE}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_permission_matrix(role: Role, permission: Permission) -> None:
    actor = Actor(user_id="u", username="u", role=role)
    expected = permission in EVERYONE or (role is Role.ADMIN and permission in EXPECTED_ADMIN_ONLY)
    assert actor.can(permission) is expected
    if expected:
        authorize(actor, permission)
    else:
        with pytest.raises(PermissionDenied):
            authorize(actor, permission)


def test_every_role_has_an_entry() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)
