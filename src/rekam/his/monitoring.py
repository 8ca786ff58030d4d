"""Heart monitoring in the clinic: the device registry, alarm limits, alerts and trends.

- **Registry.** A wearable ECG device is paired with one patient (X25519 + HKDF,
  ``rekam.monitor.pairing``). Its 32-byte key is stored only sealed under the patient's data key
  (``monitor_devices.key``, bound to the device id and patient id), and never logged. Unpairing
  destroys the stored key. The gateway asks :meth:`MonitoringService.key_lookup` for a device's key
  on every packet: an in-memory cache (``rekam.his.monitoring_registry_cache``) answers.
- **Limits.** Alarm limits are per patient (:meth:`set_thresholds`); :meth:`thresholds_for`
  gives a device's patient's limits (None: the defaults).
- **Events.** :meth:`event_sink` is the gateway's :class:`EventSink`: alerts are stored (one per
  episode) and readings summed into per-minute trends by a background writer
  (``rekam.his.monitoring_sink``).
- **Reading.** :meth:`tiles`, :meth:`alerts`, :meth:`alert`, :meth:`acknowledge`,
  :meth:`trend`, :meth:`devices`: each checks the role's permission and the care relationship
  (``rekam.his.record_access``) and appends one audit entry.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.orm import Session

from rekam.crypto import CryptoError, FieldCipher, FieldContext
from rekam.ecg.errors import InvalidParameterError
from rekam.ecg.rhythm import RhythmThresholds
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import ensure_not_erased, patient_text, seal, unseal
from rekam.his.monitoring_records import (
    alert_details,
    alert_strip,
    device_time,
    minute_summary,
)
from rekam.his.monitoring_registry_cache import RegisteredDevice, RegistryCache
from rekam.his.monitoring_sink import MonitoringSink
from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.record_access import check_patient_access
from rekam.monitor.errors import PairingFailed
from rekam.monitor.events import EcgStrip, HeartRateReading
from rekam.monitor.pairing import DeviceKey, GatewayPairing
from rekam.monitor.replay_floors import ReplayFloor
from rekam.store import Database
from rekam.store.models import (
    HeartRateMinute,
    MonitorAlert,
    MonitorDevice,
    MonitorThresholds,
    Patient,
)
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

log = logging.getLogger("rekam.monitoring")

DEVICES_TABLE = "monitor_devices"
THRESHOLDS_TABLE = "monitor_thresholds"
MAX_LABEL = 100
MAX_ALERTS = 200
LOAD_CHUNK = 500
"""Device ids per query when the registry loads several devices at once (SQLite allows 999
parameters in a statement on older builds)."""
MAX_TREND = timedelta(days=7)

__all__ = [
    "AlertView",
    "DeviceView",
    "HeartRateTrend",
    "MonitoringService",
    "PairingResult",
    "PatientMonitoring",
    "Tile",
    "TrendPoint",
    "public_key_bytes",
]


@dataclass(frozen=True)
class PairingResult:
    """What the pairing screen shows and sends back to the device."""

    device_id: UUID
    gateway_public: bytes
    confirmation_code: str


@dataclass(frozen=True)
class DeviceView:
    id: str
    patient_id: str
    label: str
    paired_by: str
    paired_at: datetime
    unpaired_at: datetime | None

    @property
    def active(self) -> bool:
        return self.unpaired_at is None


@dataclass(frozen=True)
class AlertView:
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
    strip: EcgStrip | None = None


@dataclass(frozen=True)
class TrendPoint:
    minute: datetime
    readings: int
    low: float | None
    mean: float | None
    high: float | None
    no_reading: int


@dataclass(frozen=True)
class HeartRateTrend:
    patient_id: str
    since: datetime
    points: tuple[TrendPoint, ...]


@dataclass(frozen=True)
class PatientMonitoring:
    alerts: tuple[AlertView, ...]
    trend: HeartRateTrend


@dataclass(frozen=True)
class Tile:
    """One monitored patient on the dashboard."""

    patient_id: str
    patient_name: str
    medical_record_number: str
    devices: tuple[DeviceView, ...]
    reading: HeartRateReading | None  # the latest one this server process saw
    last_minute: TrendPoint | None
    last_alert: AlertView | None


def _label(text: str) -> str:
    label = " ".join(text.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in label):
        raise ValidationFailed(
            "this text contains characters that cannot be stored",
            field="label",
            key="orders.text_invalid",
        )
    if not 1 <= len(label) <= MAX_LABEL:
        raise ValidationFailed(
            f"name the device (1–{MAX_LABEL} characters)", field="label", key="monitor.label"
        )
    return label


def public_key_bytes(text: str) -> bytes:
    """A device public key as typed or pasted: 64 hex digits, or base64 (standard or URL-safe).
    Its length is checked when pairing."""
    text = text.strip()
    try:
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            return bytes.fromhex(text)
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(
            "the device's public key is not base64 or hex",
            field="device_public",
            key="monitor.public_key_invalid",
        ) from exc


def _device_uuid(device_id: UUID | str) -> UUID:
    if isinstance(device_id, UUID):
        return device_id
    try:
        return UUID(device_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound("no such device", key="monitor.device_not_found") from None


def _who(actor: Actor) -> str:
    return (actor.user_id or actor.username)[:36]


def _thresholds_json(thresholds: RhythmThresholds) -> str:
    return json.dumps(
        {
            "brady_bpm": thresholds.brady_bpm,
            "tachy_bpm": thresholds.tachy_bpm,
            "hysteresis_bpm": thresholds.hysteresis_bpm,
            "min_duration_s": thresholds.min_duration_s,
        }
    )


def _point(row: HeartRateMinute, fields: FieldCipher) -> TrendPoint:
    summary = minute_summary(fields, row)
    return TrendPoint(
        minute=row.minute,
        readings=summary.n,
        low=summary.low if summary.n else None,
        mean=summary.mean,
        high=summary.high if summary.n else None,
        no_reading=summary.no_reading,
    )


@dataclass(frozen=True)
class ClinicReplayFloors:
    """:class:`rekam.monitor.ReplayFloors` over the device registry and a storing sink."""

    floor: Callable[[UUID], ReplayFloor | None]
    save: Callable[[Sequence[tuple[UUID, ReplayFloor]]], None]


class MonitoringService:
    def __init__(
        self,
        database: Database,
        fields: FieldCipher,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.fields = fields
        self.clock = clock
        self._registry = RegistryCache(
            self._load_device, load_known=self._paired_device_ids, load_many=self._load_devices
        )
        self._sink: MonitoringSink | None = None
        self._sink_lock = threading.Lock()
        self._registry_listeners: list[Callable[[UUID | None], None]] = []

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> MonitoringService:
        """The clinic's one monitoring service (shared, so its cache and sink are too)."""
        service = getattr(clinic, "_monitoring_service", None)
        if isinstance(service, MonitoringService):
            return service
        service = cls(clinic.database, clinic.fields)
        setattr(clinic, "_monitoring_service", service)  # noqa: B010 - Clinic has no such field
        return service

    # For the gateway: keys, limits, events -----------------------------------------------------

    def key_lookup(self, device_id: UUID) -> DeviceKey | None:
        """The key of a paired device, or None (unknown, unpaired, erased patient)."""
        found = self._registry.get(device_id)
        return None if found is None else found.key

    def thresholds_for(self, device_id: UUID) -> RhythmThresholds | None:
        """The alarm limits of the device's patient; None for the defaults or an unknown device."""
        found = self._registry.get(device_id)
        return None if found is None else found.thresholds

    def replay_floor(self, device_id: UUID) -> ReplayFloor | None:
        """Where a gateway starts the device's replay window: the current pairing and the
        highest sequence number saved under it (None: unknown, unpaired, erased patient)."""
        found = self._registry.get(device_id)
        return None if found is None else ReplayFloor(found.paired_at, found.accepted_sequence)

    def replay_floors(self, sink: MonitoringSink) -> ClinicReplayFloors:
        """The :class:`rekam.monitor.ReplayFloors` of this clinic: read through the device
        registry, saved by ``sink``'s writer (off the gateway's receive path)."""
        return ClinicReplayFloors(self.replay_floor, sink.keep_floors)

    def forget_device(self, device_id: UUID | None) -> None:
        """Drop what the lookups cached about one device; ``None`` (alarm limits changed): reload
        what they cached about every device, in the background."""
        if device_id is None:
            self._registry.expire_all()
        else:
            self._registry.forget(device_id)

    def on_registry_change(self, listener: Callable[[UUID | None], None]) -> None:
        """Call ``listener`` after a device is paired or unpaired here (with its id) and after
        alarm limits change (with ``None``): a gateway in another process drops what it cached."""
        self._registry_listeners.append(listener)

    def _registry_changed(self, device_id: UUID | None) -> None:
        self.forget_device(device_id)
        for listener in self._registry_listeners:
            try:
                listener(device_id)
            except Exception as exc:  # a listener failing must not undo the change
                log.error("monitoring: a registry listener failed (%s)", type(exc).__name__)

    def patient_of(self, device_id: UUID) -> str | None:
        found = self._registry.get(device_id)
        return None if found is None else found.patient_id

    def event_sink(self) -> MonitoringSink:
        """The sink that stores this clinic's alerts and trends (one per service). A process
        whose events another stores (the server beside its analysis process) sets its
        ``store`` to False: it then only keeps the latest readings, for the tiles."""
        with self._sink_lock:
            if self._sink is None:
                self._sink = MonitoringSink(self.database, self.fields, self.patient_of)
            return self._sink

    def close(self) -> None:
        with self._sink_lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None
        self._registry.close()

    def _paired_device_ids(self) -> frozenset[UUID]:
        """Every device that is paired (a key, no unpairing): one query, ids only."""
        with self.database.transaction() as session:
            rows = session.scalars(
                select(MonitorDevice.id).where(
                    MonitorDevice.unpaired_at.is_(None), MonitorDevice.key_enc.is_not(None)
                )
            )
            return frozenset(UUID(row) for row in rows)

    def prefetch_devices(self, device_ids: Sequence[UUID]) -> None:
        """Load, in one query, the devices among ``device_ids`` that the lookups have never held
        (a batch of packets from devices that just connected), instead of one query each at their
        first packet. Never raises: a device not loaded here is loaded at its lookup."""
        self._registry.prefetch(device_ids)

    def _load_device(self, device_id: UUID) -> RegisteredDevice | None:
        return self._load_devices([device_id])[device_id]

    def _load_devices(self, device_ids: Sequence[UUID]) -> dict[UUID, RegisteredDevice | None]:
        """What the gateway needs about each device (None: unknown, unpaired, no key, erased
        patient, or a key that cannot be opened); one query per ``LOAD_CHUNK`` ids."""
        found: dict[UUID, RegisteredDevice | None] = dict.fromkeys(device_ids)
        ids = [str(device_id) for device_id in found]
        with self.database.transaction() as session:
            for start in range(0, len(ids), LOAD_CHUNK):
                rows = session.execute(
                    select(MonitorDevice, MonitorThresholds)
                    .join(Patient, Patient.id == MonitorDevice.patient_id)
                    .outerjoin(
                        MonitorThresholds, MonitorThresholds.patient_id == MonitorDevice.patient_id
                    )
                    .where(
                        MonitorDevice.id.in_(ids[start : start + LOAD_CHUNK]),
                        MonitorDevice.unpaired_at.is_(None),
                        MonitorDevice.key_enc.is_not(None),
                        Patient.erased_at.is_(None),
                    )
                )
                for row, limits in rows:
                    device_id = UUID(row.id)
                    found[device_id] = self._registered(device_id, row, limits)
        return found

    def _registered(
        self, device_id: UUID, row: MonitorDevice, limits: MonitorThresholds | None
    ) -> RegisteredDevice | None:
        assert row.key_enc is not None  # the query asks for paired devices only
        try:
            raw = self.fields.decrypt_field(
                row.key_enc, FieldContext(DEVICES_TABLE, "key", row.id, row.patient_id)
            )
            key = DeviceKey.from_storage(device_id, raw)
            thresholds = self._open_thresholds(limits) if limits is not None else None
        except (CryptoError, ValueError) as exc:
            log.warning(
                "monitoring: the stored key of device %s cannot be opened (%s)",
                device_id,
                type(exc).__name__,
            )
            return None
        return RegisteredDevice(
            key, row.patient_id, thresholds, row.paired_at, row.accepted_sequence
        )

    def _open_thresholds(self, row: MonitorThresholds) -> RhythmThresholds:
        text = unseal(
            self.fields, THRESHOLDS_TABLE, "limits", row.patient_id, row.patient_id, row.limits_enc
        )
        raw = json.loads(text or "{}")
        return RhythmThresholds(
            brady_bpm=float(raw["brady_bpm"]),
            tachy_bpm=float(raw["tachy_bpm"]),
            hysteresis_bpm=float(raw["hysteresis_bpm"]),
            min_duration_s=float(raw["min_duration_s"]),
        )

    # Registry ----------------------------------------------------------------------------------

    def pair_device(
        self,
        actor: Actor,
        patient_id: str,
        device_public: bytes,
        label: str,
        *,
        device_id: UUID | None = None,
    ) -> PairingResult:
        """Pair a device with a patient: derive and store (sealed) its key. The person pairing
        compares ``confirmation_code`` with the one on the device and unpairs if they differ.
        ``device_id``: the id the device announces (a new one is assigned when not given)."""
        authorize(actor, Permission.MONITOR_DEVICES)
        clean_label = _label(label)
        device_id = device_id or uuid4()
        gateway = GatewayPairing.new()
        try:
            key = gateway.derive(bytes(device_public), device_id)
        except PairingFailed as exc:
            raise ValidationFailed(
                f"the device's public key cannot be used: {exc.message}",
                field="device_public",
                key="monitor.public_key_invalid",
            ) from exc
        now = self.clock()
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.MONITOR_DEVICES)
            ensure_not_erased(patient)
            row = session.get(MonitorDevice, str(device_id))
            if row is not None and row.unpaired_at is None:
                raise Conflict(
                    "this device is already paired; unpair it first", key="monitor.already_paired"
                )
            if row is None:
                row = MonitorDevice(id=str(device_id))
                session.add(row)
            row.patient_id = patient.id
            row.label_enc = self._seal_device(row.id, patient.id, "label", clean_label)
            row.key_enc = self._seal_device(row.id, patient.id, "key", key.export_for_storage())
            row.paired_by = _who(actor)
            row.paired_at = now
            row.unpaired_by = None
            row.unpaired_at = None
            row.accepted_sequence = None  # a new key: the device may count from 0 again
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent("monitor.device_pair", patient_id=patient.id, record=row.id),
            )
        self._registry_changed(device_id)
        return PairingResult(device_id, gateway.public_bytes(), key.confirmation_code)

    def _seal_device(
        self, device_id: str, patient_id: str, column: str, value: str | bytes
    ) -> bytes:
        return self.fields.encrypt_field(
            value, FieldContext(DEVICES_TABLE, column, device_id, patient_id)
        )

    def unpair(self, actor: Actor, device_id: UUID | str) -> DeviceView:
        """Stop accepting the device's packets and destroy its stored key."""
        authorize(actor, Permission.MONITOR_DEVICES)
        uuid = _device_uuid(device_id)
        with self.database.transaction(write=True) as session:
            row = session.get(MonitorDevice, str(uuid))
            if row is None:
                raise NotFound("no such device", key="monitor.device_not_found")
            try:
                check_patient_access(session, actor, row.patient_id, Permission.MONITOR_DEVICES)
            except NotFound as exc:
                raise NotFound("no such device", key="monitor.device_not_found") from exc
            if row.unpaired_at is None:
                row.unpaired_at = self.clock()
                row.unpaired_by = _who(actor)
                row.key_enc = None
                session.flush()
            append_audit(
                session,
                actor,
                AuditEvent("monitor.device_unpair", patient_id=row.patient_id, record=row.id),
            )
            view = self._device_view(row)
        self._registry_changed(uuid)
        return view

    def _device_view(self, row: MonitorDevice) -> DeviceView:
        label = unseal(self.fields, DEVICES_TABLE, "label", row.id, row.patient_id, row.label_enc)
        return DeviceView(
            id=row.id,
            patient_id=row.patient_id,
            label=label or "",
            paired_by=row.paired_by,
            paired_at=row.paired_at,
            unpaired_at=row.unpaired_at,
        )

    def devices(
        self, actor: Actor, patient_id: str | None = None, include_unpaired: bool = False
    ) -> list[DeviceView]:
        """Paired devices (of one patient, or of every patient in the actor's care)."""
        authorize(actor, Permission.MONITOR_DEVICES)
        with self.database.transaction(write=True) as session:
            query = select(MonitorDevice).join(Patient, Patient.id == MonitorDevice.patient_id)
            query = query.where(Patient.erased_at.is_(None)).order_by(MonitorDevice.paired_at)
            if patient_id is not None:
                check_patient_access(session, actor, patient_id, Permission.MONITOR_DEVICES)
                query = query.where(MonitorDevice.patient_id == patient_id)
            if not include_unpaired:
                query = query.where(MonitorDevice.unpaired_at.is_(None))
            rows = [
                r
                for r in session.scalars(query)
                if _may(session, actor, r.patient_id, Permission.MONITOR_DEVICES)
            ]
            append_audit(
                session,
                actor,
                AuditEvent("monitor.devices", patient_id=patient_id, detail=f"{len(rows)} devices"),
            )
            return [self._device_view(r) for r in rows]

    # Limits ------------------------------------------------------------------------------------

    def set_thresholds(
        self, actor: Actor, patient_id: str, thresholds: RhythmThresholds
    ) -> RhythmThresholds:
        authorize(actor, Permission.MONITOR_DEVICES)
        now = self.clock()
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.MONITOR_DEVICES)
            ensure_not_erased(patient)
            sealed = seal(
                self.fields,
                THRESHOLDS_TABLE,
                "limits",
                patient.id,
                patient.id,
                _thresholds_json(thresholds),
            )
            assert sealed is not None
            row = session.get(MonitorThresholds, patient.id)
            if row is None:
                row = MonitorThresholds(patient_id=patient.id)
                session.add(row)
            row.limits_enc, row.set_by, row.set_at = sealed, _who(actor), now
            session.flush()
            append_audit(
                session, actor, AuditEvent("monitor.thresholds_set", patient_id=patient.id)
            )
            devices = session.scalars(
                select(MonitorDevice.id).where(MonitorDevice.patient_id == patient.id)
            ).all()
        for device_id in devices:  # here, the new limits count from now on
            self._registry.forget(UUID(device_id))
        self._registry_changed(None)  # elsewhere (the analysis process), within a reload
        return thresholds

    def thresholds(self, actor: Actor, patient_id: str) -> RhythmThresholds:
        """The patient's alarm limits (the defaults when none were set)."""
        authorize(actor, Permission.MONITOR_VIEW)
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.MONITOR_VIEW)
            ensure_not_erased(patient)
            row = session.get(MonitorThresholds, patient.id)
            append_audit(
                session, actor, AuditEvent("monitor.thresholds_read", patient_id=patient.id)
            )
            return self._open_thresholds(row) if row is not None else RhythmThresholds()

    @staticmethod
    def thresholds_from(
        brady_bpm: float, tachy_bpm: float, hysteresis_bpm: float, min_duration_s: float
    ) -> RhythmThresholds:
        """Limits from a form, refused with a readable message when they make no sense."""
        try:
            return RhythmThresholds(brady_bpm, tachy_bpm, hysteresis_bpm, min_duration_s)
        except InvalidParameterError as exc:
            raise ValidationFailed(
                str(exc), field="thresholds", key="monitor.thresholds", reason=str(exc)
            ) from exc

    # Alerts ------------------------------------------------------------------------------------

    def _alert_view(
        self, row: MonitorAlert, patient: Patient, with_strip: bool = False
    ) -> AlertView:
        details = alert_details(self.fields, row)
        return AlertView(
            id=row.id,
            episode_id=row.episode_id,
            device_id=row.device_id,
            patient_id=row.patient_id,
            patient_name=patient_text(self.fields, patient, "name") or "",
            medical_record_number=patient.medical_record_number,
            kind=details.kind,
            bpm=details.bpm,
            started_at=device_time(details.started_ms),
            confirmed_at=device_time(details.confirmed_ms),
            ended_at=None if details.ended_ms is None else device_time(details.ended_ms),
            status=row.status,
            raised_at=row.raised_at,
            acknowledged_by=row.acknowledged_by,
            acknowledged_at=row.acknowledged_at,
            strip=alert_strip(self.fields, row) if with_strip else None,
        )

    def alerts(
        self,
        actor: Actor,
        patient_id: str | None = None,
        unacknowledged_only: bool = False,
        limit: int = 50,
    ) -> list[AlertView]:
        """Alerts, newest first: of one patient, or of every patient in the actor's care."""
        authorize(actor, Permission.MONITOR_VIEW)
        limit = max(1, min(limit, MAX_ALERTS))
        with self.database.transaction(write=True) as session:
            query = (
                select(MonitorAlert, Patient)
                .join(Patient, Patient.id == MonitorAlert.patient_id)
                .where(Patient.erased_at.is_(None))
                .order_by(MonitorAlert.started_at.desc(), MonitorAlert.id)
            )
            if patient_id is not None:
                check_patient_access(session, actor, patient_id, Permission.MONITOR_VIEW)
                query = query.where(MonitorAlert.patient_id == patient_id)
            if unacknowledged_only:
                query = query.where(MonitorAlert.acknowledged_at.is_(None))
            found: list[AlertView] = []
            allowed: dict[str, bool] = {}
            for row, patient in session.execute(query.limit(limit * 4)).all():
                if patient.id not in allowed:
                    allowed[patient.id] = _may(session, actor, patient.id, Permission.MONITOR_VIEW)
                if allowed[patient.id]:
                    found.append(self._alert_view(row, patient))
                if len(found) >= limit:
                    break
            append_audit(
                session,
                actor,
                AuditEvent("monitor.alerts", patient_id=patient_id, detail=f"{len(found)} alerts"),
            )
            return found

    def _alert_row(
        self, session: Session, actor: Actor, alert_id: str, permission: Permission
    ) -> tuple[MonitorAlert, Patient]:
        row = None
        if 1 <= len(alert_id) <= 36:
            row = session.get(MonitorAlert, alert_id) or session.scalar(
                select(MonitorAlert).where(MonitorAlert.episode_id == alert_id)
            )
        if row is None:
            raise NotFound("no such alert", key="monitor.alert_not_found")
        try:
            patient = check_patient_access(session, actor, row.patient_id, permission)
        except NotFound as exc:
            raise NotFound("no such alert", key="monitor.alert_not_found") from exc
        ensure_not_erased(patient)
        return row, patient

    def alert(self, actor: Actor, alert_id: str) -> AlertView:
        """One alert with the ECG strip that triggered it."""
        authorize(actor, Permission.MONITOR_VIEW)
        with self.database.transaction(write=True) as session:
            row, patient = self._alert_row(session, actor, alert_id, Permission.MONITOR_VIEW)
            append_audit(
                session,
                actor,
                AuditEvent("monitor.alert_read", patient_id=row.patient_id, record=row.id),
            )
            return self._alert_view(row, patient, with_strip=True)

    def acknowledge(self, actor: Actor, alert_id: str) -> AlertView:
        """Mark an alert as seen by the actor (once: a second acknowledgement is a conflict).
        ``alert_id``: the stored alert's id, or its episode id (what live events carry)."""
        authorize(actor, Permission.MONITOR_ACKNOWLEDGE)
        with self.database.transaction(write=True) as session:
            row, patient = self._alert_row(session, actor, alert_id, Permission.MONITOR_ACKNOWLEDGE)
            if row.acknowledged_at is not None:
                raise Conflict(
                    f"this alert was already acknowledged by {row.acknowledged_by}",
                    key="monitor.already_acknowledged",
                    by=row.acknowledged_by or "",
                )
            row.acknowledged_at = self.clock()
            row.acknowledged_by = actor.username[:64]
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent("monitor.alert_acknowledge", patient_id=row.patient_id, record=row.id),
            )
            return self._alert_view(row, patient)

    # Trends and tiles --------------------------------------------------------------------------

    def ever_monitored(self, patient_id: str) -> bool:
        """Whether a device was ever paired with this patient (an identifier-only lookup, so the
        record page adds its monitoring section, and its audit entry, only where there is one)."""
        with self.database.transaction() as session:
            found = session.scalar(
                select(MonitorDevice.id).where(MonitorDevice.patient_id == patient_id).limit(1)
            )
        return found is not None

    def patient_summary(
        self, actor: Actor, patient_id: str, since: datetime, limit: int = 20
    ) -> PatientMonitoring:
        """For the patient's record: the latest alerts and the heart-rate trend since ``since``,
        with one access check and one audit entry."""
        authorize(actor, Permission.MONITOR_VIEW)
        since = max(since, self.clock() - MAX_TREND)
        limit = max(1, min(limit, MAX_ALERTS))
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.MONITOR_VIEW)
            ensure_not_erased(patient)
            alert_rows = session.scalars(
                select(MonitorAlert)
                .where(MonitorAlert.patient_id == patient.id)
                .order_by(MonitorAlert.started_at.desc(), MonitorAlert.id)
                .limit(limit)
            ).all()
            minute_rows = session.scalars(
                select(HeartRateMinute)
                .where(HeartRateMinute.patient_id == patient.id, HeartRateMinute.minute >= since)
                .order_by(HeartRateMinute.minute)
            ).all()
            append_audit(
                session,
                actor,
                AuditEvent(
                    "monitor.record",
                    patient_id=patient.id,
                    detail=f"{len(alert_rows)} alerts, {len(minute_rows)} minutes",
                ),
            )
            alerts = tuple(self._alert_view(r, patient) for r in alert_rows)
            points = tuple(_point(r, self.fields) for r in minute_rows)
        return PatientMonitoring(alerts, HeartRateTrend(patient.id, since, points))

    def trend(self, actor: Actor, patient_id: str, since: datetime) -> HeartRateTrend:
        """The patient's heart rate per minute since ``since`` (at most seven days)."""
        authorize(actor, Permission.MONITOR_VIEW)
        since = max(since, self.clock() - MAX_TREND)
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.MONITOR_VIEW)
            ensure_not_erased(patient)
            rows = list(
                session.scalars(
                    select(HeartRateMinute)
                    .where(
                        HeartRateMinute.patient_id == patient.id, HeartRateMinute.minute >= since
                    )
                    .order_by(HeartRateMinute.minute)
                )
            )
            append_audit(
                session,
                actor,
                AuditEvent("monitor.trend", patient_id=patient.id, detail=f"{len(rows)} minutes"),
            )
            points = tuple(_point(r, self.fields) for r in rows)
        return HeartRateTrend(patient.id, since, points)

    def tiles(self, actor: Actor) -> list[Tile]:
        """One tile per monitored patient in the actor's care, patients with an alert not yet
        acknowledged first."""
        authorize(actor, Permission.MONITOR_VIEW)
        latest = dict(self._sink.latest) if self._sink is not None else {}
        with self.database.transaction(write=True) as session:
            query = (
                select(MonitorDevice, Patient)
                .join(Patient, Patient.id == MonitorDevice.patient_id)
                .where(Patient.erased_at.is_(None), MonitorDevice.unpaired_at.is_(None))
                .order_by(MonitorDevice.paired_at)
            )
            by_patient: dict[str, tuple[Patient, list[MonitorDevice]]] = {}
            for device, patient in session.execute(query).all():
                by_patient.setdefault(patient.id, (patient, []))[1].append(device)
            tiles = []
            for patient_id, (patient, devices) in by_patient.items():
                if not _may(session, actor, patient_id, Permission.MONITOR_VIEW):
                    continue
                tiles.append(self._tile(session, patient, devices, latest))
            append_audit(
                session, actor, AuditEvent("monitor.view", detail=f"{len(tiles)} patients")
            )
        tiles.sort(
            key=lambda t: (
                not (t.last_alert is not None and t.last_alert.acknowledged_at is None),
                t.patient_name.lower(),
            )
        )
        return tiles

    def devices_visible_to(self, actor: Actor) -> frozenset[UUID]:
        """The paired devices whose live events ``actor`` may see: those of the patients in their
        care (for filtering the live event stream per viewer; one audit entry per call)."""
        authorize(actor, Permission.MONITOR_VIEW)
        with self.database.transaction(write=True) as session:
            rows = session.execute(
                select(MonitorDevice.id, MonitorDevice.patient_id)
                .join(Patient, Patient.id == MonitorDevice.patient_id)
                .where(Patient.erased_at.is_(None), MonitorDevice.unpaired_at.is_(None))
            ).all()
            allowed: dict[str, bool] = {}
            visible = set()
            for device_id, patient_id in rows:
                if patient_id not in allowed:
                    allowed[patient_id] = _may(session, actor, patient_id, Permission.MONITOR_VIEW)
                if allowed[patient_id]:
                    visible.add(UUID(device_id))
            append_audit(
                session,
                actor,
                AuditEvent("monitor.stream", detail=f"{len(visible)} devices"),
            )
        return frozenset(visible)

    def _tile(
        self,
        session: Session,
        patient: Patient,
        devices: list[MonitorDevice],
        latest: dict[UUID, HeartRateReading],
    ) -> Tile:
        last_alert = session.scalar(
            select(MonitorAlert)
            .where(MonitorAlert.patient_id == patient.id)
            .order_by(MonitorAlert.started_at.desc())
            .limit(1)
        )
        last_minute = session.scalar(
            select(HeartRateMinute)
            .where(HeartRateMinute.patient_id == patient.id)
            .order_by(HeartRateMinute.minute.desc())
            .limit(1)
        )
        readings = [latest[UUID(d.id)] for d in devices if UUID(d.id) in latest]
        return Tile(
            patient_id=patient.id,
            patient_name=patient_text(self.fields, patient, "name") or "",
            medical_record_number=patient.medical_record_number,
            devices=tuple(self._device_view(d) for d in devices),
            reading=max(readings, key=lambda r: r.time_ms) if readings else None,
            last_minute=_point(last_minute, self.fields) if last_minute is not None else None,
            last_alert=self._alert_view(last_alert, patient) if last_alert is not None else None,
        )


def _may(session: Session, actor: Actor, patient_id: str, permission: Permission) -> bool:
    try:
        check_patient_access(session, actor, patient_id, permission)
    except (PermissionDenied, NotFound):
        return False
    return True
