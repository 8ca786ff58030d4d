"""How heart-monitoring alerts and heart-rate trends are written to and read from the database.

Both are patient data and sealed under the patient's data key (``rekam.his.field_sealing``):

- ``monitor_alerts.details``: JSON ``{"kind", "bpm", "started_ms", "confirmed_ms", "ended_ms"}``
  (``bpm`` is the confirming rate, then the most extreme rate of the episode);
- ``monitor_alerts.strip``: JSON ``{"rate_hz", "start_ms", "samples_uv"}``, the ECG that
  triggered the alert (microvolts);
- ``heart_rate_minutes.summary``: JSON ``{"n", "sum", "min", "max", "no_reading"}`` for one
  patient and one minute (device clock, UTC), so minutes written by several flushes merge.

One stored alert per episode: every phase of an :class:`AlertEvent` with the same ``episode_id``
updates the same row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from rekam.crypto import FieldCipher
from rekam.his.field_sealing import seal, unseal
from rekam.monitor.events import AlertEvent, AlertPhase, EcgStrip
from rekam.monitor.replay_floors import ReplayFloor
from rekam.store.models import HeartRateMinute, MonitorAlert, MonitorDevice, new_id

ALERTS_TABLE = "monitor_alerts"
MINUTES_TABLE = "heart_rate_minutes"


def raise_replay_floors(session: Session, floors: Sequence[tuple[UUID, ReplayFloor]]) -> None:
    """Raise each device's saved highest accepted sequence number, in one statement for all. A
    floor only goes up, and only under the pairing it was accepted under (``ReplayFloor.pairing``
    is the pairing's ``paired_at``): a device paired again meanwhile, or unpaired, keeps what it
    has."""
    rows = [
        {"device": str(device_id), "pairing": floor.pairing, "highest": floor.highest}
        for device_id, floor in floors
        if floor.highest is not None and isinstance(floor.pairing, datetime)
    ]
    if not rows:
        return
    table = cast(Table, MonitorDevice.__table__)
    devices = table.c
    statement = (
        update(table)
        .where(
            devices.id == bindparam("device"),
            devices.paired_at == bindparam("pairing"),
            devices.unpaired_at.is_(None),
            or_(
                devices.accepted_sequence.is_(None),
                devices.accepted_sequence < bindparam("highest"),
            ),
        )
        .values(accepted_sequence=bindparam("highest"))
    )
    session.execute(statement, rows)


def device_time(ms: int) -> datetime:
    """A device-clock time (ms since the Unix epoch, UTC) as an aware datetime."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def minute_of(ms: int) -> datetime:
    return device_time(ms - ms % 60_000)


def minute_record_id(minute: datetime) -> str:
    """The record id the minute's summary is sealed under (the table has a composite key)."""
    return minute.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


# Alerts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertDetails:
    kind: str
    bpm: float
    started_ms: int
    confirmed_ms: int
    ended_ms: int | None

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "bpm": self.bpm,
                "started_ms": self.started_ms,
                "confirmed_ms": self.confirmed_ms,
                "ended_ms": self.ended_ms,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> AlertDetails:
        raw = json.loads(text)
        ended = raw.get("ended_ms")
        return cls(
            kind=str(raw["kind"]),
            bpm=float(raw["bpm"]),
            started_ms=int(raw["started_ms"]),
            confirmed_ms=int(raw["confirmed_ms"]),
            ended_ms=None if ended is None else int(ended),
        )


def alert_details(fields: FieldCipher, row: MonitorAlert) -> AlertDetails:
    text = unseal(fields, ALERTS_TABLE, "details", row.id, row.patient_id, row.details_enc)
    return AlertDetails.from_json(text or "{}")


def alert_strip(fields: FieldCipher, row: MonitorAlert) -> EcgStrip | None:
    text = unseal(fields, ALERTS_TABLE, "strip", row.id, row.patient_id, row.strip_enc)
    return None if text is None else EcgStrip.from_json(json.loads(text))


def _more_extreme(kind: str, old: float, new: float) -> float:
    if kind == "bradycardia":
        return min(old, new)
    if kind == "tachycardia":
        return max(old, new)
    return new


def store_alert_event(
    session: Session, fields: FieldCipher, event: AlertEvent, patient_id: str, now: datetime
) -> tuple[MonitorAlert, bool]:
    """Create or update the stored alert of ``event``'s episode; (row, created)."""
    row = session.scalar(
        select(MonitorAlert).where(MonitorAlert.episode_id == str(event.episode_id))
    )
    ended = event.ended_ms if event.phase is AlertPhase.ENDED else None
    if row is None:
        alert_id = new_id()
        details = AlertDetails(
            event.kind.value, event.bpm, event.started_ms, event.confirmed_ms, ended
        )
        row = MonitorAlert(
            id=alert_id,
            episode_id=str(event.episode_id),
            device_id=str(event.device_id),
            patient_id=patient_id,
            details_enc=_sealed_text(fields, "details", alert_id, patient_id, details.to_json()),
            strip_enc=_sealed_strip(fields, alert_id, patient_id, event.strip),
            status="ended" if event.phase is AlertPhase.ENDED else "open",
            started_at=device_time(event.started_ms),
            raised_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return row, True
    old = alert_details(fields, row)
    bpm = event.bpm if math.isfinite(event.bpm) else old.bpm
    merged = AlertDetails(
        kind=old.kind,
        bpm=_more_extreme(old.kind, old.bpm, bpm),
        started_ms=old.started_ms,
        confirmed_ms=old.confirmed_ms,
        ended_ms=ended if ended is not None else old.ended_ms,
    )
    row.details_enc = _sealed_text(fields, "details", row.id, row.patient_id, merged.to_json())
    if row.strip_enc is None and event.strip is not None:
        row.strip_enc = _sealed_strip(fields, row.id, row.patient_id, event.strip)
    if event.phase is AlertPhase.ENDED:
        row.status = "ended"
    row.updated_at = now
    session.flush()
    return row, False


def _sealed_text(
    fields: FieldCipher, column: str, alert_id: str, patient_id: str, text: str
) -> bytes:
    sealed = seal(fields, ALERTS_TABLE, column, alert_id, patient_id, text)
    assert sealed is not None
    return sealed


def _sealed_strip(
    fields: FieldCipher, alert_id: str, patient_id: str, strip: EcgStrip | None
) -> bytes | None:
    if strip is None:
        return None
    return seal(
        fields,
        ALERTS_TABLE,
        "strip",
        alert_id,
        patient_id,
        json.dumps(strip.to_json(), separators=(",", ":")),
    )


# Heart-rate minutes -----------------------------------------------------------------------------


@dataclass
class MinuteSummary:
    """Readings of one patient in one minute: rates (count, sum, min, max) and readings that
    had no reliable rate."""

    n: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    no_reading: int = 0

    def add(self, bpm: float | None) -> None:
        if bpm is None or not math.isfinite(bpm):
            self.no_reading += 1
            return
        self.n += 1
        self.total += bpm
        self.low = min(self.low, bpm)
        self.high = max(self.high, bpm)

    def merge(self, other: MinuteSummary) -> MinuteSummary:
        return MinuteSummary(
            n=self.n + other.n,
            total=self.total + other.total,
            low=min(self.low, other.low),
            high=max(self.high, other.high),
            no_reading=self.no_reading + other.no_reading,
        )

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "n": self.n,
                "sum": self.total,
                "min": self.low if self.n else None,
                "max": self.high if self.n else None,
                "no_reading": self.no_reading,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> MinuteSummary:
        raw = json.loads(text)
        n = int(raw.get("n", 0))
        return cls(
            n=n,
            total=float(raw.get("sum", 0.0)),
            low=float(raw["min"]) if n else math.inf,
            high=float(raw["max"]) if n else -math.inf,
            no_reading=int(raw.get("no_reading", 0)),
        )


def minute_summary(fields: FieldCipher, row: HeartRateMinute) -> MinuteSummary:
    text = unseal(
        fields,
        MINUTES_TABLE,
        "summary",
        minute_record_id(row.minute),
        row.patient_id,
        row.summary_enc,
    )
    return MinuteSummary.from_json(text or "{}")


def add_to_minute(
    session: Session,
    fields: FieldCipher,
    patient_id: str,
    minute: datetime,
    summary: MinuteSummary,
) -> None:
    """Merge ``summary`` into the stored minute (created when missing)."""
    row = session.get(HeartRateMinute, (patient_id, minute))
    merged = summary if row is None else minute_summary(fields, row).merge(summary)
    sealed = seal(
        fields, MINUTES_TABLE, "summary", minute_record_id(minute), patient_id, merged.to_json()
    )
    assert sealed is not None
    if row is None:
        session.add(HeartRateMinute(patient_id=patient_id, minute=minute, summary_enc=sealed))
    else:
        row.summary_enc = sealed
    session.flush()
