"""Online analysis of one wearable device's ECG: beats, heart rate, rhythm, quality and alerts.

A :class:`DeviceAnalyzer` takes the device's authenticated packets in order and returns events:

* a :class:`~rekam.monitor.events.HeartRateReading` after every beat that ends a trusted RR
  interval (60000 / RR ms, moving average over ``average_beats``), and whenever the signal
  quality changes (``bpm=None`` while there is no reliable reading);
* an :class:`~rekam.monitor.events.AlertEvent` when a bradycardia, tachycardia or irregular-rhythm
  episode is *confirmed* (RAISED, with the ECG strip), when an open episode reaches a more extreme
  rate (UPDATED, at most one every ``UPDATE_INTERVAL_MS``), and when it ends (ENDED).

Beats come from :class:`rekam.ecg.RPeakDetector`, fed with the packets' samples exactly as they
arrive, so on a continuous stream the beats are those :func:`rekam.ecg.detect_r_peaks` finds
offline. A beat is reported ``detector.latency_s`` (0.45 s) after its R peak at most, search-back
beats later (see :mod:`rekam.ecg.rpeaks`).

Rules that keep false alarms out:

* **Lost packets** — a gap of up to ``MAX_BRIDGED_GAP_S`` is bridged by holding the last value
  (keeping the detector's timing), and the stretch around it is unreliable: no beat near it is
  used and no RR interval spans it. A longer gap, a jump in the device clock or a change of
  sampling rate starts the analysis afresh (the detector learns again for 4 s). Packets older than
  the last one are dropped.
* **Signal quality** — :class:`~rekam.monitor.online_quality.OnlineSignalQuality` marks flat,
  saturated and noisy stretches unreliable; beats inside them are discarded, the moving average
  restarts after them, and a rhythm change in progress must be seen anew.
* **Minimum duration and hysteresis** — per patient, from :class:`rekam.ecg.RhythmThresholds`:
  an episode is confirmed only when every trusted beat for ``min_duration_s`` pointed to it.

Times are the device clock: a packet's timestamp is the time of its first sample, and sample ``i``
of an uninterrupted stretch lies ``i × 1000 / rate`` ms after the stretch's first sample.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import numpy as np
import numpy.typing as npt

from rekam.ecg.rhythm import RhythmClass, RhythmThresholds
from rekam.ecg.rpeaks import MAX_SAMPLING_RATE_HZ, MIN_SAMPLING_RATE_HZ, RPeakDetector
from rekam.monitor.events import (
    AlertEvent,
    AlertKind,
    AlertPhase,
    EcgStrip,
    HeartRateReading,
    MonitorEvent,
    SignalQualityLevel,
)
from rekam.monitor.online_quality import OnlineSignalQuality, QualityVerdict
from rekam.monitor.online_rhythm import ClassChange, ClassTracker, IrregularityTracker
from rekam.monitor.packets import Packet

__all__ = [
    "MAX_BRIDGED_GAP_S",
    "STALE_READING_S",
    "UPDATE_INTERVAL_MS",
    "AnalyzerCounters",
    "DeviceAnalyzer",
]

IndexArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
_NO_BEATS: IndexArray = np.zeros(0, dtype=np.int64)
_NO_BEATS.setflags(write=False)
_NO_MV: FloatArray = np.zeros(0)

MAX_BRIDGED_GAP_S = 1.0
"""Longer runs of lost samples restart the analysis instead of being bridged."""
CLOCK_TOLERANCE_MS = 250
"""A packet whose timestamp is further than this from where the stream says it should be starts a
fresh stretch (the device clock jumped, or samples were lost without a sequence gap)."""
GAP_MARGIN_BEFORE_S = 0.1
GAP_MARGIN_AFTER_S = 0.3
RELEARN_AFTER_S = 1.0
"""After an unreliable stretch at least this long, the detector learns the signal afresh: levels
learnt on artefact or on a lead that was off would make it miss beats or take noise for them."""
BEAT_MARGIN_S = 0.1
"""A beat closer than this to an unreliable stretch is not used."""
MAX_RR_MS = 3000.0
"""A longer interval is taken as missed beats, not as a rate."""
STALE_READING_S = 5.0
"""Without a trusted beat for this long, the device reports no reliable reading."""
ABANDON_EPISODE_S = 60.0
"""An open episode with no reliable reading for this long is closed at its last trusted beat."""
UPDATE_INTERVAL_MS = 5000
UPDATE_MIN_CHANGE_BPM = 1.0

_RATE_ALERT = {
    RhythmClass.BRADYCARDIA: AlertKind.BRADYCARDIA,
    RhythmClass.TACHYCARDIA: AlertKind.TACHYCARDIA,
}


@dataclass
class AnalyzerCounters:
    """What the analyzer did with the packets it was given."""

    packets: int = 0
    samples: int = 0
    beats: int = 0
    discarded_beats: int = 0
    bridged_gaps: int = 0
    restarts: int = 0
    detector_restarts: int = 0
    late_packets: int = 0
    unsupported_rate_packets: int = 0


@dataclass
class _Episode:
    kind: AlertKind
    episode_id: UUID
    started_ms: int
    confirmed_ms: int
    extreme_bpm: float
    reported_bpm: float
    last_event_ms: int


@dataclass
class _Stretch:
    """One uninterrupted run of samples at one rate: its detector and its bookkeeping."""

    rate: int
    anchor_ms: int  # device time of sample 0
    next_sequence: int
    detector: RPeakDetector
    quality: OnlineSignalQuality
    n: int = 0  # samples fed, bridged ones included
    detector_offset: int = 0  # stretch index of the detector's sample 0
    bad_since: int | None = None  # start of the current run of unreliable windows
    last_value: float = 0.0
    unreliable: list[tuple[int, int]] = field(default_factory=list)
    previous_beat: int | None = None

    def time_ms(self, index: int) -> int:
        return self.anchor_ms + round(index * 1000 / self.rate)

    def mark_unreliable(self, start: int, end: int) -> None:
        start = max(0, start)
        if self.unreliable and start <= self.unreliable[-1][1]:
            last_start, last_end = self.unreliable[-1]
            self.unreliable[-1] = (min(last_start, start), max(last_end, end))
        else:
            self.unreliable.append((start, end))

    def touches_unreliable(self, lo: int, hi: int) -> bool:
        return any(s <= hi and e >= lo for s, e in self.unreliable)

    def forget_unreliable_before(self, index: int) -> None:
        while self.unreliable and self.unreliable[0][1] < index:
            self.unreliable.pop(0)


class DeviceAnalyzer:
    """Beats, heart rate, rhythm, signal quality and alerts for one device, packet by packet."""

    def __init__(
        self,
        device_id: UUID,
        thresholds: RhythmThresholds | None = None,
        *,
        average_beats: int = 10,
        strip_seconds: float = 6.0,
    ) -> None:
        if average_beats < 1:
            raise ValueError("the heart-rate average must span at least one beat")
        if not 0 < strip_seconds <= 60:
            raise ValueError("the alert strip must last between 0 and 60 seconds")
        self.device_id = device_id
        self.thresholds = thresholds if thresholds is not None else RhythmThresholds()
        self.average_beats = average_beats
        self.strip_seconds = float(strip_seconds)
        self.counters = AnalyzerCounters()
        self.beats_in_last_packet: IndexArray = _NO_BEATS
        """Stream sample indices (within the current stretch) of the beats the last packet
        revealed, before any quality screening; for checks against the offline detector."""
        self._stretch: _Stretch | None = None
        self._strip: deque[npt.NDArray[np.int16]] = deque()  # the last packets' samples
        self._strip_samples = 0
        self._strip_end_ms = 0
        self._bpm_history: deque[float] = deque(maxlen=average_beats)
        self._recent: deque[tuple[int, float]] = deque(maxlen=256)
        self._rate = ClassTracker(RhythmClass.NORMAL)
        self._irregular_state = ClassTracker(False)
        self._irregularity = IrregularityTracker()
        self._quality: SignalQualityLevel | None = None
        self._last_trusted_ms: int | None = None
        self._rate_episode: _Episode | None = None
        self._irregular_episode: _Episode | None = None

    # ------------------------------------------------------------------------------ public
    @property
    def rhythm(self) -> RhythmClass:
        """The current rate class (``no reliable reading`` while quality is lost)."""
        if self._quality is SignalQualityLevel.NO_READING:
            return RhythmClass.NO_READING
        return self._rate.state

    @property
    def quality(self) -> SignalQualityLevel | None:
        """``None`` until the first reading."""
        return self._quality

    @property
    def stretch_anchor_ms(self) -> int | None:
        """Device time of sample 0 of the current stretch (``beats_in_last_packet`` count from
        it)."""
        return None if self._stretch is None else self._stretch.anchor_ms

    def compact(self) -> None:
        """Give the signal buffers arrays of their own. Devices analysed together keep rows of
        arrays shared with the others of a call (:meth:`feed_many`); a device that has gone
        quiet would keep those alive. Changes no result."""
        if self._stretch is not None:
            self._stretch.detector.compact()
            self._stretch.quality.compact()

    def feed(self, packet: Packet) -> list[MonitorEvent]:
        """Analyse the next packet of this device; return the events it produced."""
        return DeviceAnalyzer.feed_many([self], [packet])[0]

    @staticmethod
    def feed_many(
        analyzers: Sequence[DeviceAnalyzer], packets: Sequence[Packet]
    ) -> list[list[MonitorEvent]]:
        """Analyse ``packets[i]`` with ``analyzers[i]`` for every ``i``; return each packet's
        events — exactly what :meth:`feed` returns packet by packet in that order. An analyzer
        may appear several times (its packets are analysed in their order). The signal work of
        the devices is shared: their quality windows and R-peak detectors run as rows of one
        array (:meth:`OnlineSignalQuality.feed_many`, :meth:`RPeakDetector.feed_many`)."""
        if len(analyzers) != len(packets):
            raise ValueError("feed_many takes one packet per analyzer")
        results: list[list[MonitorEvent]] = [[] for _ in packets]
        waiting = list(range(len(packets)))
        while waiting:
            now: list[int] = []
            later: list[int] = []
            taken: set[int] = set()
            for i in waiting:
                if id(analyzers[i]) in taken:
                    later.append(i)
                else:
                    taken.add(id(analyzers[i]))
                    now.append(i)
            DeviceAnalyzer._feed_round(
                [analyzers[i] for i in now], [packets[i] for i in now], [results[i] for i in now]
            )
            waiting = later
        return results

    @staticmethod
    def _feed_round(
        analyzers: list[DeviceAnalyzer], packets: list[Packet], events: list[list[MonitorEvent]]
    ) -> None:
        """One packet each for distinct analyzers."""
        placed = []
        for analyzer, packet, out in zip(analyzers, packets, events, strict=True):
            prepared = analyzer._prepare(packet, out)
            if prepared is not None:
                stretch, samples, start = prepared
                placed.append((analyzer, stretch, samples, start, out))
        if not placed:
            return
        steps = [
            (analyzer, stretch, mv, start, out)
            for (analyzer, stretch, _, start, out), mv in zip(
                placed, _millivolts([samples for _, _, samples, _, _ in placed]), strict=True
            )
        ]
        verdicts = OnlineSignalQuality.feed_many(
            [stretch.quality for _, stretch, _, _, _ in steps], [mv for _, _, mv, _, _ in steps]
        )
        for (analyzer, stretch, _, start, out), judged in zip(steps, verdicts, strict=True):
            analyzer._judge_quality(stretch, judged, start, out)
        found = RPeakDetector.feed_many(
            [stretch.detector for _, stretch, _, _, _ in steps], [mv for _, _, mv, _, _ in steps]
        )
        for (analyzer, stretch, _, _, out), beats in zip(steps, found, strict=True):
            analyzer._take_beats(stretch, beats, out)

    def _prepare(
        self, packet: Packet, events: list[MonitorEvent]
    ) -> tuple[_Stretch, npt.NDArray[np.int16], int] | None:
        """Place the packet in the stream; return its stretch, samples (µV) and first index, or
        ``None`` when it carries nothing to analyse."""
        self.counters.packets += 1
        self.beats_in_last_packet = _NO_BEATS
        rate = int(packet.rate)
        if not MIN_SAMPLING_RATE_HZ <= rate <= MAX_SAMPLING_RATE_HZ:
            self.counters.unsupported_rate_packets += 1
            self._stretch = None
            self._lose_quality(packet.timestamp_ms, events)
            return None
        samples = np.asarray(packet.samples, dtype=np.int16).reshape(-1)
        if samples.size == 0:
            return None
        stretch = self._place(packet, rate)
        if stretch is None:
            return None
        self.counters.samples += int(samples.size)
        self._remember_strip(samples, stretch.time_ms(stretch.n), rate)
        start = stretch.n
        stretch.n += samples.size
        stretch.last_value = int(samples[-1]) / 1000.0
        stretch.next_sequence = packet.sequence + 1
        return stretch, samples, start

    def _judge_quality(
        self,
        stretch: _Stretch,
        verdicts: list[QualityVerdict],
        start: int,
        events: list[MonitorEvent],
    ) -> None:
        for verdict in verdicts:
            if not verdict.reliable:
                stretch.mark_unreliable(verdict.start, verdict.end)
                if stretch.bad_since is None:
                    stretch.bad_since = verdict.start
                self._lose_quality(stretch.time_ms(verdict.end), events)
            elif stretch.bad_since is not None:
                if verdict.start - stretch.bad_since >= RELEARN_AFTER_S * stretch.rate:
                    self.counters.detector_restarts += 1
                    stretch.detector = RPeakDetector(stretch.rate)
                    stretch.detector_offset = start
                stretch.bad_since = None

    def _take_beats(self, stretch: _Stretch, beats: IndexArray, events: list[MonitorEvent]) -> None:
        beats = beats + stretch.detector_offset
        self.beats_in_last_packet = beats
        for r in beats.tolist():
            self._beat(stretch, int(r), events)
        now_ms = stretch.time_ms(stretch.n)
        self._check_stale(now_ms, events)

    # ------------------------------------------------------------------------------ stream
    def _place(self, packet: Packet, rate: int) -> _Stretch | None:
        """Fit the packet into the current stretch: continue, bridge a gap, or start afresh."""
        stretch = self._stretch
        if stretch is not None and stretch.rate == rate:
            expected_ms = stretch.time_ms(stretch.n)
            if packet.sequence < stretch.next_sequence and packet.timestamp_ms < expected_ms:
                self.counters.late_packets += 1
                return None
            offset_ms = packet.timestamp_ms - expected_ms
            if packet.sequence == stretch.next_sequence and abs(offset_ms) <= CLOCK_TOLERANCE_MS:
                return stretch
            if packet.sequence > stretch.next_sequence and offset_ms > -CLOCK_TOLERANCE_MS:
                missing = max(0, round(offset_ms * rate / 1000))
                if missing <= MAX_BRIDGED_GAP_S * rate:
                    self._bridge(stretch, missing)
                    return stretch
        if stretch is not None:
            self.counters.restarts += 1
            self._interrupt()
        self._stretch = _Stretch(
            rate,
            packet.timestamp_ms,
            packet.sequence,
            RPeakDetector(rate),
            OnlineSignalQuality(rate),
        )
        self._strip.clear()
        self._strip_samples = 0
        return self._stretch

    def _bridge(self, stretch: _Stretch, missing: int) -> None:
        """Hold the last value over lost samples and mark the stretch around them unreliable."""
        self.counters.bridged_gaps += 1
        start = stretch.n
        if missing:
            fill = np.full(missing, stretch.last_value)
            for verdict in stretch.quality.feed(fill):
                if not verdict.reliable and stretch.bad_since is None:
                    stretch.bad_since = verdict.start
            beats = stretch.detector.feed(fill)
            stretch.n += missing
            held = np.full(missing, round(stretch.last_value * 1000), dtype=np.int16)
            self._remember_strip(held, stretch.time_ms(start), stretch.rate)
            stretch.mark_unreliable(
                start - round(GAP_MARGIN_BEFORE_S * stretch.rate),
                stretch.n + round(GAP_MARGIN_AFTER_S * stretch.rate),
            )
            self.counters.discarded_beats += int(beats.size)
        else:
            stretch.mark_unreliable(
                start - round(GAP_MARGIN_BEFORE_S * stretch.rate),
                start + round(GAP_MARGIN_AFTER_S * stretch.rate),
            )
        stretch.previous_beat = None
        self._interrupt()

    def _interrupt(self) -> None:
        """Trusted beats stop here: averages restart and pending rhythm changes are forgotten."""
        self._bpm_history.clear()
        self._recent.clear()
        self._irregularity.reset()
        self._rate.interrupt()
        self._irregular_state.interrupt()
        if self._stretch is not None:
            self._stretch.previous_beat = None

    def _remember_strip(self, samples: npt.NDArray[np.int16], start_ms: int, rate: int) -> None:
        """Keep the packets that cover the last ``strip_seconds`` (joined only for an alert)."""
        keep = max(1, round(self.strip_seconds * rate))
        self._strip.append(samples)
        self._strip_samples += samples.size
        while self._strip_samples - self._strip[0].size >= keep:
            self._strip_samples -= self._strip.popleft().size
        self._strip_end_ms = start_ms + round(samples.size * 1000 / rate)

    def _strip_now(self, rate: int) -> EcgStrip:
        keep = max(1, round(self.strip_seconds * rate))
        strip = np.concatenate(self._strip)[-keep:] if self._strip else np.zeros(0, np.int16)
        start_ms = self._strip_end_ms - round(strip.size * 1000 / rate)
        return EcgStrip(rate, start_ms, tuple(int(v) for v in strip.tolist()))

    # ------------------------------------------------------------------------------ beats
    def _beat(self, stretch: _Stretch, r: int, events: list[MonitorEvent]) -> None:
        self.counters.beats += 1
        margin = round(BEAT_MARGIN_S * stretch.rate)
        if stretch.touches_unreliable(r - margin, r + margin):
            self.counters.discarded_beats += 1
            self._interrupt()
            return
        previous = stretch.previous_beat
        stretch.previous_beat = r
        if previous is None:
            return
        rr_ms = (r - previous) * 1000.0 / stretch.rate
        if rr_ms > MAX_RR_MS or stretch.touches_unreliable(previous, r):
            self._interrupt()
            stretch.previous_beat = r
            return
        stretch.forget_unreliable_before(previous - margin)
        time_ms = stretch.time_ms(r)
        self._bpm_history.append(60000.0 / rr_ms)
        self._recent.append((time_ms, 60000.0 / rr_ms))
        bpm = round(sum(self._bpm_history) / len(self._bpm_history), 1)
        irregular = self._irregularity.update(rr_ms, time_ms)
        self._last_trusted_ms = time_ms
        self._quality = SignalQualityLevel.GOOD
        th = self.thresholds
        min_ms = round(th.min_duration_s * 1000)
        rate_change = self._rate.update(time_ms, th.raw_class(bpm, self._rate.state), min_ms)
        irregular_change = self._irregular_state.update(time_ms, irregular, min_ms)
        events.append(
            HeartRateReading(
                self.device_id,
                time_ms,
                bpm,
                self._rate.state.value,
                SignalQualityLevel.GOOD,
                self._irregular_state.state,
            )
        )
        self._rate_alerts(rate_change, bpm, time_ms, stretch.rate, events)
        self._irregular_alerts(irregular_change, bpm, time_ms, stretch.rate, events)

    def _rate_alerts(
        self,
        change: ClassChange[RhythmClass] | None,
        bpm: float,
        time_ms: int,
        rate: int,
        events: list[MonitorEvent],
    ) -> None:
        episode = self._rate_episode
        if change is not None:
            th = self.thresholds
            if episode is not None:
                previous = change.previous
                ended = self._backdate(
                    change.since_ms, lambda v: th.raw_class(v, previous) is not previous
                )
                events.append(self._alert(episode, AlertPhase.ENDED, ended))
                self._rate_episode = episode = None
            kind = _RATE_ALERT.get(change.current)
            if kind is not None:
                current = change.current
                started = self._backdate(
                    change.since_ms, lambda v: th.raw_class(v, RhythmClass.NORMAL) is current
                )
                episode = _Episode(
                    kind, uuid.uuid4(), started, change.confirmed_ms, bpm, bpm, time_ms
                )
                self._rate_episode = episode
                events.append(self._alert(episode, AlertPhase.RAISED, None, self._strip_now(rate)))
            return
        if episode is None:
            return
        more_extreme = (
            bpm > episode.extreme_bpm
            if episode.kind is AlertKind.TACHYCARDIA
            else bpm < episode.extreme_bpm
        )
        if more_extreme:
            episode.extreme_bpm = bpm
        if (
            abs(episode.extreme_bpm - episode.reported_bpm) >= UPDATE_MIN_CHANGE_BPM
            and time_ms - episode.last_event_ms >= UPDATE_INTERVAL_MS
        ):
            episode.reported_bpm = episode.extreme_bpm
            episode.last_event_ms = time_ms
            events.append(self._alert(episode, AlertPhase.UPDATED, None))

    def _backdate(self, since_ms: int, points_to: Callable[[float], bool]) -> int:
        """When a change really began: the moving average lags the beats, so go back from its
        first beat over the preceding beats whose own rate already pointed to the new class."""
        start = since_ms
        for time_ms, bpm in reversed(self._recent):
            if time_ms >= since_ms:
                continue
            if not points_to(bpm):
                break
            start = time_ms
        return start

    def _irregular_alerts(
        self,
        change: ClassChange[bool] | None,
        bpm: float,
        time_ms: int,
        rate: int,
        events: list[MonitorEvent],
    ) -> None:
        if change is None:
            return
        episode = self._irregular_episode
        if change.current:
            onset = self._irregularity.onset_ms
            started = change.since_ms if onset is None else min(onset, change.since_ms)
            episode = _Episode(
                AlertKind.IRREGULAR,
                uuid.uuid4(),
                started,
                change.confirmed_ms,
                bpm,
                bpm,
                time_ms,
            )
            self._irregular_episode = episode
            events.append(self._alert(episode, AlertPhase.RAISED, None, self._strip_now(rate)))
        elif episode is not None:
            events.append(self._alert(episode, AlertPhase.ENDED, change.since_ms))
            self._irregular_episode = None

    def _alert(
        self,
        episode: _Episode,
        phase: AlertPhase,
        ended_ms: int | None,
        strip: EcgStrip | None = None,
    ) -> AlertEvent:
        bpm = episode.extreme_bpm if phase is not AlertPhase.RAISED else episode.reported_bpm
        return AlertEvent(
            episode.episode_id,
            self.device_id,
            episode.kind,
            phase,
            bpm,
            episode.started_ms,
            episode.confirmed_ms,
            ended_ms,
            strip,
        )

    # ------------------------------------------------------------------------------ quality
    def _lose_quality(self, time_ms: int, events: list[MonitorEvent]) -> None:
        self._interrupt()
        if self._quality is SignalQualityLevel.NO_READING:
            return
        self._quality = SignalQualityLevel.NO_READING
        events.append(
            HeartRateReading(
                self.device_id,
                time_ms,
                None,
                RhythmClass.NO_READING.value,
                SignalQualityLevel.NO_READING,
                False,
            )
        )

    def _check_stale(self, now_ms: int, events: list[MonitorEvent]) -> None:
        last = self._last_trusted_ms
        if last is None:
            return
        if now_ms - last > STALE_READING_S * 1000:
            self._lose_quality(now_ms, events)
        if now_ms - last > ABANDON_EPISODE_S * 1000:
            for attribute in ("_rate_episode", "_irregular_episode"):
                episode: _Episode | None = getattr(self, attribute)
                if episode is not None:
                    events.append(self._alert(episode, AlertPhase.ENDED, last))
                    setattr(self, attribute, None)
            if self._rate.state is not RhythmClass.NORMAL:
                self._rate = ClassTracker(RhythmClass.NORMAL)
            if self._irregular_state.state:
                self._irregular_state = ClassTracker(False)


def _millivolts(packets: list[npt.NDArray[np.int16]]) -> list[FloatArray]:
    """Each packet's samples (µV) in mV: packets of one length are converted as rows of one
    array, and each gets its row."""
    by_size: dict[int, list[int]] = {}
    for j, samples in enumerate(packets):
        by_size.setdefault(samples.size, []).append(j)
    out: list[FloatArray] = [_NO_MV] * len(packets)
    for members in by_size.values():
        block = np.array([packets[j] for j in members], dtype=np.float64) / 1000.0
        for row, j in enumerate(members):
            out[j] = block[row]
    return out
