"""JSON API for encounters: practitioners, consultations (sign-off, amendments), procedures.

Thin: parse, call the service, shape the answer. Every rule lives in ``rekam.his``. Reads of
patient data admit any logged-in user and let the service's patient-access check decide (so a
patient account may read its own record); writes also need the role's permission up front.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from rekam.his.consultations import (
    AmendmentRecord,
    ConsultationInput,
    ConsultationRecord,
    ConsultationService,
    ConsultationSummary,
    DiagnosisInput,
    VitalSigns,
)
from rekam.his.icd import ICD9CM_COMMON, ICD10_COMMON
from rekam.his.practitioners import PractitionerInput, PractitionerRecord, PractitionerService
from rekam.his.procedures import ProcedureInput, ProcedureRecord, ProcedureService
from rekam.his.rbac import Permission
from rekam.web.api import CsrfHeader as CsrfToken
from rekam.web.context import RequestContext, logged_in_context, require

router = APIRouter(prefix="/api/v1", tags=["encounters"])

LoggedIn = Annotated[RequestContext, Depends(logged_in_context)]
PractitionerReader = Annotated[RequestContext, Depends(require(Permission.PRACTITIONERS_READ))]
PractitionerWriter = Annotated[RequestContext, Depends(require(Permission.PRACTITIONERS_WRITE))]
ConsultationWriter = Annotated[RequestContext, Depends(require(Permission.CONSULTATIONS_WRITE))]
ConsultationSigner = Annotated[RequestContext, Depends(require(Permission.CONSULTATIONS_SIGN))]
ProcedureWriter = Annotated[RequestContext, Depends(require(Permission.PROCEDURES_WRITE))]
Id = Annotated[str, PathParam(min_length=1, max_length=36)]

Profession = Literal["doctor", "nurse", "midwife", "pharmacist", "lab_analyst", "other"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Practitioners ---------------------------------------------------------------------------------


class PractitionerIn(_Strict):
    name: str = Field(min_length=2, max_length=200)
    profession: Profession
    specialty: str | None = Field(default=None, max_length=100)
    str_number: str | None = Field(default=None, max_length=40, description="STR: 16 digits")
    sip_number: str | None = Field(
        default=None, max_length=60, description="SIP, e.g. 503/0123/SIP-DU/DPMPTSP/2024"
    )
    user_id: str | None = Field(default=None, max_length=36)
    active: bool = True

    def service_input(self) -> PractitionerInput:
        return PractitionerInput(**self.model_dump(exclude={"version"}))


class PractitionerUpdateIn(PractitionerIn):
    version: int = Field(ge=1, description="the version you read; a stale one answers 409")


class PractitionerOut(BaseModel):
    id: str
    name: str
    profession: str
    specialty: str | None
    str_number: str | None
    sip_number: str | None
    user_id: str | None
    active: bool
    created_at: datetime
    version: int

    @classmethod
    def of(cls, record: PractitionerRecord) -> PractitionerOut:
        return cls(**{**record.__dict__, "profession": record.profession.value})


@router.get("/practitioners", response_model=list[PractitionerOut])
def list_practitioners(
    context: PractitionerReader,
    search: Annotated[str | None, Query(max_length=100)] = None,
    profession: Profession | None = None,
    active_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[PractitionerOut]:
    found = PractitionerService.for_clinic(context.clinic).list(
        context.actor, search, profession, active_only, limit, offset
    )
    return [PractitionerOut.of(p) for p in found]


@router.post("/practitioners", response_model=PractitionerOut, status_code=201)
def create_practitioner(
    context: PractitionerWriter, body: PractitionerIn, csrf: CsrfToken = None
) -> PractitionerOut:
    context.check_csrf(csrf)
    service = PractitionerService.for_clinic(context.clinic)
    return PractitionerOut.of(service.create(context.actor, body.service_input()))


@router.get("/practitioners/{practitioner_id}", response_model=PractitionerOut)
def read_practitioner(context: PractitionerReader, practitioner_id: Id) -> PractitionerOut:
    service = PractitionerService.for_clinic(context.clinic)
    return PractitionerOut.of(service.get(context.actor, practitioner_id))


@router.put("/practitioners/{practitioner_id}", response_model=PractitionerOut)
def update_practitioner(
    context: PractitionerWriter,
    practitioner_id: Id,
    body: PractitionerUpdateIn,
    csrf: CsrfToken = None,
) -> PractitionerOut:
    context.check_csrf(csrf)
    service = PractitionerService.for_clinic(context.clinic)
    updated = service.update(context.actor, practitioner_id, body.service_input(), body.version)
    return PractitionerOut.of(updated)


# Consultations ---------------------------------------------------------------------------------


class VitalSignsIn(_Strict):
    """Each optional; the service checks the plausible range of each."""

    systolic: float | None = Field(default=None, description="mmHg")
    diastolic: float | None = Field(default=None, description="mmHg")
    heart_rate: float | None = Field(default=None, description="beats per minute")
    temperature: float | None = Field(default=None, description="°C")
    spo2: float | None = Field(default=None, description="%")
    weight: float | None = Field(default=None, description="kg")
    height: float | None = Field(default=None, description="cm")

    def service_input(self) -> VitalSigns:
        return VitalSigns(**self.model_dump())


class DiagnosisIn(_Strict):
    code: str = Field(min_length=1, max_length=10, description="ICD-10, e.g. E11.9")
    text: str | None = Field(default=None, max_length=500)
    rank: int | None = Field(default=None, ge=1, le=99, description="1 = primary")

    def service_input(self) -> DiagnosisInput:
        return DiagnosisInput(self.code, self.text, self.rank)


class ConsultationIn(_Strict):
    started_at: AwareDatetime | None = Field(default=None, description="with a time zone")
    complaint: str | None = Field(default=None, max_length=5000)
    examination: str | None = Field(default=None, max_length=10_000)
    vital_signs: VitalSignsIn | None = None
    diagnoses: list[DiagnosisIn] = Field(default_factory=list, max_length=20)
    plan: str | None = Field(default=None, max_length=5000)

    def service_input(self) -> ConsultationInput:
        return ConsultationInput(
            started_at=self.started_at,
            complaint=self.complaint,
            examination=self.examination,
            vital_signs=self.vital_signs.service_input() if self.vital_signs else None,
            diagnoses=tuple(d.service_input() for d in self.diagnoses),
            plan=self.plan,
        )


class ConsultationCreateIn(ConsultationIn):
    practitioner_id: str | None = Field(
        default=None, max_length=36, description="defaults to your own practitioner record"
    )


class ConsultationUpdateIn(ConsultationIn):
    version: int = Field(ge=1, description="the version you read; a stale one answers 409")


class SignIn(_Strict):
    version: int | None = Field(default=None, ge=1)


class AmendmentIn(_Strict):
    field: Literal["complaint", "examination", "vital_signs", "diagnoses", "plan"]
    value: str | None = Field(
        default=None, max_length=10_000, description="for complaint, examination, plan"
    )
    vital_signs: VitalSignsIn | None = Field(default=None, description="for vital_signs")
    diagnoses: list[DiagnosisIn] | None = Field(
        default=None, max_length=20, description="for diagnoses"
    )
    reason: str = Field(min_length=5, max_length=500)
    version: int | None = Field(default=None, ge=1)


class VitalSignsOut(BaseModel):
    systolic: float | None
    diastolic: float | None
    heart_rate: float | None
    temperature: float | None
    spo2: float | None
    weight: float | None
    height: float | None


class DiagnosisOut(BaseModel):
    rank: int
    code: str
    text: str | None


class AmendmentOut(BaseModel):
    id: str
    field: str
    old_value: str | None
    new_value: str | None
    reason: str
    amended_by: str
    amended_by_name: str
    amended_at: datetime

    @classmethod
    def of(cls, record: AmendmentRecord) -> AmendmentOut:
        return cls(**record.__dict__)


class ConsultationOut(BaseModel):
    id: str
    patient_id: str
    practitioner_id: str
    practitioner_name: str
    started_at: datetime
    status: str
    complaint: str | None
    examination: str | None
    vital_signs: VitalSignsOut | None
    diagnoses: list[DiagnosisOut]
    plan: str | None
    signed_at: datetime | None
    signed_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    amendments: list[AmendmentOut]

    @classmethod
    def of(cls, record: ConsultationRecord) -> ConsultationOut:
        values = dict(record.__dict__)
        values["vital_signs"] = (
            VitalSignsOut(**record.vital_signs.__dict__) if record.vital_signs else None
        )
        values["diagnoses"] = [DiagnosisOut(**d.__dict__) for d in record.diagnoses]
        values["amendments"] = [AmendmentOut.of(a) for a in record.amendments]
        return cls(**values)


class ConsultationSummaryOut(BaseModel):
    id: str
    patient_id: str
    patient_name: str
    medical_record_number: str
    practitioner_id: str
    practitioner_name: str
    started_at: datetime
    status: str
    primary_diagnosis: str | None

    @classmethod
    def of(cls, summary: ConsultationSummary) -> ConsultationSummaryOut:
        return cls(**summary.__dict__)


def _consultations(context: RequestContext) -> ConsultationService:
    return ConsultationService.for_clinic(context.clinic)


@router.get("/patients/{patient_id}/consultations", response_model=list[ConsultationSummaryOut])
def list_consultations(
    context: LoggedIn,
    patient_id: Id,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ConsultationSummaryOut]:
    found = _consultations(context).list_for_patient(context.actor, patient_id, limit)
    return [ConsultationSummaryOut.of(s) for s in found]


@router.post(
    "/patients/{patient_id}/consultations", response_model=ConsultationOut, status_code=201
)
def create_consultation(
    context: ConsultationWriter,
    patient_id: Id,
    body: ConsultationCreateIn,
    csrf: CsrfToken = None,
) -> ConsultationOut:
    context.check_csrf(csrf)
    created = _consultations(context).create(
        context.actor, patient_id, body.service_input(), body.practitioner_id
    )
    return ConsultationOut.of(created)


@router.get("/consultations/{consultation_id}", response_model=ConsultationOut)
def read_consultation(context: LoggedIn, consultation_id: Id) -> ConsultationOut:
    return ConsultationOut.of(_consultations(context).get(context.actor, consultation_id))


@router.put("/consultations/{consultation_id}", response_model=ConsultationOut)
def update_consultation(
    context: ConsultationWriter,
    consultation_id: Id,
    body: ConsultationUpdateIn,
    csrf: CsrfToken = None,
) -> ConsultationOut:
    context.check_csrf(csrf)
    updated = _consultations(context).update(
        context.actor, consultation_id, body.service_input(), body.version
    )
    return ConsultationOut.of(updated)


@router.post("/consultations/{consultation_id}/sign", response_model=ConsultationOut)
def sign_consultation(
    context: ConsultationSigner,
    consultation_id: Id,
    body: SignIn | None = None,
    csrf: CsrfToken = None,
) -> ConsultationOut:
    context.check_csrf(csrf)
    version = body.version if body else None
    return ConsultationOut.of(_consultations(context).sign(context.actor, consultation_id, version))


@router.post(
    "/consultations/{consultation_id}/amendments", response_model=ConsultationOut, status_code=201
)
def amend_consultation(
    context: ConsultationWriter,
    consultation_id: Id,
    body: AmendmentIn,
    csrf: CsrfToken = None,
) -> ConsultationOut:
    context.check_csrf(csrf)
    value: str | VitalSigns | list[DiagnosisInput] | None
    if body.field == "vital_signs":
        value = body.vital_signs.service_input() if body.vital_signs else None
    elif body.field == "diagnoses":
        value = [d.service_input() for d in body.diagnoses or []]
    else:
        value = body.value
    amended = _consultations(context).amend(
        context.actor, consultation_id, body.field, value, body.reason, body.version
    )
    return ConsultationOut.of(amended)


# Procedures ------------------------------------------------------------------------------------


class ProcedureIn(_Strict):
    code: str = Field(min_length=1, max_length=10, description="ICD-9-CM, e.g. 99.21")
    description: str | None = Field(default=None, max_length=1000)
    performer_id: str | None = Field(
        default=None, max_length=36, description="defaults to your own practitioner record"
    )
    performed_at: AwareDatetime | None = None


class ProcedureOut(BaseModel):
    id: str
    consultation_id: str
    patient_id: str
    code: str
    description: str | None
    performer_id: str
    performer_name: str
    performed_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, record: ProcedureRecord) -> ProcedureOut:
        return cls(**record.__dict__)


@router.get("/consultations/{consultation_id}/procedures", response_model=list[ProcedureOut])
def list_procedures(context: LoggedIn, consultation_id: Id) -> list[ProcedureOut]:
    service = ProcedureService.for_clinic(context.clinic)
    return [
        ProcedureOut.of(p) for p in service.list_for_consultation(context.actor, consultation_id)
    ]


@router.get("/patients/{patient_id}/procedures", response_model=list[ProcedureOut])
def list_patient_procedures(context: LoggedIn, patient_id: Id) -> list[ProcedureOut]:
    service = ProcedureService.for_clinic(context.clinic)
    return [ProcedureOut.of(p) for p in service.list_for_patient(context.actor, patient_id)]


@router.post(
    "/consultations/{consultation_id}/procedures", response_model=ProcedureOut, status_code=201
)
def create_procedure(
    context: ProcedureWriter, consultation_id: Id, body: ProcedureIn, csrf: CsrfToken = None
) -> ProcedureOut:
    context.check_csrf(csrf)
    service = ProcedureService.for_clinic(context.clinic)
    data = ProcedureInput(body.code, body.description, body.performer_id, body.performed_at)
    return ProcedureOut.of(service.create(context.actor, consultation_id, data))


# Code tables -----------------------------------------------------------------------------------


class CodeOut(BaseModel):
    code: str
    name: str


@router.get("/codes/{system}", response_model=list[CodeOut])
def common_codes(context: LoggedIn, system: Literal["icd10", "icd9cm"]) -> list[CodeOut]:
    """The built-in common codes, named in the reader's language (for pick lists)."""
    table = ICD10_COMMON if system == "icd10" else ICD9CM_COMMON
    return [
        CodeOut(code=code, name=name.en if context.language == "en" else name.id)
        for code, name in sorted(table.items())
    ]
