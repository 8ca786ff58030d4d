"""The clinic's domain services: accounts, roles and (as they land) the clinical forms."""

from rekam.his.errors import (
    Conflict,
    HisError,
    LoginRefused,
    LoginThrottled,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    WeakPassword,
)
from rekam.his.rbac import Actor, Permission, Role, authorize

__all__ = [
    "Actor",
    "Conflict",
    "HisError",
    "LoginRefused",
    "LoginThrottled",
    "NotFound",
    "Permission",
    "PermissionDenied",
    "Role",
    "ValidationFailed",
    "WeakPassword",
    "authorize",
]
