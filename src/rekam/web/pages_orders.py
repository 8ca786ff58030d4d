"""HTML pages for orders: the lab worklist and results, lab trends with a chart, the pharmacy
(worklist, dispensing, formulary), and the forms that order tests and prescribe from a
consultation. Thin: every rule lives in ``rekam.his.laboratory`` and ``rekam.his.pharmacy``."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form
from fastapi import Path as PathParam
from starlette.responses import RedirectResponse, Response

from rekam.his.errors import HisError, ValidationFailed
from rekam.his.lab_catalogue import CATALOGUE
from rekam.his.laboratory import LabTrend, RequestedTest, ResultInput
from rekam.his.pharmacy import ROUTES, AllergyWarning, MedicineInput, PrescriptionInput
from rekam.his.rbac import Permission
from rekam.web.api_orders import laboratory_of, pharmacy_of
from rekam.web.context import RequestContext, require
from rekam.web.error_messages import his_error_text, status_for
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

LabReader = Annotated[RequestContext, Depends(require(Permission.LAB_READ))]
LabAnalyst = Annotated[RequestContext, Depends(require(Permission.LAB_RESULT))]
LabOrderer = Annotated[RequestContext, Depends(require(Permission.LAB_ORDER))]
Dispenser = Annotated[RequestContext, Depends(require(Permission.PRESCRIPTIONS_DISPENSE))]
FormularyWriter = Annotated[RequestContext, Depends(require(Permission.FORMULARY_WRITE))]
Prescriber = Annotated[RequestContext, Depends(require(Permission.PRESCRIPTIONS_WRITE))]
Id = Annotated[str, PathParam(min_length=1, max_length=36)]
CsrfField = Annotated[str, Form(max_length=128)]
Short = Annotated[str, Form(max_length=200)]
Reason = Annotated[str, Form(max_length=500)]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _local(context: RequestContext) -> Callable[..., str]:
    zone = ZoneInfo(context.clinic.settings.timezone)

    def local(moment: datetime | None, fmt: str = "%d-%m-%Y %H:%M") -> str:
        return moment.astimezone(zone).strftime(fmt) if moment is not None else ""

    return local


def _number(text: str, field: str) -> float | None:
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise ValidationFailed(
            "the reference range is not a number", field=field, key="lab.reference_range"
        ) from exc


def _error_values(context: RequestContext, exc: HisError) -> tuple[int, list[tuple[str, str]]]:
    return status_for(exc), [("error", his_error_text(context.t, exc))]


# Laboratory --------------------------------------------------------------------------------------


def _lab_page(
    context: RequestContext,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    error_order: str | None = None,
    error_field: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    can_result = context.actor.can(Permission.LAB_RESULT)
    pending, recent = laboratory_of(context.clinic).overview(context.actor, limit=30)
    return render(
        context,
        "orders_lab.html",
        status_code,
        messages=messages,
        pending=pending,
        recent=recent,
        can_result=can_result,
        error_order=error_order,
        error_field=error_field,
        values=values or {},
        local=_local(context),
        catalogue={test.code: test for test in CATALOGUE},
        quote=urllib.parse.quote,
    )


@router.get("/lab")
def lab_page(context: LabReader, saved: int = 0) -> Response:
    messages = [("ok", context.t("lab.result_saved"))] if saved else []
    return _lab_page(context, messages=messages)


@router.post("/lab/orders/{order_id}/result")
def lab_result_submit(
    context: LabAnalyst,
    order_id: Id,
    csrf_token: CsrfField,
    value: Annotated[str, Form(max_length=100)],
    unit: Annotated[str, Form(max_length=30)] = "",
    reference_low: Annotated[str, Form(max_length=30)] = "",
    reference_high: Annotated[str, Form(max_length=30)] = "",
    flag: Annotated[str, Form(max_length=1)] = "",
    flag_reason: Reason = "",
) -> Response:
    context.check_csrf(csrf_token)
    values = {
        "value": value,
        "unit": unit,
        "reference_low": reference_low,
        "reference_high": reference_high,
        "flag": flag,
        "flag_reason": flag_reason,
    }
    try:
        data = ResultInput(
            value=value,
            unit=unit or None,
            reference_low=_number(reference_low, "reference_low"),
            reference_high=_number(reference_high, "reference_high"),
            flag=flag or None,
            flag_reason=flag_reason or None,
        )
        laboratory_of(context.clinic).enter_result(context.actor, order_id, data)
    except HisError as exc:
        status, messages = _error_values(context, exc)
        field = exc.field if isinstance(exc, ValidationFailed) else None
        return _lab_page(context, status, messages, order_id, field, values)
    return _redirect("/lab?saved=1")


@router.get("/lab/orders/{order_id}")
def lab_order_page(context: LabReader, order_id: Id) -> Response:
    order = laboratory_of(context.clinic).get_order(context.actor, order_id)
    return render(
        context,
        "orders_lab_order.html",
        order=order,
        can_result=context.actor.can(Permission.LAB_RESULT),
        local=_local(context),
        quote=urllib.parse.quote,
        values={},
        error_field=None,
    )


@router.post("/lab/orders/{order_id}/correction")
def lab_correction_submit(
    context: LabAnalyst,
    order_id: Id,
    csrf_token: CsrfField,
    value: Annotated[str, Form(max_length=100)],
    reason: Reason,
    version: Annotated[int, Form(ge=1)],
    unit: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    context.check_csrf(csrf_token)
    lab = laboratory_of(context.clinic)
    try:
        lab.correct_result(
            context.actor, order_id, ResultInput(value=value, unit=unit or None), reason, version
        )
    except HisError as exc:
        status, messages = _error_values(context, exc)
        order = lab.get_order(context.actor, order_id)
        return render(
            context,
            "orders_lab_order.html",
            status,
            messages=messages,
            order=order,
            can_result=True,
            local=_local(context),
            quote=urllib.parse.quote,
            values={"value": value, "unit": unit, "reason": reason},
            error_field=exc.field if isinstance(exc, ValidationFailed) else None,
        )
    return _redirect(f"/lab/orders/{order_id}")


@dataclass(frozen=True)
class ChartDot:
    x: float
    y: float
    flag: str
    at: datetime
    value: str


@dataclass(frozen=True)
class TrendChart:
    """Coordinates of a server-rendered SVG line chart with the reference range as a band."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    band: tuple[float, float] | None  # y of the band's top and bottom
    line: str
    dots: tuple[ChartDot, ...]
    y_ticks: tuple[tuple[float, str], ...]
    x_labels: tuple[tuple[float, str], ...]


def trend_chart(trend: LabTrend, local: Callable[..., str]) -> TrendChart | None:
    """The chart of a trend's numeric points, or None when there is nothing to draw."""
    numeric = [(p, p.numeric) for p in trend.points if p.numeric is not None]
    if not numeric:
        return None
    width, height, left, right, top, bottom = 640, 260, 70, 590, 16, 220
    values = [v for _, v in numeric]
    reference = trend.reference
    bounds = [*values]
    if reference is not None:
        bounds += [b for b in (reference.low, reference.high) if b is not None]
    low, high = min(bounds), max(bounds)
    margin = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - margin, high + margin

    def y_of(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 1)

    count = len(numeric)
    step = (right - left) / (count - 1) if count > 1 else 0.0

    def x_of(index: int) -> float:
        return round(left + index * step if count > 1 else (left + right) / 2, 1)

    band = None
    if reference is not None and (reference.low is not None or reference.high is not None):
        band_top = y_of(reference.high) if reference.high is not None else float(top)
        band_bottom = y_of(reference.low) if reference.low is not None else float(bottom)
        band = (max(float(top), band_top), min(float(bottom), band_bottom))
    dots = tuple(
        ChartDot(x_of(i), y_of(v), p.flag or "", p.at, p.value) for i, (p, v) in enumerate(numeric)
    )
    ticks = tuple((y_of(v), f"{v:g}") for v in (min(values), max(values)))
    labels: tuple[tuple[float, str], ...] = ((dots[0].x, local(numeric[0][0].at, "%d-%m-%Y")),)
    if count > 1:
        labels += ((dots[-1].x, local(numeric[-1][0].at, "%d-%m-%Y")),)
    return TrendChart(
        width,
        height,
        left,
        right,
        top,
        bottom,
        band,
        " ".join(f"{d.x},{d.y}" for d in dots),
        dots,
        ticks,
        labels,
    )


@router.get("/patients/{patient_id}/lab-trend/{test:path}")
def lab_trend_page(
    context: LabReader, patient_id: Id, test: Annotated[str, PathParam(max_length=200)]
) -> Response:
    trend = laboratory_of(context.clinic).trend(context.actor, patient_id, test)
    local = _local(context)
    return render(
        context,
        "orders_lab_trend.html",
        trend=trend,
        chart=trend_chart(trend, local),
        local=local,
    )


def _lab_order_form(
    context: RequestContext,
    consultation_id: str,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    chosen: list[str] | None = None,
    other: str = "",
) -> Response:
    return render(
        context,
        "orders_lab_new.html",
        status_code,
        messages=messages,
        consultation_id=consultation_id,
        catalogue=CATALOGUE,
        chosen=chosen or [],
        other=other,
    )


@router.get("/consultations/{consultation_id}/lab-orders/new")
def lab_order_form(context: LabOrderer, consultation_id: Id, ordered: int = 0) -> Response:
    messages = [("ok", context.t("lab.ordered", count=ordered))] if ordered else []
    return _lab_order_form(context, consultation_id, messages=messages)


@router.post("/consultations/{consultation_id}/lab-orders/new")
def lab_order_submit(
    context: LabOrderer,
    consultation_id: Id,
    csrf_token: CsrfField,
    tests: Annotated[list[str] | None, Form()] = None,
    other: Short = "",
) -> Response:
    context.check_csrf(csrf_token)
    chosen = [code[:20] for code in (tests or [])[:40]]
    requested = [RequestedTest(code=code) for code in chosen]
    requested += [RequestedTest(name=n) for n in other.split(";") if n.strip()]
    try:
        made = laboratory_of(context.clinic).order_tests(context.actor, consultation_id, requested)
    except HisError as exc:
        status, messages = _error_values(context, exc)
        return _lab_order_form(context, consultation_id, status, messages, chosen, other)
    return _redirect(f"/consultations/{consultation_id}/lab-orders/new?ordered={len(made)}")


# Pharmacy ----------------------------------------------------------------------------------------


def _pharmacy_page(
    context: RequestContext,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
) -> Response:
    pharmacy = pharmacy_of(context.clinic)
    return render(
        context,
        "orders_pharmacy.html",
        status_code,
        messages=messages,
        pending=pharmacy.worklist(context.actor),
        medicines=pharmacy.list_medicines(context.actor, include_inactive=True),
        can_edit=context.actor.can(Permission.FORMULARY_WRITE),
        values=values or {},
        error_field=error_field,
        local=_local(context),
    )


@router.get("/pharmacy")
def pharmacy_page(context: Dispenser, done: str = "") -> Response:
    notes = {
        "dispensed": "pharmacy.dispensed",
        "medicine": "pharmacy.medicine_saved",
        "stock": "pharmacy.stock_received",
    }
    messages = [("ok", context.t(notes[done]))] if done in notes else []
    return _pharmacy_page(context, messages=messages)


@router.post("/pharmacy/prescriptions/{prescription_id}/dispense")
def dispense_submit(context: Dispenser, prescription_id: Id, csrf_token: CsrfField) -> Response:
    context.check_csrf(csrf_token)
    try:
        pharmacy_of(context.clinic).dispense(context.actor, prescription_id)
    except HisError as exc:
        status, messages = _error_values(context, exc)
        return _pharmacy_page(context, status, messages)
    return _redirect("/pharmacy?done=dispensed")


@router.post("/pharmacy/medicines")
def medicine_submit(
    context: FormularyWriter,
    csrf_token: CsrfField,
    name: Short,
    form: Annotated[str, Form(max_length=60)],
    strength: Annotated[str, Form(max_length=60)],
    stock: Annotated[int, Form(ge=0, le=1_000_000)] = 0,
) -> Response:
    context.check_csrf(csrf_token)
    try:
        pharmacy_of(context.clinic).create_medicine(
            context.actor, MedicineInput(name, form, strength), stock=stock
        )
    except HisError as exc:
        status, messages = _error_values(context, exc)
        values = {"name": name, "form": form, "strength": strength, "stock": str(stock)}
        field = exc.details.get("field")
        return _pharmacy_page(context, status, messages, values, str(field) if field else None)
    return _redirect("/pharmacy?done=medicine")


@router.post("/pharmacy/medicines/{medicine_id}/receipts")
def receipt_submit(
    context: FormularyWriter,
    medicine_id: Id,
    csrf_token: CsrfField,
    quantity: Annotated[int, Form(ge=1, le=1_000_000)],
) -> Response:
    context.check_csrf(csrf_token)
    try:
        pharmacy_of(context.clinic).receive_stock(context.actor, medicine_id, quantity)
    except HisError as exc:
        status, messages = _error_values(context, exc)
        return _pharmacy_page(context, status, messages)
    return _redirect("/pharmacy?done=stock")


def _prescription_form(
    context: RequestContext,
    consultation_id: str,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
    allergy_warning: bool = False,
) -> Response:
    pharmacy = pharmacy_of(context.clinic)
    return render(
        context,
        "orders_prescription_new.html",
        status_code,
        messages=messages,
        consultation_id=consultation_id,
        medicines=pharmacy.list_medicines(context.actor),
        written=pharmacy.for_consultation(context.actor, consultation_id),
        routes=ROUTES,
        values=values or {"route": "oral"},
        error_field=error_field,
        allergy_warning=allergy_warning,
    )


@router.get("/consultations/{consultation_id}/prescriptions/new")
def prescription_form(context: Prescriber, consultation_id: Id, saved: int = 0) -> Response:
    messages = [("ok", context.t("prescription.saved"))] if saved else []
    return _prescription_form(context, consultation_id, messages=messages)


@router.post("/consultations/{consultation_id}/prescriptions/new")
def prescription_submit(
    context: Prescriber,
    consultation_id: Id,
    csrf_token: CsrfField,
    medicine_id: Annotated[str, Form(max_length=36)],
    dose: Annotated[str, Form(max_length=100)],
    route: Annotated[str, Form(max_length=20)],
    frequency: Annotated[str, Form(max_length=100)],
    duration: Annotated[str, Form(max_length=60)],
    quantity: Annotated[str, Form(max_length=10)],
    instructions: Reason = "",
    allergy_override_reason: Reason = "",
) -> Response:
    context.check_csrf(csrf_token)
    values = {
        "medicine_id": medicine_id,
        "dose": dose,
        "route": route,
        "frequency": frequency,
        "duration": duration,
        "quantity": quantity,
        "instructions": instructions,
        "allergy_override_reason": allergy_override_reason,
    }
    try:
        if not quantity.strip().isdigit():
            raise ValidationFailed(
                "the quantity is a whole number", field="quantity", key="prescription.quantity"
            )
        pharmacy_of(context.clinic).prescribe(
            context.actor,
            consultation_id,
            PrescriptionInput(
                medicine_id=medicine_id,
                dose=dose,
                route=route,
                frequency=frequency,
                duration=duration,
                quantity=int(quantity.strip()),
                instructions=instructions or None,
                allergy_override_reason=allergy_override_reason or None,
            ),
        )
    except AllergyWarning as warning:
        text = context.t(
            "prescription.allergy_warning",
            allergy=warning.details.get("allergy", ""),
            medicine=warning.details.get("medicine", ""),
        )
        return _prescription_form(
            context,
            consultation_id,
            409,
            [("warning", text)],
            values,
            "allergy_override_reason",
            allergy_warning=True,
        )
    except HisError as exc:
        status, messages = _error_values(context, exc)
        field = exc.field if isinstance(exc, ValidationFailed) else None
        return _prescription_form(context, consultation_id, status, messages, values, field)
    return _redirect(f"/consultations/{consultation_id}/prescriptions/new?saved=1")
