"""Sealing and opening one sensitive value of a clinic record, with errors staff can read.

Every clinical service stores its sensitive columns through these two functions: the value is
bound to (table, column, row id, patient id); an erased patient's data says so
(``PatientErased``); an altered or moved value says it cannot be opened (``DataUnreadable``)
instead of returning anything.
"""

from __future__ import annotations

from rekam.crypto import DecryptionFailed, FieldCipher, FieldContext, KeyErased
from rekam.his.errors import HisError
from rekam.store.models import Patient


class PatientErased(HisError):
    code = "patient_erased"


class DataUnreadable(HisError):
    code = "data_unreadable"


def seal(
    fields: FieldCipher, table: str, column: str, row_id: str, patient_id: str, value: str | None
) -> bytes | None:
    if value is None:
        return None
    return fields.encrypt_field(value, FieldContext(table, column, row_id, patient_id))


def unseal(
    fields: FieldCipher,
    table: str,
    column: str,
    row_id: str,
    patient_id: str,
    sealed: bytes | None,
) -> str | None:
    if sealed is None:
        return None
    try:
        return fields.decrypt_text(sealed, FieldContext(table, column, row_id, patient_id))
    except KeyErased as exc:
        raise PatientErased(
            f"this patient's data was crypto-erased: {exc}", key="patient.erased"
        ) from exc
    except DecryptionFailed as exc:
        raise DataUnreadable(
            f"the stored {table} {column.replace('_', ' ')} cannot be opened: {exc}",
            key="patient.unreadable",
            column=column,
        ) from exc


def ensure_not_erased(patient: Patient) -> None:
    """Refuse to work on a crypto-erased patient, saying so."""
    if patient.erased_at is not None:
        raise PatientErased(
            f"this patient's data was crypto-erased on {patient.erased_at:%Y-%m-%d}",
            key="patient.erased",
        )


def patient_text(fields: FieldCipher, patient: Patient, column: str) -> str | None:
    """One of the patient's own encrypted columns (``name``, ``sex``, ``allergies`` …)."""
    sealed: bytes | None = getattr(patient, f"{column}_enc")
    return unseal(fields, "patients", column, patient.id, patient.id, sealed)
