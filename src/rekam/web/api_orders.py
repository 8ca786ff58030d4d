"""JSON API for orders: laboratory tests and results, the formulary, prescriptions, dispensing.

Thin: parse, call ``rekam.his.laboratory`` / ``rekam.his.pharmacy``, answer. Every rule lives in
the services.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from rekam.his.errors import ValidationFailed
from rekam.his.installation import Clinic
from rekam.his.laboratory import (
    LaboratoryService,
    LabOrderView,
    LabResult,
    LabTrend,
    ReferenceRange,
    RequestedTest,
    ResultInput,
)
from rekam.his.pharmacy import (
    AllergyWarning,
    MedicineInput,
    MedicineView,
    PharmacyService,
    PrescriptionInput,
    PrescriptionView,
)
from rekam.his.rbac import Permission
from rekam.web.api import CsrfHeader
from rekam.web.context import RequestContext, require

router = APIRouter(prefix="/api/v1", tags=["orders"])

LabOrderer = Annotated[RequestContext, Depends(require(Permission.LAB_ORDER))]
LabReader = Annotated[RequestContext, Depends(require(Permission.LAB_READ))]
LabAnalyst = Annotated[RequestContext, Depends(require(Permission.LAB_RESULT))]
Staff = Annotated[RequestContext, Depends(require(Permission.PRACTITIONERS_READ))]
FormularyWriter = Annotated[RequestContext, Depends(require(Permission.FORMULARY_WRITE))]
Prescriber = Annotated[RequestContext, Depends(require(Permission.PRESCRIPTIONS_WRITE))]
PrescriptionReader = Annotated[RequestContext, Depends(require(Permission.PRESCRIPTIONS_READ))]
Dispenser = Annotated[RequestContext, Depends(require(Permission.PRESCRIPTIONS_DISPENSE))]
Id = Annotated[str, PathParam(min_length=1, max_length=36)]


def laboratory_of(clinic: Clinic) -> LaboratoryService:
    """The clinic's laboratory service (built on demand until ``Clinic`` carries one)."""
    service = getattr(clinic, "laboratory", None)
    return (
        service if isinstance(service, LaboratoryService) else LaboratoryService.for_clinic(clinic)
    )


def pharmacy_of(clinic: Clinic) -> PharmacyService:
    """The clinic's pharmacy service (built on demand until ``Clinic`` carries one)."""
    service = getattr(clinic, "pharmacy", None)
    return service if isinstance(service, PharmacyService) else PharmacyService.for_clinic(clinic)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Laboratory --------------------------------------------------------------------------------------


class TestIn(_Strict):
    code: str | None = Field(default=None, max_length=20, description="catalogue (LOINC) code")
    name: str | None = Field(default=None, max_length=200, description="free-text test name")


class LabOrderIn(_Strict):
    tests: list[TestIn] = Field(min_length=1, max_length=20)
    patient_id: str | None = Field(
        default=None, max_length=36, description="if given, the consultation must be this patient's"
    )


class RangeOut(BaseModel):
    low: float | None
    high: float | None
    text: str

    @classmethod
    def of(cls, reference: ReferenceRange | None) -> RangeOut | None:
        return None if reference is None else cls(**reference.__dict__)


class ResultOut(BaseModel):
    value: str
    numeric: float | None
    unit: str
    reference: RangeOut | None
    flag: str
    computed_flag: str
    flag_reason: str | None
    resulted_by: str | None
    resulted_at: datetime | None

    @classmethod
    def of(cls, result: LabResult | None) -> ResultOut | None:
        if result is None:
            return None
        values = dict(result.__dict__)
        values["reference"] = RangeOut.of(result.reference)
        return cls(**values)


class CorrectionOut(BaseModel):
    corrected_at: datetime
    corrected_by: str
    previous_value: str
    previous_unit: str
    previous_flag: str
    reason: str


class LabOrderOut(BaseModel):
    id: str
    patient_id: str
    consultation_id: str
    medical_record_number: str
    patient_name: str
    test_code: str | None
    test_name: str
    status: str
    ordered_by: str
    ordered_at: datetime
    result: ResultOut | None
    corrections: list[CorrectionOut]
    version: int

    @classmethod
    def of(cls, view: LabOrderView) -> LabOrderOut:
        values = dict(view.__dict__)
        values["result"] = ResultOut.of(view.result)
        values["corrections"] = [CorrectionOut(**c.__dict__) for c in view.corrections]
        return cls(**values)


class ResultIn(_Strict):
    value: str = Field(min_length=1, max_length=100)
    unit: str | None = Field(default=None, max_length=30)
    reference_low: float | None = Field(default=None, allow_inf_nan=False)
    reference_high: float | None = Field(default=None, allow_inf_nan=False)
    flag: Literal["H", "L", "N", "A"] | None = Field(
        default=None, description="override of the computed flag (needs flag_reason)"
    )
    flag_reason: str | None = Field(default=None, max_length=500)
    correction_reason: str | None = Field(
        default=None,
        max_length=500,
        description="set to correct an entered result (the previous one is kept)",
    )
    version: int | None = Field(default=None, ge=1, description="required with a correction")


class TrendPointOut(BaseModel):
    at: datetime
    value: str
    numeric: float | None
    flag: str


class TrendOut(BaseModel):
    patient_id: str
    test: str
    test_name: str
    unit: str
    reference: RangeOut | None
    points: list[TrendPointOut]

    @classmethod
    def of(cls, trend: LabTrend) -> TrendOut:
        return cls(
            patient_id=trend.patient_id,
            test=trend.test,
            test_name=trend.test_name,
            unit=trend.unit,
            reference=RangeOut.of(trend.reference),
            points=[TrendPointOut(**p.__dict__) for p in trend.points],
        )


@router.post(
    "/consultations/{consultation_id}/lab-orders",
    response_model=list[LabOrderOut],
    status_code=201,
)
def order_lab_tests(
    context: LabOrderer, consultation_id: Id, body: LabOrderIn, csrf: CsrfHeader = None
) -> list[LabOrderOut]:
    context.check_csrf(csrf)
    orders = laboratory_of(context.clinic).order_tests(
        context.actor,
        consultation_id,
        [RequestedTest(code=t.code, name=t.name) for t in body.tests],
        patient_id=body.patient_id,
    )
    return [LabOrderOut.of(o) for o in orders]


@router.get("/lab-orders", response_model=list[LabOrderOut])
def lab_worklist(
    context: LabAnalyst,
    status: Literal["ordered", "resulted", "corrected"] = "ordered",
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> list[LabOrderOut]:
    found = laboratory_of(context.clinic).worklist(context.actor, status, limit)
    return [LabOrderOut.of(o) for o in found]


@router.get("/lab-orders/{order_id}", response_model=LabOrderOut)
def read_lab_order(context: LabReader, order_id: Id) -> LabOrderOut:
    return LabOrderOut.of(laboratory_of(context.clinic).get_order(context.actor, order_id))


@router.post("/lab-orders/{order_id}/result", response_model=LabOrderOut)
def enter_lab_result(
    context: LabAnalyst, order_id: Id, body: ResultIn, csrf: CsrfHeader = None
) -> LabOrderOut:
    context.check_csrf(csrf)
    data = ResultInput(
        value=body.value,
        unit=body.unit,
        reference_low=body.reference_low,
        reference_high=body.reference_high,
        flag=body.flag,
        flag_reason=body.flag_reason,
    )
    lab = laboratory_of(context.clinic)
    if body.correction_reason is not None:
        if body.version is None:
            raise ValidationFailed(
                "a correction needs the version of the order you read",
                field="version",
                key="lab.correction_version",
            )
        view = lab.correct_result(
            context.actor, order_id, data, body.correction_reason, body.version
        )
    else:
        view = lab.enter_result(context.actor, order_id, data)
    return LabOrderOut.of(view)


@router.get("/patients/{patient_id}/lab-trend", response_model=TrendOut)
def lab_trend(
    context: LabReader,
    patient_id: Id,
    test: Annotated[str, Query(min_length=1, max_length=200)],
) -> TrendOut:
    return TrendOut.of(laboratory_of(context.clinic).trend(context.actor, patient_id, test))


# Formulary ---------------------------------------------------------------------------------------


class MedicineOut(BaseModel):
    id: str
    name: str
    form: str
    strength: str
    stock: int
    active: bool
    version: int

    @classmethod
    def of(cls, view: MedicineView) -> MedicineOut:
        return cls(**view.__dict__)


class MedicineIn(_Strict):
    name: str = Field(min_length=2, max_length=200)
    form: str = Field(min_length=1, max_length=60)
    strength: str = Field(min_length=1, max_length=60)
    active: bool = True
    stock: int = Field(default=0, ge=0, le=1_000_000, description="opening stock")


class MedicineUpdateIn(_Strict):
    name: str = Field(min_length=2, max_length=200)
    form: str = Field(min_length=1, max_length=60)
    strength: str = Field(min_length=1, max_length=60)
    active: bool = True
    version: int = Field(ge=1, description="the version you read; refused if it changed")


class StockReceiptIn(_Strict):
    quantity: int = Field(ge=1, le=1_000_000)


@router.get("/medicines", response_model=list[MedicineOut])
def list_medicines(context: Staff, include_inactive: bool = False) -> list[MedicineOut]:
    found = pharmacy_of(context.clinic).list_medicines(context.actor, include_inactive)
    return [MedicineOut.of(m) for m in found]


@router.post("/medicines", response_model=MedicineOut, status_code=201)
def create_medicine(
    context: FormularyWriter, body: MedicineIn, csrf: CsrfHeader = None
) -> MedicineOut:
    context.check_csrf(csrf)
    created = pharmacy_of(context.clinic).create_medicine(
        context.actor,
        MedicineInput(body.name, body.form, body.strength, body.active),
        stock=body.stock,
    )
    return MedicineOut.of(created)


@router.put("/medicines/{medicine_id}", response_model=MedicineOut)
def update_medicine(
    context: FormularyWriter, medicine_id: Id, body: MedicineUpdateIn, csrf: CsrfHeader = None
) -> MedicineOut:
    context.check_csrf(csrf)
    updated = pharmacy_of(context.clinic).update_medicine(
        context.actor,
        medicine_id,
        MedicineInput(body.name, body.form, body.strength, body.active),
        body.version,
    )
    return MedicineOut.of(updated)


@router.post("/medicines/{medicine_id}/receipts", response_model=MedicineOut)
def receive_stock(
    context: FormularyWriter, medicine_id: Id, body: StockReceiptIn, csrf: CsrfHeader = None
) -> MedicineOut:
    context.check_csrf(csrf)
    received = pharmacy_of(context.clinic).receive_stock(context.actor, medicine_id, body.quantity)
    return MedicineOut.of(received)


# Prescriptions -----------------------------------------------------------------------------------


class PrescriptionIn(_Strict):
    medicine_id: str = Field(min_length=1, max_length=36)
    dose: str = Field(min_length=1, max_length=100)
    route: str = Field(min_length=1, max_length=20)
    frequency: str = Field(min_length=1, max_length=100)
    duration: str = Field(min_length=1, max_length=60)
    quantity: int = Field(ge=1, le=10_000)
    instructions: str | None = Field(default=None, max_length=500)
    allergy_override_reason: str | None = Field(default=None, max_length=500)
    patient_id: str | None = Field(default=None, max_length=36)


class PrescriptionOut(BaseModel):
    id: str
    patient_id: str
    consultation_id: str
    medical_record_number: str
    patient_name: str
    medicine_id: str
    medicine_name: str
    medicine_form: str
    medicine_strength: str
    quantity: int
    dose: str
    route: str
    frequency: str
    duration: str
    instructions: str | None
    status: str
    prescribed_by: str
    prescribed_at: datetime
    allergy_override_reason: str | None
    dispensed_by: str | None
    dispensed_at: datetime | None
    version: int

    @classmethod
    def of(cls, view: PrescriptionView) -> PrescriptionOut:
        return cls(**view.__dict__)


def _problem(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


@router.post(
    "/consultations/{consultation_id}/prescriptions",
    response_model=PrescriptionOut,
    status_code=201,
    responses={409: {"description": "allergy_warning: confirm with allergy_override_reason"}},
)
def prescribe(
    context: Prescriber, consultation_id: Id, body: PrescriptionIn, csrf: CsrfHeader = None
) -> PrescriptionOut | JSONResponse:
    context.check_csrf(csrf)
    data = PrescriptionInput(
        medicine_id=body.medicine_id,
        dose=body.dose,
        route=body.route,
        frequency=body.frequency,
        duration=body.duration,
        quantity=body.quantity,
        instructions=body.instructions,
        allergy_override_reason=body.allergy_override_reason,
    )
    try:
        made = pharmacy_of(context.clinic).prescribe(
            context.actor, consultation_id, data, patient_id=body.patient_id
        )
    except AllergyWarning as warning:
        return _problem(
            409,
            warning.code,
            str(warning),
            allergy=str(warning.details.get("allergy", "")),
            medicine=str(warning.details.get("medicine", "")),
        )
    return PrescriptionOut.of(made)


@router.get("/prescriptions", response_model=list[PrescriptionOut])
def prescription_worklist(
    context: PrescriptionReader,
    status: Literal["prescribed", "dispensed"] = "prescribed",
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> list[PrescriptionOut]:
    found = pharmacy_of(context.clinic).worklist(context.actor, status, limit)
    return [PrescriptionOut.of(p) for p in found]


@router.get("/prescriptions/{prescription_id}", response_model=PrescriptionOut)
def read_prescription(context: PrescriptionReader, prescription_id: Id) -> PrescriptionOut:
    found = pharmacy_of(context.clinic).get_prescription(context.actor, prescription_id)
    return PrescriptionOut.of(found)


@router.post("/prescriptions/{prescription_id}/dispense", response_model=PrescriptionOut)
def dispense(context: Dispenser, prescription_id: Id, csrf: CsrfHeader = None) -> PrescriptionOut:
    context.check_csrf(csrf)
    done = pharmacy_of(context.clinic).dispense(context.actor, prescription_id)
    return PrescriptionOut.of(done)
