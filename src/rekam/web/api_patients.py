"""JSON API for patients (the clinic forms build on the same service)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from rekam.his.patients import PatientInput, PatientRecord, PatientSummary
from rekam.his.rbac import Permission
from rekam.web.api import CsrfHeader as CsrfToken
from rekam.web.context import RequestContext, require

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])

Reader = Annotated[RequestContext, Depends(require(Permission.PATIENTS_READ))]
Writer = Annotated[RequestContext, Depends(require(Permission.PATIENTS_WRITE))]
Eraser = Annotated[RequestContext, Depends(require(Permission.PATIENTS_ERASE))]


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=200)
    birth_date: date
    sex: Literal["M", "F"]
    nik: str = Field(min_length=16, max_length=24, description="16 digits (spaces/dots allowed)")
    bpjs: str | None = Field(default=None, max_length=20, description="13 digits")
    address: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=32)
    emergency_contact: str | None = Field(default=None, max_length=200)
    allergies: str | None = Field(default=None, max_length=1000)
    medical_history: str | None = Field(default=None, max_length=10_000)


class PatientOut(BaseModel):
    id: str
    medical_record_number: str
    name: str
    birth_date: date
    sex: Literal["M", "F"]
    nik: str
    bpjs: str | None
    address: str | None
    phone: str | None
    emergency_contact: str | None
    allergies: str | None
    medical_history: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, record: PatientRecord) -> PatientOut:
        return cls(**record.__dict__)


class PatientSummaryOut(BaseModel):
    id: str
    medical_record_number: str
    name: str
    birth_date: date
    sex: Literal["M", "F"]

    @classmethod
    def of(cls, summary: PatientSummary) -> PatientSummaryOut:
        return cls(**summary.__dict__)


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=5, max_length=500)


class ErasureOut(BaseModel):
    erased_at: datetime


def _csrf(context: RequestContext, token: str | None) -> None:
    context.check_csrf(token)


@router.post("", response_model=PatientOut, status_code=201)
def register_patient(context: Writer, body: PatientIn, csrf: CsrfToken = None) -> PatientOut:
    _csrf(context, csrf)
    record = context.clinic.patients.register(context.actor, PatientInput(**body.model_dump()))
    return PatientOut.of(record)


@router.get("", response_model=list[PatientSummaryOut])
def search_patients(
    context: Reader,
    nik: Annotated[str | None, Query(max_length=24)] = None,
    bpjs: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    mrn: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[PatientSummaryOut]:
    found = context.clinic.patients.find(
        context.actor,
        nik=nik,
        bpjs=bpjs,
        name=name,
        medical_record_number=mrn,
        limit=limit,
        offset=offset,
    )
    return [PatientSummaryOut.of(s) for s in found]


@router.get("/{patient_id}", response_model=PatientOut)
def read_patient(
    context: Reader, patient_id: Annotated[str, PathParam(max_length=36)]
) -> PatientOut:
    return PatientOut.of(context.clinic.patients.get(context.actor, patient_id))


@router.post("/{patient_id}/erasure", response_model=ErasureOut)
def erase_patient(
    context: Eraser,
    patient_id: Annotated[str, PathParam(max_length=36)],
    body: ErasureIn,
    csrf: CsrfToken = None,
) -> ErasureOut:
    _csrf(context, csrf)
    return ErasureOut(
        erased_at=context.clinic.patients.erase(context.actor, patient_id, body.reason)
    )
