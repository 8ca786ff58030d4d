"""Turn service errors into text in the reader's language."""

from __future__ import annotations

from rekam.his.errors import HisError
from rekam.web.i18n import Translator

STATUS_FOR_ERROR: dict[str, int] = {
    "validation_failed": 422,
    "weak_password": 422,
    "not_found": 404,
    "conflict": 409,
    "permission_denied": 403,
    "login_refused": 401,
    "login_throttled": 429,
    "patient_erased": 410,
    "allergy_warning": 409,
    "data_unreadable": 500,
    "pacs_unavailable": 503,
}


def his_error_text(t: Translator, error: HisError) -> str:
    """The error in the reader's language: its own message key if it has one, else a generic
    message for its kind that quotes the (English) service message."""
    if error.key is not None:
        text = t(error.key, **error.details)
        if text != error.key:
            return text
    return t(f"error.{error.code}", reason=str(error))


def status_for(error: HisError) -> int:
    return STATUS_FOR_ERROR.get(error.code, 400)
