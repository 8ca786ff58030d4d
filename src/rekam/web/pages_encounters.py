"""HTML pages for encounters: practitioners, the clinician's worklist, consultation forms.

Thin: read the form, call the service, render. Times are entered and shown in the clinic's zone
(``Settings.timezone``) and stored in UTC by the service. A service refusal is shown next to the
form in the reader's language, with what was typed kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import RedirectResponse, Response

from rekam.his.consultations import (
    AMENDABLE_FIELDS,
    VITAL_RANGES,
    ConsultationInput,
    ConsultationService,
    DiagnosisInput,
    VitalSigns,
    display_value,
)
from rekam.his.errors import HisError, ValidationFailed
from rekam.his.icd import ICD9CM_COMMON, ICD10_COMMON, icd9cm_name, icd10_name
from rekam.his.practitioners import PractitionerInput, PractitionerService, Profession
from rekam.his.procedures import ProcedureInput, ProcedureService
from rekam.his.rbac import Permission
from rekam.web.context import RequestContext, logged_in_context, require
from rekam.web.error_messages import his_error_text, status_for
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

LoggedIn = Annotated[RequestContext, Depends(logged_in_context)]
PractitionerReader = Annotated[RequestContext, Depends(require(Permission.PRACTITIONERS_READ))]
PractitionerWriter = Annotated[RequestContext, Depends(require(Permission.PRACTITIONERS_WRITE))]
ConsultationReader = Annotated[RequestContext, Depends(require(Permission.CONSULTATIONS_READ))]
ConsultationWriter = Annotated[RequestContext, Depends(require(Permission.CONSULTATIONS_WRITE))]
ConsultationSigner = Annotated[RequestContext, Depends(require(Permission.CONSULTATIONS_SIGN))]
ProcedureWriter = Annotated[RequestContext, Depends(require(Permission.PROCEDURES_WRITE))]
Id = Annotated[str, PathParam(min_length=1, max_length=36)]
DIAGNOSIS_ROWS = 3
Messages = list[tuple[str, str]]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _zone(context: RequestContext) -> ZoneInfo:
    return ZoneInfo(context.clinic.settings.timezone)


def _local(context: RequestContext) -> Any:
    zone = _zone(context)

    def local(moment: datetime | None, fmt: str = "%d-%m-%Y %H:%M") -> str:
        return "" if moment is None else moment.astimezone(zone).strftime(fmt)

    return local


def _error(context: RequestContext, exc: HisError) -> tuple[Messages, str | None]:
    field = exc.field if isinstance(exc, ValidationFailed) else None
    return [("error", his_error_text(context.t, exc))], field


class _FormModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf_token: str = Field(max_length=128)


# Practitioners ---------------------------------------------------------------------------------


class PractitionerForm(_FormModel):
    name: str = Field(default="", max_length=200)
    profession: str = Field(default="doctor", max_length=32)
    specialty: str = Field(default="", max_length=100)
    str_number: str = Field(default="", max_length=40)
    sip_number: str = Field(default="", max_length=60)
    username: str = Field(default="", max_length=64)


def _practitioners_page(
    context: RequestContext,
    status_code: int = 200,
    messages: Messages | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
    search: str = "",
) -> Response:
    service = PractitionerService.for_clinic(context.clinic)
    found = service.list(context.actor, search=search or None)
    return render(
        context,
        "encounters_practitioners.html",
        status_code,
        messages=messages,
        practitioners=found,
        professions=[p.value for p in Profession],
        can_write=context.actor.can(Permission.PRACTITIONERS_WRITE),
        values=values or {},
        error_field=error_field,
        search=search,
    )


@router.get("/practitioners")
def practitioners_page(
    context: PractitionerReader, q: Annotated[str, Query(max_length=100)] = ""
) -> Response:
    return _practitioners_page(context, search=q)


@router.post("/practitioners")
def add_practitioner(
    context: PractitionerWriter, form: Annotated[PractitionerForm, Form()]
) -> Response:
    context.check_csrf(form.csrf_token)
    values = form.model_dump(exclude={"csrf_token"})
    user_id: str | None = None
    try:
        if form.username.strip():
            user_id = context.clinic.accounts.get_user(context.actor, form.username.strip()).id
    except HisError:
        text = context.t("practitioner.no_such_user")
        return _practitioners_page(context, 422, [("error", text)], values, "username")
    try:
        created = PractitionerService.for_clinic(context.clinic).create(
            context.actor,
            PractitionerInput(
                name=form.name,
                profession=form.profession,
                specialty=form.specialty or None,
                str_number=form.str_number or None,
                sip_number=form.sip_number or None,
                user_id=user_id,
            ),
        )
    except HisError as exc:
        messages, field = _error(context, exc)
        if field == "user_id":
            field = "username"
        return _practitioners_page(context, status_for(exc), messages, values, field)
    done = [("ok", context.t("practitioners.created", name=created.name))]
    return _practitioners_page(context, 200, done)


# Worklist --------------------------------------------------------------------------------------


@router.get("/consultations")
def worklist_page(context: ConsultationReader) -> Response:
    worklist = ConsultationService.for_clinic(context.clinic).worklist(context.actor)
    return render(
        context,
        "encounters_worklist.html",
        worklist=worklist,
        local=_local(context),
    )


# Consultation forms ----------------------------------------------------------------------------


class ConsultationForm(_FormModel):
    started_at: str = Field(default="", max_length=20)
    complaint: str = Field(default="", max_length=5000)
    examination: str = Field(default="", max_length=10_000)
    systolic: str = Field(default="", max_length=10)
    diastolic: str = Field(default="", max_length=10)
    heart_rate: str = Field(default="", max_length=10)
    temperature: str = Field(default="", max_length=10)
    spo2: str = Field(default="", max_length=10)
    weight: str = Field(default="", max_length=10)
    height: str = Field(default="", max_length=10)
    diag_code_1: str = Field(default="", max_length=10)
    diag_text_1: str = Field(default="", max_length=500)
    diag_code_2: str = Field(default="", max_length=10)
    diag_text_2: str = Field(default="", max_length=500)
    diag_code_3: str = Field(default="", max_length=10)
    diag_text_3: str = Field(default="", max_length=500)
    plan: str = Field(default="", max_length=5000)
    version: int | None = Field(default=None, ge=1)


def _number(name: str, text: str) -> float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        low, high, _ = VITAL_RANGES[name]
        raise ValidationFailed(
            f"{name} is not a number", field=name, key=f"vitals.{name}", min=low, max=high
        ) from None


def _vitals(values: dict[str, str], prefix: str = "") -> VitalSigns | None:
    numbers = {name: _number(name, values.get(prefix + name, "")) for name in VITAL_RANGES}
    vitals = VitalSigns(**numbers)
    return None if vitals.empty else vitals


def _started_at(context: RequestContext, text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            "not a date and time", field="started_at", key="consultation.started_at"
        ) from None
    return moment.replace(tzinfo=_zone(context)) if moment.tzinfo is None else moment


def _consultation_input(context: RequestContext, form: ConsultationForm) -> ConsultationInput:
    values = form.model_dump()
    diagnoses = tuple(
        DiagnosisInput(values[f"diag_code_{i}"], values[f"diag_text_{i}"] or None)
        for i in range(1, DIAGNOSIS_ROWS + 1)
        if values[f"diag_code_{i}"].strip()
    )
    return ConsultationInput(
        started_at=_started_at(context, form.started_at),
        complaint=form.complaint,
        examination=form.examination,
        vital_signs=_vitals(values),
        diagnoses=diagnoses,
        plan=form.plan,
    )


def _form_values(context: RequestContext, record: Any) -> dict[str, str]:
    """A stored consultation as the strings its form shows."""
    values: dict[str, str] = {
        "started_at": _local(context)(record.started_at, "%Y-%m-%dT%H:%M"),
        "complaint": record.complaint or "",
        "examination": record.examination or "",
        "plan": record.plan or "",
    }
    for name, number in (record.vital_signs.as_dict() if record.vital_signs else {}).items():
        values[name] = f"{number:g}"
    for i, diagnosis in enumerate(record.diagnoses[:DIAGNOSIS_ROWS], start=1):
        values[f"diag_code_{i}"] = diagnosis.code
        values[f"diag_text_{i}"] = diagnosis.text or ""
    return values


def _code_names(context: RequestContext) -> dict[str, Any]:
    return {
        "icd10_codes": sorted(ICD10_COMMON),
        "icd9cm_codes": sorted(ICD9CM_COMMON),
        "icd10_name": lambda code: icd10_name(code, context.language) or "",
        "icd9cm_name": lambda code: icd9cm_name(code, context.language) or "",
    }


def _new_form(
    context: RequestContext,
    patient_id: str,
    status_code: int = 200,
    messages: Messages | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
) -> Response:
    return render(
        context,
        "encounters_consultation_form.html",
        status_code,
        messages=messages,
        patient_id=patient_id,
        values=values or {"started_at": datetime.now(_zone(context)).strftime("%Y-%m-%dT%H:%M")},
        error_field=error_field,
        vital_names=list(VITAL_RANGES),
        vital_units={k: v[2] for k, v in VITAL_RANGES.items()},
        diagnosis_rows=range(1, DIAGNOSIS_ROWS + 1),
        **_code_names(context),
    )


@router.get("/patients/{patient_id}/consultations/new")
def new_consultation_page(context: ConsultationWriter, patient_id: Id) -> Response:
    return _new_form(context, patient_id)


@router.post("/patients/{patient_id}/consultations")
def create_consultation(
    context: ConsultationWriter, patient_id: Id, form: Annotated[ConsultationForm, Form()]
) -> Response:
    context.check_csrf(form.csrf_token)
    values = {k: str(v) for k, v in form.model_dump(exclude={"csrf_token"}).items() if v}
    try:
        created = ConsultationService.for_clinic(context.clinic).create(
            context.actor, patient_id, _consultation_input(context, form)
        )
    except ValidationFailed as exc:
        messages, field = _error(context, exc)
        return _new_form(context, patient_id, 422, messages, values, field)
    return _redirect(f"/consultations/{created.id}?saved=1")


def _consultation_page(
    context: RequestContext,
    consultation_id: str,
    status_code: int = 200,
    messages: Messages | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
) -> Response:
    record = ConsultationService.for_clinic(context.clinic).get(context.actor, consultation_id)
    procedures = []
    if context.actor.can(Permission.PROCEDURES_READ):
        procedures = ProcedureService.for_clinic(context.clinic).list_for_consultation(
            context.actor, consultation_id
        )
    own = PractitionerService.for_clinic(context.clinic).practitioner_for_user(
        context.actor.user_id
    )
    is_own = own is not None and own.id == record.practitioner_id
    originals: dict[str, str] = {}
    for amendment in record.amendments:  # the first amendment of a field holds the original
        originals.setdefault(amendment.field, display_value(amendment.field, amendment.old_value))
    return render(
        context,
        "encounters_consultation.html",
        status_code,
        messages=messages,
        c=record,
        procedures=procedures,
        values=values if values is not None else _form_values(context, record),
        error_field=error_field,
        is_own=is_own,
        can_write=context.actor.can(Permission.CONSULTATIONS_WRITE),
        can_sign=context.actor.can(Permission.CONSULTATIONS_SIGN) and is_own,
        can_procedure=context.actor.can(Permission.PROCEDURES_WRITE),
        amendable=AMENDABLE_FIELDS,
        originals=originals,
        display_value=display_value,
        vital_names=list(VITAL_RANGES),
        vital_units={k: v[2] for k, v in VITAL_RANGES.items()},
        diagnosis_rows=range(1, DIAGNOSIS_ROWS + 1),
        local=_local(context),
        **_code_names(context),
    )


@router.get("/consultations/{consultation_id}")
def consultation_page(context: LoggedIn, consultation_id: Id, saved: int = 0) -> Response:
    messages = [("ok", context.t("consultation.saved"))] if saved else None
    return _consultation_page(context, consultation_id, messages=messages)


@router.post("/consultations/{consultation_id}")
def update_consultation(
    context: ConsultationWriter, consultation_id: Id, form: Annotated[ConsultationForm, Form()]
) -> Response:
    context.check_csrf(form.csrf_token)
    values = {k: str(v) for k, v in form.model_dump(exclude={"csrf_token"}).items() if v}
    try:
        ConsultationService.for_clinic(context.clinic).update(
            context.actor, consultation_id, _consultation_input(context, form), form.version or 0
        )
    except ValidationFailed as exc:
        messages, field = _error(context, exc)
        return _consultation_page(context, consultation_id, 422, messages, values, field)
    except HisError as exc:
        if exc.code != "conflict":
            raise
        messages, _ = _error(context, exc)
        return _consultation_page(context, consultation_id, 409, messages)
    return _redirect(f"/consultations/{consultation_id}?saved=1")


class ActionForm(_FormModel):
    version: int | None = Field(default=None, ge=1)


@router.post("/consultations/{consultation_id}/sign")
def sign_consultation(
    context: ConsultationSigner, consultation_id: Id, form: Annotated[ActionForm, Form()]
) -> Response:
    context.check_csrf(form.csrf_token)
    try:
        ConsultationService.for_clinic(context.clinic).sign(
            context.actor, consultation_id, form.version
        )
    except HisError as exc:
        if exc.code not in ("validation_failed", "conflict"):
            raise
        messages, _ = _error(context, exc)
        return _consultation_page(context, consultation_id, status_for(exc), messages)
    return _redirect(f"/consultations/{consultation_id}?saved=1")


class AmendmentForm(_FormModel):
    field: str = Field(max_length=20)
    value: str = Field(default="", max_length=10_000)
    reason: str = Field(default="", max_length=500)
    amend_systolic: str = Field(default="", max_length=10)
    amend_diastolic: str = Field(default="", max_length=10)
    amend_heart_rate: str = Field(default="", max_length=10)
    amend_temperature: str = Field(default="", max_length=10)
    amend_spo2: str = Field(default="", max_length=10)
    amend_weight: str = Field(default="", max_length=10)
    amend_height: str = Field(default="", max_length=10)
    version: int | None = Field(default=None, ge=1)


def _diagnosis_lines(text: str) -> list[DiagnosisInput]:
    """One diagnosis per line: the ICD-10 code, then optional text ("I10 hipertensi")."""
    result = []
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if parts:
            result.append(DiagnosisInput(parts[0], parts[1] if len(parts) > 1 else None))
    return result


@router.post("/consultations/{consultation_id}/amendments")
def amend_consultation(
    context: ConsultationWriter, consultation_id: Id, form: Annotated[AmendmentForm, Form()]
) -> Response:
    context.check_csrf(form.csrf_token)
    try:
        value: str | VitalSigns | list[DiagnosisInput] | None
        if form.field == "vital_signs":
            value = _vitals(form.model_dump(), prefix="amend_")
        elif form.field == "diagnoses":
            value = _diagnosis_lines(form.value)
        else:
            value = form.value
        ConsultationService.for_clinic(context.clinic).amend(
            context.actor, consultation_id, form.field, value, form.reason, form.version
        )
    except HisError as exc:
        if exc.code not in ("validation_failed", "conflict", "permission_denied"):
            raise
        messages, field = _error(context, exc)
        return _consultation_page(
            context, consultation_id, status_for(exc), messages, error_field=field
        )
    return _redirect(f"/consultations/{consultation_id}?saved=1")


class ProcedureForm(_FormModel):
    code: str = Field(default="", max_length=10)
    description: str = Field(default="", max_length=1000)


@router.post("/consultations/{consultation_id}/procedures")
def add_procedure(
    context: ProcedureWriter, consultation_id: Id, form: Annotated[ProcedureForm, Form()]
) -> Response:
    context.check_csrf(form.csrf_token)
    try:
        ProcedureService.for_clinic(context.clinic).create(
            context.actor, consultation_id, ProcedureInput(form.code, form.description or None)
        )
    except HisError as exc:
        if exc.code not in ("validation_failed", "conflict"):
            raise
        messages, field = _error(context, exc)
        return _consultation_page(
            context, consultation_id, status_for(exc), messages, error_field=f"procedure_{field}"
        )
    return _redirect(f"/consultations/{consultation_id}?saved=1")
