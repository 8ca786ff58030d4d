"""Test signals for the online analysis: ECG with beats where a test puts them, in packets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from uuid import UUID

import numpy as np
import numpy.typing as npt

from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.events import AlertEvent, HeartRateReading, MonitorEvent
from rekam.monitor.packets import Packet
from rekam.monitor.synthetic_ecg import render_ecg

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def beats_at_rates(
    segments: Sequence[tuple[float, float]], start_s: float = 0.5
) -> npt.NDArray[np.float64]:
    """R-peak times for consecutive ``(duration_s, bpm)`` segments."""
    times: list[float] = []
    t = start_s
    end = 0.0
    for duration, bpm in segments:
        end += duration
        while t < end:
            times.append(t)
            t += 60.0 / bpm
    return np.asarray(times)


def ecg_mv(
    beat_times_s: npt.NDArray[np.float64],
    fs: float,
    duration_s: float,
    *,
    noise_mv: float = 0.01,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """PQRST beats at the given times with mild noise and baseline wander (mV)."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * fs)
    rr = np.diff(np.concatenate([[beat_times_s[0] - 1.0], beat_times_s]))
    x = render_ecg(beat_times_s, rr, fs, 0.0, n)
    t = np.arange(n) / fs
    return x + 0.1 * np.sin(2 * np.pi * 0.2 * t) + noise_mv * rng.standard_normal(n)


def to_uv(x_mv: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.asarray(np.clip(np.round(x_mv * 1000), -32768, 32767).astype(np.int16))


def packets(
    device_id: UUID,
    samples_uv: npt.NDArray[np.int16],
    fs: int,
    per_packet: int = 25,
    *,
    t0_ms: int = T0_MS,
    first_sequence: int = 0,
) -> Iterator[Packet]:
    """Packets as a device sends them: consecutive sequences, timestamp of the first sample."""
    for k, i in enumerate(range(0, samples_uv.size, per_packet)):
        yield Packet(
            device_id,
            first_sequence + k,
            t0_ms + (i * 1000) // fs,
            fs,
            samples_uv[i : i + per_packet],
        )


def run(analyzer: DeviceAnalyzer, stream: Iterable[Packet]) -> list[MonitorEvent]:
    events: list[MonitorEvent] = []
    for packet in stream:
        events.extend(analyzer.feed(packet))
    return events


def alerts(events: Iterable[MonitorEvent]) -> list[AlertEvent]:
    return [e for e in events if isinstance(e, AlertEvent)]


def readings(events: Iterable[MonitorEvent]) -> list[HeartRateReading]:
    return [e for e in events if isinstance(e, HeartRateReading)]


def bpm_of(reading: HeartRateReading) -> float:
    """The rate of a reading that has one."""
    assert reading.bpm is not None, "this reading has no rate"
    return reading.bpm
