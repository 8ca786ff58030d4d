"""What the monitoring gateway tells the rest of Rekam: plain, immutable values.

The gateway (transport-independent) turns authenticated device packets into these events and
hands them to an :class:`EventSink`. The web layer maps devices to patients, stores alerts and
trends, and pushes events to clinicians' browsers; the fan-out (in-process or Redis) moves
:meth:`MonitorEvent.to_json` dictionaries between server processes.

Samples are microvolts (one int16 unit of a device packet is 1 µV).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

__all__ = [
    "AlertEvent",
    "AlertKind",
    "AlertPhase",
    "EcgStrip",
    "EventSink",
    "HeartRateReading",
    "LiveSamples",
    "MonitorEvent",
    "SignalQualityLevel",
    "publish_all",
]

log = logging.getLogger("rekam.monitor.events")


class AlertKind(StrEnum):
    BRADYCARDIA = "bradycardia"
    TACHYCARDIA = "tachycardia"
    IRREGULAR = "irregular"


class AlertPhase(StrEnum):
    RAISED = "raised"  # first confirmation of an episode: a new alert
    UPDATED = "updated"  # same episode, new extreme rate: merged into the open alert
    ENDED = "ended"  # the rhythm left the alarm class for long enough


class SignalQualityLevel(StrEnum):
    GOOD = "good"
    NO_READING = "no reliable reading"


@dataclass(frozen=True, slots=True)
class EcgStrip:
    """A stretch of one device's ECG, in microvolts."""

    rate_hz: int
    start_ms: int
    samples_uv: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_hz": self.rate_hz,
            "start_ms": self.start_ms,
            "samples_uv": list(self.samples_uv),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EcgStrip:
        return cls(
            int(data["rate_hz"]), int(data["start_ms"]), tuple(int(v) for v in data["samples_uv"])
        )


@dataclass(frozen=True, slots=True)
class HeartRateReading:
    """One device's state, emitted after every detected beat and on quality changes."""

    device_id: UUID
    time_ms: int
    bpm: float | None  # moving average; None when there is no reliable reading
    rhythm: str  # a rekam.ecg.RhythmClass value
    quality: SignalQualityLevel
    irregular: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "heart_rate",
            "device_id": str(self.device_id),
            "time_ms": self.time_ms,
            "bpm": self.bpm,
            "rhythm": self.rhythm,
            "quality": self.quality.value,
            "irregular": self.irregular,
        }


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One step in the life of an alert. ``episode_id`` is stable for one episode, so repeated
    confirmations of the same episode merge into one stored alert."""

    episode_id: UUID
    device_id: UUID
    kind: AlertKind
    phase: AlertPhase
    bpm: float  # the rate that confirmed (raised) or the most extreme so far (updated/ended)
    started_ms: int  # device clock: when the episode began
    confirmed_ms: int  # device clock: the beat that confirmed the episode
    ended_ms: int | None
    strip: EcgStrip | None  # the ECG that triggered the alert (raised); None on later phases

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "alert",
            "episode_id": str(self.episode_id),
            "device_id": str(self.device_id),
            "kind": self.kind.value,
            "phase": self.phase.value,
            "bpm": self.bpm,
            "started_ms": self.started_ms,
            "confirmed_ms": self.confirmed_ms,
            "ended_ms": self.ended_ms,
            "strip": None if self.strip is None else self.strip.to_json(),
        }


@dataclass(frozen=True, slots=True)
class LiveSamples:
    """Decrypted samples for the scrolling strip on the dashboard (only sent to viewers)."""

    device_id: UUID
    rate_hz: int
    start_ms: int
    samples_uv: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "samples",
            "device_id": str(self.device_id),
            "rate_hz": self.rate_hz,
            "start_ms": self.start_ms,
            "samples_uv": list(self.samples_uv),
        }


MonitorEvent = HeartRateReading | AlertEvent | LiveSamples


class EventSink(Protocol):
    """Where the gateway puts events. Must not block: called on the receive path. A sink may
    also take a batch at once with ``publish_many(events)`` (see :func:`publish_all`)."""

    def publish(self, event: MonitorEvent) -> None: ...


def publish_all(sink: EventSink, events: Sequence[MonitorEvent]) -> int:
    """Hand ``events`` to ``sink``: in one call when it has ``publish_many`` (a bus then wakes
    its subscribers once per batch), else one by one. Never raises; returns how many events the
    sink failed to take (all of a failed batch), and logs the failures."""
    if not events:
        return 0
    publish_many = getattr(sink, "publish_many", None)
    if publish_many is not None:
        try:
            publish_many(events)
        except Exception as exc:  # a failing sink loses these events, not its caller
            log.error("monitor: an event sink failed (%s)", type(exc).__name__)
            return len(events)
        return 0
    lost = 0
    for event in events:
        try:
            sink.publish(event)
        except Exception as exc:  # a failing sink loses this event, not its caller
            lost += 1
            log.error("monitor: an event sink failed (%s)", type(exc).__name__)
    return lost
