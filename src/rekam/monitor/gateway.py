"""The monitoring gateway: authenticated device packets in, events out — and bad input counted.

One :class:`Gateway` per server process takes raw packets from any transport (the device
WebSocket, the MQTT bridge) through :meth:`Gateway.receive`, which never raises. Each packet goes
through, in order:

1. **decode** — layout, limits, device clock, the device's key, AES-GCM authentication
   (:func:`rekam.monitor.decode_packet`); with ``prefetch``, the devices of a batch that have no
   analysis here yet are first named to it in one call, so that their keys can be fetched in one
   query rather than one each (devices connect together after a restart);
2. **replay window** — a sequence number is accepted once (:class:`rekam.monitor.ReplayWindows`);
   with ``replay_floors``, across restarts too (:mod:`rekam.monitor.replay_floors`);
3. **flood limit** — per device, a token bucket in *seconds of signal*: a device may send
   ``speed_limit`` seconds of ECG per second of wall clock, with a burst of ``burst_seconds``
   (a phone catching up after a Bluetooth drop-out stays within it; a device flooding does not);
4. **sample sanity** — a sampling rate the analysis cannot use is refused (``absurd``);
5. the device's :class:`~rekam.monitor.device_analysis.DeviceAnalyzer`, whose events go to the
   sink together with a :class:`~rekam.monitor.events.LiveSamples` for the dashboard's strip
   (only for the devices ``samples_wanted`` names, when it is given: a strip nobody watches is
   not worth building).

:meth:`Gateway.receive_many` takes the packets a transport has gathered (the device WebSocket
gathers those arriving within 5 ms, the MQTT bridge likewise, from a worker thread) and
analyses the accepted ones together: the devices' signal work runs as rows of shared arrays
(:meth:`DeviceAnalyzer.feed_many`), with the same results as packet by packet.

Every outcome is counted in :attr:`Gateway.counters` (``accepted``, ``malformed``,
``unknown_device``, ``forged``, ``replayed``, ``stale``, ``flooded``, ``absurd``,
``analysis_failed``, ``sink_failed``). Rejected packets change nothing: no analyzer state, no
replay window, no event — so they can never raise an alert. Log lines name the device and the
reason, never samples or keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from uuid import UUID

import numpy as np

from rekam.ecg.rhythm import RhythmThresholds
from rekam.ecg.rpeaks import MAX_SAMPLING_RATE_HZ, MIN_SAMPLING_RATE_HZ
from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.errors import (
    MalformedPacket,
    MonitorError,
    PacketAuthenticationFailed,
    ReplayedPacket,
    StalePacket,
    UnknownDevice,
)
from rekam.monitor.events import EventSink, LiveSamples, MonitorEvent, publish_all
from rekam.monitor.packets import (
    KeyLookup,
    Packet,
    claimed_device_id,
    decode_packet,
    device_uuid,
)
from rekam.monitor.replay_floors import ReplayFloor, ReplayFloors
from rekam.monitor.replay_window import DEFAULT_WINDOW_SIZE, ReplayWindows

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_SPEED_LIMIT",
    "Gateway",
    "ReceiveOutcome",
    "Verdict",
]

log = logging.getLogger("rekam.monitor.gateway")

DEFAULT_SPEED_LIMIT = 1.5
"""Seconds of signal a device may send per second of wall clock, sustained."""
DEFAULT_BURST_SECONDS = 10.0
"""Seconds of signal a device may send at once (after a silence) above the sustained limit."""
THRESHOLDS_REFRESH_S = 10.0
"""How often a device's alarm limits are asked for again (they are the patient's, and change)."""
FLOORS_EVERY_S = 5.0
"""How often the highest accepted sequence numbers are saved (with ``replay_floors``)."""
QUIET_S = 5.0
COMPACT_EVERY_S = 10.0
"""Every this often, the analyses of devices that sent nothing for ``QUIET_S`` get buffers of
their own (:meth:`DeviceAnalyzer.compact`): devices analysed together share arrays, and a quiet
device would keep those alive."""
LOG_EVERY = 1000
"""A rejection reason is logged on its 1st, 1001st, ... occurrence, not on every packet."""


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    UNKNOWN_DEVICE = "unknown_device"
    FORGED = "forged"
    REPLAYED = "replayed"
    STALE = "stale"
    FLOODED = "flooded"
    ABSURD = "absurd"
    ANALYSIS_FAILED = "analysis_failed"


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    """What became of one packet. ``message`` explains a rejection (no samples, no keys)."""

    verdict: Verdict
    device_id: UUID | None = None
    events: tuple[MonitorEvent, ...] = ()
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPTED


class AnalyzerFactory(Protocol):
    def __call__(
        self, device_id: UUID, thresholds: RhythmThresholds | None = None
    ) -> DeviceAnalyzer: ...


class _SignalBucket:
    """Token bucket measured in seconds of signal."""

    __slots__ = ("tokens", "updated")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.updated = now

    def take(self, seconds: float, now: float, speed: float, burst: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.updated) * speed)
        self.updated = now
        if self.tokens + 1e-9 < seconds:  # tolerate float rounding of many small packets
            return False
        self.tokens -= seconds
        return True


class _Device:
    __slots__ = ("analyzer", "bucket", "pairing", "thresholds_checked")

    def __init__(
        self, analyzer: DeviceAnalyzer, bucket: _SignalBucket, now: float, pairing: Hashable
    ) -> None:
        self.analyzer = analyzer
        self.bucket = bucket
        self.thresholds_checked = now
        self.pairing = pairing


def _live_samples(packet: Packet) -> LiveSamples:
    return LiveSamples(
        packet.device_id,
        packet.rate,
        packet.timestamp_ms,
        tuple(np.asarray(packet.samples, dtype=np.int64).tolist()),
    )


class Gateway:
    """Turns raw device packets into monitoring events. Thread-safe; ``receive`` never raises."""

    def __init__(
        self,
        key_lookup: KeyLookup,
        sink: EventSink,
        *,
        thresholds_for: Callable[[UUID], RhythmThresholds | None] | None = None,
        analyzer_factory: AnalyzerFactory = DeviceAnalyzer,
        speed_limit: float = DEFAULT_SPEED_LIMIT,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        replay_window: int = DEFAULT_WINDOW_SIZE,
        live_samples: bool = True,
        samples_wanted: Callable[[UUID], bool] | None = None,
        replay_floors: ReplayFloors | None = None,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] | None = None,
        prefetch: Callable[[Sequence[UUID]], None] | None = None,
    ) -> None:
        if speed_limit <= 0 or burst_seconds <= 0:
            raise ValueError("the flood limit needs a positive speed and burst")
        self.key_lookup = key_lookup
        self.sink = sink
        self.thresholds_for = thresholds_for
        self.analyzer_factory = analyzer_factory
        self.speed_limit = float(speed_limit)
        self.burst_seconds = float(burst_seconds)
        self.live_samples = live_samples
        self.samples_wanted = samples_wanted
        self.windows = ReplayWindows(replay_window)
        self.replay_floors = replay_floors
        self._clock = clock
        self._floors_saved = clock()
        self._compacted = clock()
        self._moved: set[UUID] = set()  # devices whose window moved since the floors were saved
        self._now_ms = now_ms
        self._devices: dict[UUID, _Device] = {}
        self.prefetch = prefetch
        self._analysed_ids: set[bytes] = set()  # the devices of _devices, as packets name them
        self._devices_lock = threading.Lock()
        self._counters: Counter[str] = Counter()
        self._counters_lock = threading.Lock()
        self._analysis_lock = threading.Lock()

    # ------------------------------------------------------------------------------ public

    @property
    def counters(self) -> dict[str, int]:
        """Packets per verdict (every verdict present, zero included), plus ``sink_failed``."""
        with self._counters_lock:
            counts = {verdict.value: self._counters[verdict.value] for verdict in Verdict}
            counts["sink_failed"] = self._counters["sink_failed"]
        return counts

    @property
    def devices(self) -> frozenset[UUID]:
        """Devices with at least one accepted packet in this process."""
        with self._devices_lock:
            return frozenset(self._devices)

    def forget(self, device_id: UUID | None) -> None:
        """Drop a device's analysis and replay window (after unpairing or re-pairing). ``None``
        (alarm limits changed) drops nothing here: limits are asked for again every
        ``THRESHOLDS_REFRESH_S``."""
        if device_id is None:
            return
        with self._devices_lock:
            self._devices.pop(device_id, None)
            self._analysed_ids.discard(device_id.bytes)
            self._moved.discard(device_id)
        self.windows.forget(device_id)

    def save_floors(self) -> None:
        """Save the highest sequence number accepted from each device whose window moved since
        the last save (with ``replay_floors``; done every ``FLOORS_EVERY_S`` while packets
        arrive, and to be called when the gateway stops). Never raises."""
        if self.replay_floors is None:
            return
        with self._devices_lock:
            moved, self._moved = self._moved, set()
            devices = [(d, self._devices.get(d)) for d in moved]
            self._floors_saved = self._clock()
        floors = [
            (device_id, ReplayFloor(device.pairing, highest))
            for device_id, device in devices
            if device is not None
            and device.pairing is not None
            and (highest := self.windows.newest_sequence(device_id)) is not None
        ]
        if not floors:
            return
        try:
            self.replay_floors.save(floors)
        except Exception as exc:  # a failing store costs the floors, not the packets
            log.error("monitor gateway: replay floors not saved (%s)", type(exc).__name__)

    def refuse(self, verdict: Verdict, message: str) -> ReceiveOutcome:
        """Count a packet a transport refused before it reached :meth:`receive` (a text frame,
        a connection flooding)."""
        return self._count(verdict, None, message)

    def receive(self, raw: bytes | bytearray | memoryview) -> ReceiveOutcome:
        """Check one packet and analyse it; the outcome says what happened. Never raises."""
        return self.receive_many([raw])[0]

    def receive_many(self, raws: Sequence[bytes | bytearray | memoryview]) -> list[ReceiveOutcome]:
        """Check and analyse several packets (any devices, each device's in their order); one
        outcome per packet, exactly as :meth:`receive` one by one would give. The accepted
        packets' analysis is shared (:meth:`DeviceAnalyzer.feed_many`), which is what lets one
        process keep up with many devices. Never raises."""
        outcomes: list[ReceiveOutcome | None] = [None] * len(raws)
        try:
            self._receive_many(raws, outcomes)
        except Exception as exc:  # the gateway keeps running whatever a batch does
            log.error("monitor gateway: unexpected %s while analysing", type(exc).__name__)
        return [
            outcome
            if outcome is not None
            else self._count(Verdict.ANALYSIS_FAILED, None, "the packet could not be analysed")
            for outcome in outcomes
        ]

    def _receive_many(
        self,
        raws: Sequence[bytes | bytearray | memoryview],
        outcomes: list[ReceiveOutcome | None],
    ) -> None:
        now_ms = None if self._now_ms is None else self._now_ms()
        if self.prefetch is not None:
            self._prefetch_first_sightings(raws)
        opened: list[tuple[int, Packet]] = []
        for i, raw in enumerate(raws):
            try:
                packet = decode_packet(raw, self.key_lookup, now_ms=now_ms)
            except MalformedPacket as exc:
                outcomes[i] = self._count(Verdict.MALFORMED, exc.device_id, exc.message)
                continue
            except UnknownDevice as exc:
                outcomes[i] = self._count(Verdict.UNKNOWN_DEVICE, exc.device_id, exc.message)
                continue
            except PacketAuthenticationFailed as exc:
                if exc.device_id is not None:
                    self.windows.record_forged(exc.device_id)
                outcomes[i] = self._count(Verdict.FORGED, exc.device_id, exc.message)
                continue
            except Exception as exc:  # MonitorError, or anything unexpected: never raise
                device_id = exc.device_id if isinstance(exc, MonitorError) else None
                message = exc.message if isinstance(exc, MonitorError) else "unreadable packet"
                outcomes[i] = self._count(Verdict.MALFORMED, device_id, message)
                continue
            if not MIN_SAMPLING_RATE_HZ <= packet.rate <= MAX_SAMPLING_RATE_HZ:
                outcomes[i] = self._count(
                    Verdict.ABSURD,
                    packet.device_id,
                    f"sampling rate {packet.rate} Hz cannot be analysed "
                    f"({MIN_SAMPLING_RATE_HZ}..{MAX_SAMPLING_RATE_HZ} Hz)",
                )
                continue
            opened.append((i, packet))
        if opened:
            with self._analysis_lock:
                analysed = self._admit_and_analyse(opened, outcomes)
            outgoing: list[MonitorEvent] = []
            for i, packet, events in analysed:
                outgoing.extend(events)
                if self.live_samples and (
                    self.samples_wanted is None or self.samples_wanted(packet.device_id)
                ):
                    outgoing.append(_live_samples(packet))
                outcomes[i] = ReceiveOutcome(Verdict.ACCEPTED, packet.device_id, tuple(events))
            with self._counters_lock:  # counted once per batch: accepted packets are not logged
                self._counters[Verdict.ACCEPTED.value] += len(analysed)
            self._publish(outgoing)

    def _prefetch_first_sightings(self, raws: Sequence[bytes | bytearray | memoryview]) -> None:
        """Name to ``prefetch``, in one call, the devices the batch's packets claim to come from
        that have no analysis here yet (a hint only: the packets are authenticated after)."""
        assert self.prefetch is not None
        analysed = self._analysed_ids
        first: dict[bytes, None] = {}
        for raw in raws:
            claimed = claimed_device_id(raw)
            if claimed is not None and claimed not in analysed:
                first[claimed] = None
        if not first:
            return
        try:
            self.prefetch([device_uuid(claimed) for claimed in first])
        except Exception as exc:  # each device's key is then looked up on its own, as without
            log.error("monitor gateway: unexpected %s while prefetching", type(exc).__name__)

    def _admit_and_analyse(
        self, opened: list[tuple[int, Packet]], outcomes: list[ReceiveOutcome | None]
    ) -> list[tuple[int, Packet, list[MonitorEvent]]]:
        """Flood limit and replay window for each opened packet, then the analysis of those
        admitted. Called with the analysis lock held (devices' state changes one batch at a
        time, whichever transport's thread it comes from)."""
        admitted: list[tuple[int, Packet, _Device]] = []
        now = self._clock()
        for i, packet in opened:
            try:
                device = self._device(packet.device_id)
            except Exception as exc:  # e.g. the analyzer cannot be built
                log.error("monitor gateway: unexpected %s while analysing", type(exc).__name__)
                outcomes[i] = self._count(
                    Verdict.ANALYSIS_FAILED, packet.device_id, "the packet could not be analysed"
                )
                continue
            seconds = packet.samples.size / packet.rate
            if not device.bucket.take(seconds, now, self.speed_limit, self.burst_seconds):
                outcomes[i] = self._count(
                    Verdict.FLOODED,
                    packet.device_id,
                    f"device {packet.device_id} sends faster than {self.speed_limit:g}× real time",
                )
                continue
            try:
                self.windows.admit(packet.device_id, packet.sequence)
            except ReplayedPacket as exc:
                outcomes[i] = self._count(Verdict.REPLAYED, packet.device_id, exc.message)
                continue
            except StalePacket as exc:
                outcomes[i] = self._count(Verdict.STALE, packet.device_id, exc.message)
                continue
            self._refresh_thresholds(packet.device_id, device)
            admitted.append((i, packet, device))
        if self.replay_floors is not None and admitted:
            with self._devices_lock:
                self._moved.update(packet.device_id for _, packet, _ in admitted)
            if now - self._floors_saved >= FLOORS_EVERY_S:
                self.save_floors()
        if now - self._compacted >= COMPACT_EVERY_S:
            self._compact_quiet(now)
        if not admitted:
            return []
        analyzers = [device.analyzer for _, _, device in admitted]
        packets = [packet for _, packet, _ in admitted]
        found: list[list[MonitorEvent] | None] | None = None
        kind = type(analyzers[0])
        if all(type(a) is kind for a in analyzers):
            try:
                found = list(kind.feed_many(analyzers, packets))
            except Exception:
                found = None
        if found is None:
            # One device's analysis failing must not cost the others theirs: analyse packet by
            # packet. (Packets a device had already taken come back as late and add nothing.)
            found = []
            for analyzer, packet in zip(analyzers, packets, strict=True):
                try:
                    found.append(analyzer.feed(packet))
                except Exception as exc:
                    log.error("monitor gateway: unexpected %s while analysing", type(exc).__name__)
                    found.append(None)
        analysed: list[tuple[int, Packet, list[MonitorEvent]]] = []
        for (i, packet, _), events in zip(admitted, found, strict=True):
            if events is None:
                outcomes[i] = self._count(
                    Verdict.ANALYSIS_FAILED, packet.device_id, "the packet could not be analysed"
                )
            else:
                analysed.append((i, packet, events))
        return analysed

    def _compact_quiet(self, now: float) -> None:
        """Buffers of their own for the analyses of devices quiet for ``QUIET_S`` (called with
        the analysis lock held)."""
        self._compacted = now
        with self._devices_lock:
            quiet = [
                d.analyzer for d in self._devices.values() if now - d.bucket.updated >= QUIET_S
            ]
        for analyzer in quiet:
            try:
                analyzer.compact()
            except Exception as exc:  # never costs a packet
                log.error("monitor gateway: unexpected %s while compacting", type(exc).__name__)

    def _device(self, device_id: UUID) -> _Device:
        with self._devices_lock:
            device = self._devices.get(device_id)
            if device is not None:
                return device
        thresholds = self._thresholds(device_id)
        floor = self._floor(device_id)
        now = self._clock()
        created = _Device(
            self.analyzer_factory(device_id, thresholds),
            _SignalBucket(self.burst_seconds, now),
            now,
            None if floor is None else floor.pairing,
        )
        with self._devices_lock:
            device = self._devices.setdefault(device_id, created)
            self._analysed_ids.add(device_id.bytes)
        if device is created and floor is not None and floor.highest is not None:
            self.windows.start_at(device_id, floor.highest)
        return device

    def _floor(self, device_id: UUID) -> ReplayFloor | None:
        if self.replay_floors is None:
            return None
        try:
            return self.replay_floors.floor(device_id)
        except Exception as exc:  # the window then starts empty, as without floors
            log.warning("monitor gateway: replay floor unavailable (%s)", type(exc).__name__)
            return None

    def _thresholds(self, device_id: UUID) -> RhythmThresholds | None:
        if self.thresholds_for is None:
            return None
        try:
            return self.thresholds_for(device_id)
        except Exception as exc:  # the limits' source failing must not stop the monitoring
            log.warning("monitor gateway: alarm limits unavailable (%s)", type(exc).__name__)
            return None

    def _refresh_thresholds(self, device_id: UUID, device: _Device) -> None:
        now = self._clock()
        if self.thresholds_for is None or now - device.thresholds_checked < THRESHOLDS_REFRESH_S:
            return
        device.thresholds_checked = now
        thresholds = self._thresholds(device_id)
        if thresholds is not None and thresholds != device.analyzer.thresholds:
            device.analyzer.thresholds = thresholds

    def _publish(self, events: list[MonitorEvent]) -> None:
        lost = publish_all(self.sink, events)
        if lost:
            with self._counters_lock:
                self._counters["sink_failed"] += lost

    def _count(
        self,
        verdict: Verdict,
        device_id: UUID | None,
        message: str,
        events: tuple[MonitorEvent, ...] = (),
    ) -> ReceiveOutcome:
        with self._counters_lock:
            self._counters[verdict.value] += 1
            seen = self._counters[verdict.value]
        if verdict is not Verdict.ACCEPTED and seen % LOG_EVERY == 1:
            log.warning(
                "monitor gateway: packet refused (%s, %d so far): %s", verdict.value, seen, message
            )
        return ReceiveOutcome(verdict, device_id, events, message)
