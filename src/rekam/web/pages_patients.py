"""HTML pages for patients: search, registration, details, files, and a patient's own record."""

from __future__ import annotations

import re
import urllib.parse
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form
from fastapi import Path as PathParam
from starlette.responses import RedirectResponse, Response, StreamingResponse

from rekam.his.errors import HisError
from rekam.his.medical_record import MedicalRecordService
from rekam.his.patients import PatientInput, PatientRecord, PatientSummary
from rekam.his.rbac import Permission
from rekam.web.context import RequestContext, logged_in_context, require
from rekam.web.error_messages import his_error_text
from rekam.web.pages_monitor import patient_monitoring_section
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

Reader = Annotated[RequestContext, Depends(require(Permission.PATIENTS_READ))]
Writer = Annotated[RequestContext, Depends(require(Permission.PATIENTS_WRITE))]
OwnRecord = Annotated[RequestContext, Depends(require(Permission.OWN_RECORD_READ))]
Anyone = Annotated[RequestContext, Depends(logged_in_context)]
PatientId = Annotated[str, PathParam(max_length=36)]
Text = Annotated[str, Form(max_length=10_000)]
CsrfField = Annotated[str, Form(max_length=128)]

_DIGITS = re.compile(r"[\d\s.\-]+")


def _search(context: RequestContext, query: str) -> list[PatientSummary]:
    """One search box: 16 digits is a NIK, 13 a BPJS number, RM-… a record number, else words."""
    query = query.strip()
    digits = re.sub(r"\D", "", query)
    service = context.clinic.patients
    if _DIGITS.fullmatch(query) and len(digits) == 16:
        return service.find(context.actor, nik=digits)
    if _DIGITS.fullmatch(query) and len(digits) == 13:
        return service.find(context.actor, bpjs=digits)
    if query.upper().startswith("RM-"):
        return service.find(context.actor, medical_record_number=query)
    return service.find(context.actor, name=query)


@router.get("/patients")
def patients_page(context: Reader, q: str = "") -> Response:
    results: list[PatientSummary] = []
    messages: list[tuple[str, str]] = []
    if q.strip():
        try:
            results = _search(context, q[:200])
        except HisError as exc:
            messages.append(("error", his_error_text(context.t, exc)))
        if not results and not messages:
            messages.append(("warning", context.t("patients.none_found")))
    return render(
        context,
        "patients.html",
        messages=messages,
        query=q[:200],
        results=results,
        searched=bool(q.strip()),
        can_write=context.actor.can(Permission.PATIENTS_WRITE),
    )


def patient_form(
    name: Annotated[str, Form(max_length=200)],
    birth_date: Annotated[str, Form(max_length=10)],
    sex: Annotated[str, Form(max_length=1)],
    nik: Annotated[str, Form(max_length=24)],
    bpjs: Annotated[str, Form(max_length=20)] = "",
    address: Text = "",
    phone: Annotated[str, Form(max_length=32)] = "",
    emergency_contact: Text = "",
    allergies: Text = "",
    medical_history: Text = "",
) -> dict[str, str]:
    """The patient form's fields, as typed (shown again if the service refuses them)."""
    return {
        "name": name,
        "birth_date": birth_date,
        "sex": sex,
        "nik": nik,
        "bpjs": bpjs,
        "address": address,
        "phone": phone,
        "emergency_contact": emergency_contact,
        "allergies": allergies,
        "medical_history": medical_history,
    }


PatientForm = Annotated[dict[str, str], Depends(patient_form)]


def _input(values: dict[str, str]) -> PatientInput:
    try:
        born = date.fromisoformat(values["birth_date"])
    except ValueError:
        born = date(1, 1, 1)  # refused by the service with a readable message
    optional = {
        key: values[key] or None
        for key in ("bpjs", "address", "phone", "emergency_contact", "allergies", "medical_history")
    }
    return PatientInput(
        name=values["name"],
        birth_date=born,
        sex=values["sex"],  # type: ignore[arg-type]
        nik=values["nik"],
        **optional,
    )


def _form(
    context: RequestContext,
    status: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    patient_id: str | None = None,
    version: int | None = None,
    error_field: str | None = None,
) -> Response:
    return render(
        context,
        "patient_form.html",
        status,
        messages=messages,
        values=values or {},
        patient_id=patient_id,
        version=version,
        error_field=error_field,
    )


@router.get("/patients/new")
def new_patient_page(context: Writer) -> Response:
    return _form(context)


@router.post("/patients/new")
def register_patient(context: Writer, csrf_token: CsrfField, values: PatientForm) -> Response:
    context.check_csrf(csrf_token)
    try:
        record = context.clinic.patients.register(context.actor, _input(values))
    except HisError as exc:
        return _form(
            context,
            422,
            [("error", his_error_text(context.t, exc))],
            values,
            error_field=str(exc.details.get("field") or ""),
        )
    target = f"/patients/{record.id}?registered=1"
    return RedirectResponse(target, status_code=303)


@router.get("/patients/{patient_id}")
def patient_page(
    context: Reader, patient_id: PatientId, registered: int = 0, saved: int = 0
) -> Response:
    record, files = context.clinic.patients.overview(context.actor, patient_id)
    messages = []
    if registered:
        messages.append(("ok", context.t("patients.registered", mrn=record.medical_record_number)))
    if saved:
        messages.append(("ok", context.t("patients.saved")))
    return render(
        context,
        "patient.html",
        messages=messages,
        patient=record,
        files=files,
        can_write=context.actor.can(Permission.PATIENTS_WRITE),
        can_see_record=context.actor.can(Permission.RECORD_READ),
    )


def _values(record: PatientRecord) -> dict[str, str]:
    return {
        "name": record.name,
        "birth_date": record.birth_date.isoformat(),
        "sex": record.sex,
        "nik": record.nik,
        "bpjs": record.bpjs or "",
        "address": record.address or "",
        "phone": record.phone or "",
        "emergency_contact": record.emergency_contact or "",
        "allergies": record.allergies or "",
        "medical_history": record.medical_history or "",
    }


@router.get("/patients/{patient_id}/edit")
def edit_patient_page(context: Writer, patient_id: PatientId) -> Response:
    record = context.clinic.patients.get(context.actor, patient_id)
    return _form(context, values=_values(record), patient_id=patient_id, version=record.version)


@router.post("/patients/{patient_id}/edit")
def edit_patient(
    context: Writer,
    patient_id: PatientId,
    csrf_token: CsrfField,
    version: Annotated[int, Form(ge=1)],
    values: PatientForm,
) -> Response:
    context.check_csrf(csrf_token)
    try:
        context.clinic.patients.update(context.actor, patient_id, _input(values), version)
    except HisError as exc:
        status = 409 if exc.code == "conflict" else 422
        return _form(
            context,
            status,
            [("error", his_error_text(context.t, exc))],
            values,
            patient_id=patient_id,
            version=version,
            error_field=str(exc.details.get("field") or ""),
        )
    return RedirectResponse(f"/patients/{patient_id}?saved=1", status_code=303)


@router.get("/patients/{patient_id}/files/{file_id}")
def download_file_page(
    context: Reader, patient_id: PatientId, file_id: Annotated[str, PathParam(max_length=36)]
) -> StreamingResponse:
    info, chunks = context.clinic.patients.open_file(context.actor, patient_id, file_id)
    return StreamingResponse(
        chunks,
        media_type=info.content_type,
        headers={
            "content-length": str(info.size),
            "content-disposition": (
                f"attachment; filename*=UTF-8''{urllib.parse.quote(info.filename)}"
            ),
        },
    )


@router.get("/my-record")
def my_record_page(context: OwnRecord) -> Response:
    patient_id = context.clinic.patients.own_record_id(context.actor)
    record, files = context.clinic.patients.overview(context.actor, patient_id)
    return render(
        context,
        "patient.html",
        patient=record,
        files=files,
        can_write=False,
        can_see_record=True,
        own=True,
    )


@router.get("/patients/{patient_id}/record")
def record_page(context: Anyone, patient_id: PatientId) -> Response:
    """The printable medical record: everything about the patient on one timeline."""
    record = MedicalRecordService.for_clinic(context.clinic).timeline(context.actor, patient_id)
    zone = ZoneInfo(context.clinic.settings.timezone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    monitoring = patient_monitoring_section(context, patient_id)
    return render(context, "record.html", record=record, local=local, monitoring=monitoring)
