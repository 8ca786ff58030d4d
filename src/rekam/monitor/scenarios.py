"""Simulated wearable ECG devices: real or synthetic ECG with injected, logged episodes.

A :class:`SimulatedDevice` produces what a device would seal into packets — chunks of int16
microvolt samples with a sequence number and the device-clock time of the first sample — for as
long as it is asked, following its :class:`Scenario`:

========== ==================================================================================
normal     sinus rhythm (60–85 bpm with mild rate variability); no episode
brady      normal stretches alternating with bradycardia (36–44 bpm)
tachy      normal stretches alternating with tachycardia (130–160 bpm)
irregular  normal stretches alternating with an irregular rhythm (RR varying ±30 %)
noisy      normal rhythm with stretches of movement artefact, muscle noise or a lead off
mixed      all of the above in turn
========== ==================================================================================

Every injected episode is logged in :attr:`SimulatedDevice.ground_truth` as soon as its first
sample has been produced; stretches of bad signal are logged as ``no reliable reading``.

Two sources of ECG:

* ``synthetic`` — PQRST beats (:mod:`rekam.monitor.synthetic_ecg`) at the scenario's rates;
* ``mitdb`` — real ECG from the shared MIT-BIH records 100 and 121 (sinus rhythm with rare
  ectopic beats; the other shared records have long ectopic runs, pacing or bigeminy), resampled
  to the device rate with a polyphase filter and played from a position chosen by the seed.
  Episodes are injected by playing the record faster or slower (tachycardia of 120–140 bpm,
  bradycardia of 36–44 bpm, an irregular rhythm by changing the speed at random every
  0.5–1 s); the speed of an episode is its target rate over the rate of the part of the record
  it plays (median annotated RR interval). Tachycardia stays
  below 140 bpm here: a real ECG compressed more than about twice has its T waves so close to
  the next QRS that the R-peak detector's T-wave rule starts to drop beats.

The record directory is ``$REKAM_ECG_DATA/mitdb`` when that variable is set, else
``shared/data/ecg/mitdb`` beside the source checkout (where the tests and benchmarks look).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from uuid import UUID

import numpy as np
import numpy.typing as npt
from scipy import signal as sp_signal

from rekam.monitor.events import AlertKind
from rekam.monitor.synthetic_ecg import render_ecg

__all__ = [
    "MITDB_RECORDS",
    "NO_READING",
    "GroundTruthEpisode",
    "SampleChunk",
    "Scenario",
    "SimulatedDevice",
    "mitdb_directory",
]

FloatArray = npt.NDArray[np.float64]
Int16Array = npt.NDArray[np.int16]

NO_READING = "no reliable reading"
MITDB_RECORDS = ("100", "121")
_BLOCK_S = 2.0
_GOLDEN = 0.6180339887498949
"""Seeds 0, 1, 2 … times this (mod 1) spread evenly over [0, 1): the phase of each device's
rendering (see :meth:`SimulatedDevice._render_block`)."""
_IRREGULAR_BPM = 85.0
_RAIL_UV = 32767


class Scenario(StrEnum):
    NORMAL = "normal"
    BRADY = "brady"
    TACHY = "tachy"
    IRREGULAR = "irregular"
    NOISY = "noisy"
    MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class GroundTruthEpisode:
    """One injected episode, in seconds from the device's first sample.

    ``kind`` is an :class:`~rekam.monitor.events.AlertKind` value, or ``"no reliable reading"``
    for a stretch of bad signal (``detail`` then says which: movement, muscle noise, lead off).
    ``bpm`` is the episode's mean rate (``None`` for bad signal)."""

    kind: str
    start_s: float
    end_s: float
    bpm: float | None
    detail: str = ""

    @property
    def alerting(self) -> bool:
        """Whether a monitor should raise an alert for it."""
        return self.kind in {k.value for k in AlertKind}

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "bpm": self.bpm,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class SampleChunk:
    """What one packet carries: the device seals it with :func:`rekam.monitor.encode_packet`."""

    sequence: int
    timestamp_ms: int
    rate: int
    samples: Int16Array


@dataclass(frozen=True, slots=True)
class _Segment:
    start_s: float
    end_s: float
    kind: str  # "normal", an AlertKind value, or NO_READING
    bpm: float  # synthetic rate, or the mean rate of a real episode
    detail: str = ""


def mitdb_directory() -> Path:
    """Where the shared MIT-BIH records are."""
    configured = os.environ.get("REKAM_ECG_DATA")
    if configured:
        return Path(configured) / "mitdb"
    return Path(__file__).resolve().parents[3].parent / "shared/data/ecg/mitdb"


@lru_cache(maxsize=16)
def _mitdb_record(record: str, rate: int) -> tuple[FloatArray, FloatArray, float]:
    """A record's first lead (mV) resampled to ``rate``, its annotated beats (sample positions at
    ``rate``) and its median heart rate (bpm)."""
    from rekam.ecg.readers import read_wfdb

    recording = read_wfdb(mitdb_directory() / record)
    x = recording.lead(0)
    fs = round(recording.fs)
    g = int(np.gcd(rate, fs))
    resampled = np.asarray(sp_signal.resample_poly(x, rate // g, fs // g), dtype=np.float64)
    beats = recording.reference_beats()
    if beats is None or beats.size < 10:
        raise ValueError(f"MIT-BIH record {record} has no beat annotations")
    bpm = 60.0 * recording.fs / float(np.median(np.diff(beats)))
    positions = beats.astype(np.float64) * rate / recording.fs
    resampled.setflags(write=False)
    positions.setflags(write=False)
    return resampled, positions, bpm


class SimulatedDevice:
    """One simulated wearable: :meth:`next_chunk` gives the next packet's samples."""

    def __init__(
        self,
        device_id: UUID,
        scenario: Scenario | str,
        rate_hz: int = 250,
        samples_per_packet: int = 25,
        *,
        seed: int = 0,
        source: Literal["synthetic", "mitdb"] = "synthetic",
        start_ms: int | None = None,
        first_sequence: int = 0,
    ) -> None:
        if not 125 <= rate_hz <= 1000:
            raise ValueError(f"rate {rate_hz} Hz is outside 125..1000 Hz")
        if not 1 <= samples_per_packet <= 500:
            raise ValueError(f"{samples_per_packet} samples per packet is outside 1..500")
        if source not in ("synthetic", "mitdb"):
            raise ValueError(f"unknown ECG source {source!r}; use 'synthetic' or 'mitdb'")
        self.device_id = device_id
        self.scenario = Scenario(scenario)
        self.rate_hz = int(rate_hz)
        self.samples_per_packet = int(samples_per_packet)
        self.source = source
        self.start_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self.ground_truth: list[GroundTruthEpisode] = []
        self._rng = np.random.default_rng(seed)
        self._sequence = first_sequence
        self._n_sent = 0
        self._amplitude = float(self._rng.uniform(0.8, 1.4))
        self._wander_hz = float(self._rng.uniform(0.15, 0.35))
        self._base_bpm = float(self._rng.uniform(60, 85))
        self._segments: list[_Segment] = []
        self._planned_until = 0.0
        self._logged = 0
        self._buffer = np.zeros(0, dtype=np.int16)
        self._rendered = 0  # samples rendered so far
        # The first block is shorter by a part of a block that depends on the seed, so devices
        # simulated together render at different moments: rendered together, 500 devices' next
        # 2 s take some 80 ms at once, and their packets would leave in one burst afterwards.
        self._block_s = _BLOCK_S * (1.0 - (seed * _GOLDEN) % 1.0)
        # synthetic source: beat schedule
        self._last_beat_s = float(self._rng.uniform(0.2, 0.8)) - 60.0 / self._base_bpm
        self._beats: list[tuple[float, float]] = []  # (R time s, preceding RR s)
        # mitdb source: playback position in the record (samples at rate_hz)
        if source == "mitdb":
            record = MITDB_RECORDS[int(self._rng.integers(len(MITDB_RECORDS)))]
            self.record = record
            self._record, self._record_beats, self._record_bpm = _mitdb_record(record, self.rate_hz)
            self._episode_speeds: dict[int, float] = {}
            self._position = float(self._rng.uniform(0, 0.5) * self._record.size)
            self._speed_starts: list[float] = []
            self._speed_values: list[float] = []
        else:
            self.record = ""

    # ------------------------------------------------------------------------------ public
    @property
    def elapsed_s(self) -> float:
        """Seconds of signal produced so far."""
        return self._n_sent / self.rate_hz

    def next_chunk(self) -> SampleChunk:
        n = self.samples_per_packet
        while self._buffer.size < n:
            self._render_block()
        samples, self._buffer = self._buffer[:n], self._buffer[n:]
        chunk = SampleChunk(
            self._sequence,
            self.start_ms + (self._n_sent * 1000) // self.rate_hz,
            self.rate_hz,
            samples,
        )
        self._sequence += 1
        self._n_sent += n
        self._log_started_episodes()
        return chunk

    def chunks(self, duration_s: float) -> Iterator[SampleChunk]:
        """Chunks covering the next ``duration_s`` seconds of signal."""
        end = self._n_sent + round(duration_s * self.rate_hz)
        while self._n_sent < end:
            yield self.next_chunk()

    def signal(self, duration_s: float) -> Int16Array:
        """The next ``duration_s`` seconds of samples in one array (for offline checks)."""
        parts = [c.samples for c in self.chunks(duration_s)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    # ------------------------------------------------------------------------------ plan
    def _plan(self, until_s: float) -> None:
        while self._planned_until <= until_s:
            self._plan_cycle()

    def _plan_cycle(self) -> None:
        rng, t = self._rng, self._planned_until
        scenario = self.scenario
        if scenario is Scenario.NORMAL:
            self._add(t, 300.0, "normal")
            return
        steps: list[str]
        if scenario is Scenario.MIXED:
            steps = ["tachy", "brady", "noisy", "irregular"]
        else:
            steps = [scenario.value]
        for step in steps:
            t = self._add(t, float(rng.uniform(25, 40)), "normal")
            if step == "tachy":
                fast = (120, 140) if self.source == "mitdb" else (130, 160)
                t = self._add(t, float(rng.uniform(25, 35)), AlertKind.TACHYCARDIA.value, fast)
            elif step == "brady":
                t = self._add(t, float(rng.uniform(25, 35)), AlertKind.BRADYCARDIA.value, (36, 44))
            elif step == "irregular":
                t = self._add(t, float(rng.uniform(40, 60)), AlertKind.IRREGULAR.value)
            elif step == "noisy":
                t = self._add(t, float(rng.uniform(8, 15)), NO_READING)
        self._planned_until = t

    def _add(
        self, start: float, duration: float, kind: str, rate: tuple[float, float] | None = None
    ) -> float:
        rng = self._rng
        end = start + duration
        bpm, detail = self._base_bpm, ""
        if rate is not None:
            # For a record, the speed is set when the episode begins, from the rate of the part
            # of the record it plays (see _render_mitdb).
            bpm = float(rng.uniform(*rate))
        elif kind == NO_READING:
            detail = str(rng.choice(["movement", "muscle noise", "lead off"]))
        elif self.source == "mitdb":
            bpm = self._record_bpm
        elif kind == AlertKind.IRREGULAR.value:
            bpm = _IRREGULAR_BPM
        self._segments.append(_Segment(start, end, kind, bpm, detail))
        self._planned_until = max(self._planned_until, end)
        return end

    def _segment_at(self, t: float) -> _Segment:
        self._plan(t + 1.0)
        for segment in reversed(self._segments):
            if segment.start_s <= t:
                return segment
        return self._segments[0]

    def _log_started_episodes(self) -> None:
        now = self.elapsed_s
        while self._logged < len(self._segments) and self._segments[self._logged].start_s < now:
            s = self._segments[self._logged]
            self._logged += 1
            if s.kind == "normal":
                continue
            bpm = None if s.kind == NO_READING else round(s.bpm, 1)
            self.ground_truth.append(GroundTruthEpisode(s.kind, s.start_s, s.end_s, bpm, s.detail))

    # ------------------------------------------------------------------------------ render
    def _render_block(self) -> None:
        fs = self.rate_hz
        n = max(1, round(self._block_s * fs))
        self._block_s = _BLOCK_S
        start = self._rendered
        t0 = start / fs
        self._plan(t0 + n / fs + 2.0)
        x = self._render_mitdb(t0, n) if self.source == "mitdb" else self._render_synthetic(t0, n)
        t = t0 + np.arange(n) / fs
        x = x + 0.08 * np.sin(2 * np.pi * self._wander_hz * t)
        x = x + 0.01 * self._rng.standard_normal(n)
        uv = np.round(x * 1000)
        uv = self._add_bad_signal(t, uv)
        block = np.clip(uv, -32768, _RAIL_UV).astype(np.int16)
        self._buffer = np.concatenate([self._buffer, block])
        self._rendered += n

    def _render_synthetic(self, t0: float, n: int) -> FloatArray:
        fs = self.rate_hz
        horizon = t0 + n / fs + 0.6
        while self._last_beat_s < horizon:
            segment = self._segment_at(max(self._last_beat_s, 0.0))
            if segment.kind == AlertKind.IRREGULAR.value:
                rr = 60.0 / _IRREGULAR_BPM * float(self._rng.uniform(0.7, 1.3))
            else:
                rr = 60.0 / segment.bpm * float(1 + 0.02 * self._rng.standard_normal())
            self._last_beat_s += rr
            self._beats.append((self._last_beat_s, rr))
        self._beats = [b for b in self._beats if b[0] > t0 - 0.6]
        times = np.array([b[0] for b in self._beats])
        rrs = np.array([b[1] for b in self._beats])
        return render_ecg(times, rrs, fs, t0, n, amplitude=self._amplitude)

    def _render_mitdb(self, t0: float, n: int) -> FloatArray:
        fs = self.rate_hz
        speeds = np.ones(n)
        t = t0 + np.arange(n) / fs
        for number, segment in enumerate(self._segments):
            if segment.end_s <= t0 or segment.start_s >= t[-1] + 1 / fs:
                continue
            inside = (t >= segment.start_s) & (t < segment.end_s)
            if segment.kind == AlertKind.IRREGULAR.value:
                speeds[inside] = self._irregular_speeds(t[inside])
            elif segment.kind in (AlertKind.TACHYCARDIA.value, AlertKind.BRADYCARDIA.value):
                if number not in self._episode_speeds:
                    span = segment.end_s - segment.start_s
                    speed = segment.bpm / self._local_bpm(span)
                    speed = segment.bpm / self._local_bpm(span * speed)
                    self._episode_speeds[number] = speed
                speeds[inside] = self._episode_speeds[number]
        positions = self._position + np.concatenate([[0.0], np.cumsum(speeds[:-1])])
        self._position = float(positions[-1] + speeds[-1])
        record = self._record
        wrapped = np.mod(positions, record.size - 1)
        return np.interp(wrapped, np.arange(record.size), record) * self._amplitude

    def _local_bpm(self, seconds: float) -> float:
        """The record's own rate over the next ``seconds`` of it from the playback position
        (median annotated RR interval)."""
        beats = self._record_beats
        start = float(np.mod(self._position, self._record.size - 1))
        lo, hi = np.searchsorted(beats, [start, start + seconds * self.rate_hz])
        window = beats[lo:hi] if hi - lo > 10 else beats[:30]
        return 60.0 * self.rate_hz / float(np.median(np.diff(window)))

    def _irregular_speeds(self, t: FloatArray) -> FloatArray:
        """Playback speed changing at random every 0.5–1 s: an irregular rhythm."""
        if not self._speed_starts or self._speed_starts[-1] < t[0] - 2.0:
            self._speed_starts, self._speed_values = [float(t[0])], [1.0]
        while self._speed_starts[-1] <= t[-1]:
            self._speed_starts.append(self._speed_starts[-1] + float(self._rng.uniform(0.5, 1.0)))
            self._speed_values.append(float(self._rng.uniform(0.75, 1.3)))
        index = np.searchsorted(np.asarray(self._speed_starts), t, side="right") - 1
        return np.asarray(self._speed_values, dtype=np.float64)[index]

    def _add_bad_signal(self, t: FloatArray, uv: FloatArray) -> FloatArray:
        for segment in self._segments:
            if segment.kind != NO_READING or segment.end_s <= t[0] or segment.start_s > t[-1]:
                continue
            inside = (t >= segment.start_s) & (t < segment.end_s)
            k = int(inside.sum())
            ts = t[inside]
            if segment.detail == "lead off":
                uv[inside] = _RAIL_UV
            elif segment.detail == "movement":
                uv[inside] += 1000 * (
                    3.0 * np.sin(2 * np.pi * 1.2 * ts) + 0.8 * self._rng.standard_normal(k)
                )
            else:  # muscle noise and mains interference
                uv[inside] += 1000 * (
                    1.0 * self._rng.standard_normal(k) + 1.0 * np.sin(2 * np.pi * 50 * ts)
                )
        return uv
