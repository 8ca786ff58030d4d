"""JSON API for heart monitoring: tiles (with the device → patient mapping the live dashboard
needs), alerts and acknowledging them, device pairing and unpairing, alarm limits, trends.

Thin: parse, call ``rekam.his.monitoring``, answer. The live events themselves come from
``GET /api/v1/monitor/events`` (``rekam.web.monitor_stream``).
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from rekam.his.installation import Clinic
from rekam.his.monitoring import (
    AlertView,
    DeviceView,
    MonitoringService,
    Tile,
    TrendPoint,
    public_key_bytes,
)
from rekam.his.rbac import Permission
from rekam.monitor.events import EcgStrip
from rekam.store.types import utc_now
from rekam.web.api import CsrfHeader
from rekam.web.context import RequestContext, require

router = APIRouter(prefix="/api/v1/monitor", tags=["monitor"])

Viewer = Annotated[RequestContext, Depends(require(Permission.MONITOR_VIEW))]
DeviceManager = Annotated[RequestContext, Depends(require(Permission.MONITOR_DEVICES))]
Acknowledger = Annotated[RequestContext, Depends(require(Permission.MONITOR_ACKNOWLEDGE))]
Id = Annotated[str, PathParam(min_length=1, max_length=36)]


def monitoring_of(clinic: Clinic) -> MonitoringService:
    return MonitoringService.for_clinic(clinic)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceOut(BaseModel):
    id: str
    patient_id: str
    label: str
    paired_by: str
    paired_at: datetime
    unpaired_at: datetime | None

    @classmethod
    def of(cls, device: DeviceView) -> DeviceOut:
        return cls(**device.__dict__)


class StripOut(BaseModel):
    rate_hz: int
    start_ms: int
    samples_uv: list[int] = Field(description="microvolts")

    @classmethod
    def of(cls, strip: EcgStrip | None) -> StripOut | None:
        return None if strip is None else cls(**strip.to_json())


class AlertOut(BaseModel):
    id: str
    episode_id: str
    device_id: str
    patient_id: str
    patient_name: str
    medical_record_number: str
    kind: str
    bpm: float
    started_at: datetime
    confirmed_at: datetime
    ended_at: datetime | None
    status: str
    raised_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    strip: StripOut | None = None

    @classmethod
    def of(cls, alert: AlertView) -> AlertOut:
        values = dict(alert.__dict__)
        values["strip"] = StripOut.of(alert.strip)
        return cls(**values)


class ReadingOut(BaseModel):
    device_id: str
    time_ms: int
    bpm: float | None
    rhythm: str
    quality: str
    irregular: bool


class TrendPointOut(BaseModel):
    minute: datetime
    readings: int
    low: float | None
    mean: float | None
    high: float | None
    no_reading: int

    @classmethod
    def of(cls, point: TrendPoint) -> TrendPointOut:
        fields = dict(point.__dict__)
        if fields["mean"] is not None:  # a mean of readings given to 0.1 bpm, shown as such
            fields["mean"] = round(fields["mean"], 1)
        return cls(**fields)


class TileOut(BaseModel):
    patient_id: str
    patient_name: str
    medical_record_number: str
    devices: list[DeviceOut]
    reading: ReadingOut | None
    last_minute: TrendPointOut | None
    last_alert: AlertOut | None

    @classmethod
    def of(cls, tile: Tile) -> TileOut:
        reading = None
        if tile.reading is not None:
            data = tile.reading.to_json()
            data.pop("type")
            reading = ReadingOut(**data)
        return cls(
            patient_id=tile.patient_id,
            patient_name=tile.patient_name,
            medical_record_number=tile.medical_record_number,
            devices=[DeviceOut.of(d) for d in tile.devices],
            reading=reading,
            last_minute=TrendPointOut.of(tile.last_minute) if tile.last_minute else None,
            last_alert=AlertOut.of(tile.last_alert) if tile.last_alert else None,
        )


class TilesOut(BaseModel):
    tiles: list[TileOut]
    device_patients: dict[str, str] = Field(
        description="device id → patient id, for mapping live events to tiles"
    )


class PairIn(_Strict):
    patient_id: str = Field(min_length=1, max_length=36)
    device_public: str = Field(
        min_length=1, max_length=100, description="the device's X25519 public key, base64 or hex"
    )
    label: str = Field(min_length=1, max_length=200)
    device_id: UUID | None = Field(default=None, description="the id the device announces")


class PairOut(BaseModel):
    device_id: UUID
    gateway_public: str = Field(description="the gateway's X25519 public key, base64")
    confirmation_code: str = Field(description="compare with the code the device shows")


class ThresholdsIn(_Strict):
    brady_bpm: float = Field(gt=0, le=300)
    tachy_bpm: float = Field(gt=0, le=300)
    hysteresis_bpm: float = Field(default=5.0, ge=0, le=50)
    min_duration_s: float = Field(default=10.0, ge=0, le=600)


class ThresholdsOut(BaseModel):
    brady_bpm: float
    tachy_bpm: float
    hysteresis_bpm: float
    min_duration_s: float


class TrendOut(BaseModel):
    patient_id: str
    since: datetime
    points: list[TrendPointOut]


@router.get("/tiles", response_model=TilesOut)
def tiles(context: Viewer) -> TilesOut:
    found = monitoring_of(context.clinic).tiles(context.actor)
    return TilesOut(
        tiles=[TileOut.of(t) for t in found],
        device_patients={d.id: t.patient_id for t in found for d in t.devices},
    )


@router.get("/alerts", response_model=list[AlertOut])
def alerts(
    context: Viewer,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    unacknowledged: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[AlertOut]:
    found = monitoring_of(context.clinic).alerts(
        context.actor, patient_id=patient_id, unacknowledged_only=unacknowledged, limit=limit
    )
    return [AlertOut.of(a) for a in found]


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def alert(context: Viewer, alert_id: Id) -> AlertOut:
    return AlertOut.of(monitoring_of(context.clinic).alert(context.actor, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge(context: Acknowledger, alert_id: Id, csrf: CsrfHeader = None) -> AlertOut:
    """Acknowledge an alert, by its id or by the episode id that live events carry."""
    context.check_csrf(csrf)
    acknowledged = monitoring_of(context.clinic).acknowledge(context.actor, alert_id)
    context.request.app.state.monitor.announce_acknowledged(acknowledged)
    return AlertOut.of(acknowledged)


@router.get("/devices", response_model=list[DeviceOut])
def devices(
    context: DeviceManager,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    include_unpaired: bool = False,
) -> list[DeviceOut]:
    found = monitoring_of(context.clinic).devices(context.actor, patient_id, include_unpaired)
    return [DeviceOut.of(d) for d in found]


@router.post("/devices", response_model=PairOut, status_code=201)
def pair_device(context: DeviceManager, body: PairIn, csrf: CsrfHeader = None) -> PairOut:
    context.check_csrf(csrf)
    result = monitoring_of(context.clinic).pair_device(
        context.actor,
        body.patient_id,
        public_key_bytes(body.device_public),
        body.label,
        device_id=body.device_id,
    )
    return PairOut(
        device_id=result.device_id,
        gateway_public=base64.b64encode(result.gateway_public).decode(),
        confirmation_code=result.confirmation_code,
    )


@router.delete("/devices/{device_id}", status_code=204)
def unpair_device(context: DeviceManager, device_id: Id, csrf: CsrfHeader = None) -> Response:
    context.check_csrf(csrf)
    monitoring_of(context.clinic).unpair(context.actor, device_id)
    return Response(status_code=204)


@router.put("/patients/{patient_id}/thresholds", response_model=ThresholdsOut)
def set_thresholds(
    context: DeviceManager, patient_id: Id, body: ThresholdsIn, csrf: CsrfHeader = None
) -> ThresholdsOut:
    context.check_csrf(csrf)
    service = monitoring_of(context.clinic)
    limits = service.thresholds_from(
        body.brady_bpm, body.tachy_bpm, body.hysteresis_bpm, body.min_duration_s
    )
    saved = service.set_thresholds(context.actor, patient_id, limits)
    return ThresholdsOut(**saved.__dict__)


@router.get("/patients/{patient_id}/trend", response_model=TrendOut)
def trend(
    context: Viewer,
    patient_id: Id,
    hours: Annotated[float, Query(gt=0, le=168)] = 24,
) -> TrendOut:
    found = monitoring_of(context.clinic).trend(
        context.actor, patient_id, utc_now() - timedelta(hours=hours)
    )
    return TrendOut(
        patient_id=found.patient_id,
        since=found.since,
        points=[TrendPointOut.of(p) for p in found.points],
    )
