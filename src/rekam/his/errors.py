"""The exceptions of the clinic's services; each carries a message staff can read."""

from __future__ import annotations


class HisError(Exception):
    """A clinic service refused or failed an operation."""

    #: stable machine-readable code, also the key of the translated message
    code = "error"

    def __init__(self, message: str, key: str | None = None, **details: object) -> None:
        super().__init__(message)
        #: translation key of the message (its values are in ``details``)
        self.key = key
        self.details = details


class ValidationFailed(HisError):
    code = "validation_failed"

    def __init__(
        self, message: str, field: str | None = None, key: str | None = None, **details: object
    ) -> None:
        super().__init__(message, key=key, field=field, **details)
        self.field = field


class NotFound(HisError):
    code = "not_found"


class Conflict(HisError):
    code = "conflict"


class PermissionDenied(HisError):
    code = "permission_denied"


class LoginRefused(HisError):
    """Wrong user name or password (never says which)."""

    code = "login_refused"


class LoginThrottled(HisError):
    """Too many failed attempts; try again later."""

    code = "login_throttled"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(
            message,
            key="login.throttled",
            seconds=retry_after_seconds,
            retry_after_seconds=retry_after_seconds,
        )
        self.retry_after_seconds = retry_after_seconds


class WeakPassword(ValidationFailed):
    code = "weak_password"
