"""HTML pages for heart monitoring: the live dashboard (/monitor), acknowledging alerts, pairing
and unpairing devices, and the patient's alerts and heart-rate trend (also shown in the record).

Thin: every rule lives in ``rekam.his.monitoring``. The dashboard is server-rendered from stored
data and then kept live by ``/static/monitor.js`` from ``GET /api/v1/monitor/events``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form
from fastapi import Path as PathParam
from starlette.responses import RedirectResponse, Response

from rekam.his.errors import HisError, NotFound, PermissionDenied, ValidationFailed
from rekam.his.monitoring import PairingResult, public_key_bytes
from rekam.his.rbac import Permission
from rekam.store.types import utc_now
from rekam.web.api_monitor import monitoring_of
from rekam.web.context import RequestContext, require
from rekam.web.error_messages import his_error_text, status_for
from rekam.web.i18n import FALLBACK, catalog
from rekam.web.monitor_trend_chart import heart_rate_chart
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

Viewer = Annotated[RequestContext, Depends(require(Permission.MONITOR_VIEW))]
DeviceManager = Annotated[RequestContext, Depends(require(Permission.MONITOR_DEVICES))]
Acknowledger = Annotated[RequestContext, Depends(require(Permission.MONITOR_ACKNOWLEDGE))]
Id = Annotated[str, PathParam(min_length=1, max_length=36)]
CsrfField = Annotated[str, Form(max_length=128)]

TREND_HOURS = 24
#: the messages monitor.js shows (sent with the page as JSON)
SCRIPT_TEXTS = (
    "monitor.kind_",
    "monitor.rhythm_",
    "monitor.quality_",
    "monitor.status_",
    "monitor.live_",
    "monitor.bpm",
    "monitor.no_reading",
    "monitor.irregular",
    "monitor.acknowledge",
    "monitor.show_",
    "monitor.alert_strip_caption",
    "monitor.rhythm",
    "monitor.quality",
    "monitor.last_alert",
)


def catalog_for(context: RequestContext) -> dict[str, str]:
    merged = dict(catalog(FALLBACK))
    merged.update(catalog(context.language))
    return merged


def _local(context: RequestContext) -> Callable[..., str]:
    zone = ZoneInfo(context.clinic.settings.timezone)

    def local(moment: datetime | None, fmt: str = "%d-%m-%Y %H:%M:%S") -> str:
        return moment.astimezone(zone).strftime(fmt) if moment is not None else ""

    return local


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# The dashboard -----------------------------------------------------------------------------------


def _dashboard(
    context: RequestContext, status_code: int = 200, messages: list[tuple[str, str]] | None = None
) -> Response:
    service = monitoring_of(context.clinic)
    tiles = service.tiles(context.actor)
    alerts = service.alerts(context.actor, limit=30)
    return render(
        context,
        "monitor_dashboard.html",
        status_code,
        messages=messages,
        tiles=tiles,
        alerts=alerts,
        local=_local(context),
        timezone=context.clinic.settings.timezone,
        texts={k: v for k, v in catalog_for(context).items() if k.startswith(SCRIPT_TEXTS)},
        can_acknowledge=context.actor.can(Permission.MONITOR_ACKNOWLEDGE),
        can_pair=context.actor.can(Permission.MONITOR_DEVICES),
    )


@router.get("/monitor")
def monitor_page(context: Viewer, acknowledged: int = 0) -> Response:
    messages = [("ok", context.t("monitor.acknowledged_ok"))] if acknowledged else []
    return _dashboard(context, messages=messages)


@router.post("/monitor/alerts/{alert_id}/acknowledge")
def acknowledge_submit(context: Acknowledger, alert_id: Id, csrf_token: CsrfField) -> Response:
    context.check_csrf(csrf_token)
    try:
        acknowledged = monitoring_of(context.clinic).acknowledge(context.actor, alert_id)
    except HisError as exc:
        return _dashboard(context, status_for(exc), [("error", his_error_text(context.t, exc))])
    context.request.app.state.monitor.announce_acknowledged(acknowledged)
    return _redirect("/monitor?acknowledged=1")


# Devices -----------------------------------------------------------------------------------------


def _devices_page(
    context: RequestContext,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
    paired: PairingResult | None = None,
) -> Response:
    devices = monitoring_of(context.clinic).devices(context.actor)
    return render(
        context,
        "monitor_devices.html",
        status_code,
        messages=messages,
        devices=devices,
        values=values or {},
        error_field=error_field,
        paired=paired,
        gateway_public=paired.gateway_public.hex() if paired else "",
        local=_local(context),
    )


@router.get("/monitor/devices")
def devices_page(context: DeviceManager, unpaired: int = 0) -> Response:
    messages = [("ok", context.t("monitor.unpaired_ok"))] if unpaired else []
    return _devices_page(context, messages=messages)


def _patient_id_for(context: RequestContext, patient: str) -> str:
    """The patient named on the form: a record number (RM-000123) or a patient id."""
    text = patient.strip()
    if text.upper().startswith("RM-"):
        found = context.clinic.patients.find(context.actor, medical_record_number=text.upper())
        if not found:
            raise NotFound("no such patient", key="patient.not_found")
        return found[0].id
    if not text:
        raise ValidationFailed("choose the patient", field="patient", key="monitor.patient")
    return text


@router.post("/monitor/devices")
def pair_submit(
    context: DeviceManager,
    csrf_token: CsrfField,
    patient: Annotated[str, Form(max_length=40)],
    device_public: Annotated[str, Form(max_length=100)],
    label: Annotated[str, Form(max_length=200)],
) -> Response:
    context.check_csrf(csrf_token)
    values = {"patient": patient, "device_public": device_public, "label": label}
    try:
        result = monitoring_of(context.clinic).pair_device(
            context.actor,
            _patient_id_for(context, patient),
            public_key_bytes(device_public),
            label,
        )
    except HisError as exc:
        field = exc.field if isinstance(exc, ValidationFailed) else None
        return _devices_page(
            context,
            status_for(exc),
            [("error", his_error_text(context.t, exc))],
            values=values,
            error_field=field,
        )
    return _devices_page(context, 201, [("ok", context.t("monitor.paired_ok"))], paired=result)


@router.post("/monitor/devices/{device_id}/unpair")
def unpair_submit(context: DeviceManager, device_id: Id, csrf_token: CsrfField) -> Response:
    context.check_csrf(csrf_token)
    try:
        monitoring_of(context.clinic).unpair(context.actor, device_id)
    except HisError as exc:
        return _devices_page(context, status_for(exc), [("error", his_error_text(context.t, exc))])
    return _redirect("/monitor/devices?unpaired=1")


# A patient's monitoring (its own page, and a section of the medical record) ---------------------


def patient_monitoring_section(context: RequestContext, patient_id: str) -> dict[str, Any] | None:
    """What ``monitor_patient_section.html`` needs for one patient, or None when the user may not
    see monitoring data (the record page then shows no section)."""
    service = monitoring_of(context.clinic)
    if not context.actor.can(Permission.MONITOR_VIEW) or not service.ever_monitored(patient_id):
        return None
    now = utc_now()
    try:
        summary = service.patient_summary(
            context.actor, patient_id, now - timedelta(hours=TREND_HOURS)
        )
    except (PermissionDenied, NotFound):
        return None
    local = _local(context)
    return {
        "alerts": summary.alerts,
        "trend": summary.trend,
        "chart": heart_rate_chart(summary.trend, now, local),
        "hours": TREND_HOURS,
        "local": local,
    }


def _patient_page(
    context: RequestContext,
    patient_id: str,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    service = monitoring_of(context.clinic)
    now = utc_now()
    summary = service.patient_summary(context.actor, patient_id, now - timedelta(hours=TREND_HOURS))
    local = _local(context)
    section = {
        "alerts": summary.alerts,
        "trend": summary.trend,
        "chart": heart_rate_chart(summary.trend, now, local),
        "hours": TREND_HOURS,
        "local": local,
    }
    limits = service.thresholds(context.actor, patient_id)
    shown = values or {
        "brady_bpm": f"{limits.brady_bpm:g}",
        "tachy_bpm": f"{limits.tachy_bpm:g}",
        "hysteresis_bpm": f"{limits.hysteresis_bpm:g}",
        "min_duration_s": f"{limits.min_duration_s:g}",
    }
    return render(
        context,
        "monitor_patient.html",
        status_code,
        messages=messages,
        monitoring=section,
        patient_id=patient_id,
        limits=shown,
        can_set_limits=context.actor.can(Permission.MONITOR_DEVICES),
    )


@router.get("/patients/{patient_id}/heart-monitoring")
def patient_monitoring_page(context: Viewer, patient_id: Id, saved: int = 0) -> Response:
    messages = [("ok", context.t("monitor.limits_saved"))] if saved else []
    return _patient_page(context, patient_id, messages=messages)


def _limit(text: str, field: str) -> float:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 600:
        raise ValidationFailed("enter a number", field=field, key="monitor.limit_number")
    return value


@router.post("/patients/{patient_id}/heart-monitoring/limits")
def limits_submit(
    context: DeviceManager,
    patient_id: Id,
    csrf_token: CsrfField,
    brady_bpm: Annotated[str, Form(max_length=10)],
    tachy_bpm: Annotated[str, Form(max_length=10)],
    hysteresis_bpm: Annotated[str, Form(max_length=10)],
    min_duration_s: Annotated[str, Form(max_length=10)],
) -> Response:
    context.check_csrf(csrf_token)
    values = {
        "brady_bpm": brady_bpm,
        "tachy_bpm": tachy_bpm,
        "hysteresis_bpm": hysteresis_bpm,
        "min_duration_s": min_duration_s,
    }
    service = monitoring_of(context.clinic)
    try:
        limits = service.thresholds_from(*(_limit(value, name) for name, value in values.items()))
        service.set_thresholds(context.actor, patient_id, limits)
    except ValidationFailed as exc:
        text = his_error_text(context.t, exc)
        return _patient_page(context, patient_id, 422, [("error", text)], values)
    return _redirect(f"/patients/{patient_id}/heart-monitoring?saved=1")
