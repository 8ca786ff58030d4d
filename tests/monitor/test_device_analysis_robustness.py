"""DeviceAnalyzer on hostile input: whatever the packets hold, it neither crashes nor alerts; and
its quality measure agrees with the offline filters it stands in for."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from scipy import signal as sp_signal

from rekam.ecg.quality import QualityIssue
from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.events import SignalQualityLevel
from rekam.monitor.online_quality import OnlineSignalQuality
from rekam.monitor.packets import Packet
from support.ecg_stream import T0_MS, alerts, beats_at_rates, ecg_mv, packets, readings, run, to_uv


def test_random_packets_never_crash_and_never_alert() -> None:
    rng = np.random.default_rng(1)
    analyzer = DeviceAnalyzer(uuid.uuid4())
    sequence, clock = 0, T0_MS
    events = []
    for _ in range(3000):
        n = int(rng.integers(1, 500))
        rate = int(rng.choice([50, 125, 250, 250, 250, 360, 1000]))
        kind = rng.integers(4)
        if kind == 0:
            samples = rng.integers(-32768, 32767, n).astype(np.int16)
        elif kind == 1:
            samples = np.full(n, rng.choice([-32768, 0, 32767]), dtype=np.int16)
        elif kind == 2:
            samples = (rng.standard_normal(n) * 3000).astype(np.int16)
        else:
            samples = np.zeros(n, dtype=np.int16)
        sequence += int(rng.choice([1, 1, 1, 2, 0, -3, 1000]))
        clock += int(rng.choice([n * 1000 // rate, 0, -500, 10_000]))
        packet = Packet(analyzer.device_id, max(sequence, 0), max(clock, 0), rate, samples)
        events.extend(analyzer.feed(packet))
    assert alerts(events) == []
    assert all(r.bpm is None or 20 <= r.bpm <= 300 for r in readings(events))


def test_empty_packet_is_ignored() -> None:
    analyzer = DeviceAnalyzer(uuid.uuid4())
    empty = Packet(analyzer.device_id, 0, T0_MS, 250, np.zeros(0, dtype=np.int16))
    assert analyzer.feed(empty) == []


def test_constructor_limits() -> None:
    with pytest.raises(ValueError, match="at least one beat"):
        DeviceAnalyzer(uuid.uuid4(), average_beats=0)
    with pytest.raises(ValueError, match="strip"):
        DeviceAnalyzer(uuid.uuid4(), strip_seconds=0)


@pytest.mark.parametrize("average_beats", [5, 10, 15])
def test_moving_average_over_n_beats(average_beats: int) -> None:
    # 60 bpm, then 120 bpm: the k-th reading after the change averages k fast beats with
    # (N - k) slow ones, exactly as the published comparison of 5, 10 and 15 beats does.
    truth = beats_at_rates([(20.0, 60), (20.0, 120)])
    samples = to_uv(ecg_mv(truth, 250, 40.0, seed=average_beats))
    analyzer = DeviceAnalyzer(uuid.uuid4(), average_beats=average_beats)
    got = readings(run(analyzer, packets(analyzer.device_id, samples, 250)))
    # The beat at 20.5 s still ends a 1 s interval; the next one ends the first fast one.
    change = next(i for i, r in enumerate(got) if (r.time_ms - T0_MS) / 1000 > 20.75)
    for k in range(1, average_beats + 3):
        fast = min(k, average_beats)
        expected = (fast * 120 + (average_beats - fast) * 60) / average_beats
        assert got[change + k - 1].bpm == pytest.approx(expected, abs=1.0)


def test_high_frequency_measure_matches_a_40_hz_high_pass() -> None:
    rng = np.random.default_rng(3)
    fs = 250
    quality = OnlineSignalQuality(fs)
    sos = sp_signal.butter(6, 40, btype="highpass", fs=fs, output="sos")
    t = np.arange(2 * fs) / fs
    for scale in (0.01, 0.1, 0.5):
        x = 0.5 * np.sin(2 * np.pi * 1.1 * t) + scale * rng.standard_normal(t.size)
        reference = float(np.sqrt(np.mean(sp_signal.sosfiltfilt(sos, x) ** 2)))
        assert quality._high_frequency_rms(x) == pytest.approx(reference, rel=0.15)


def test_quality_verdicts_name_the_issue() -> None:
    fs = 250
    quality = OnlineSignalQuality(fs)
    truth = beats_at_rates([(30.0, 70)])
    x = ecg_mv(truth, fs, 30.0)
    x[10 * fs : 14 * fs] = 0.0
    x[20 * fs : 24 * fs] = 32.767
    verdicts = [v for i in range(0, x.size, 25) for v in quality.feed(x[i : i + 25])]
    issues = {v.issue for v in verdicts if v.end > 11.5 * fs and v.end < 14 * fs}
    assert issues == {QualityIssue.FLAT}
    issues = {v.issue for v in verdicts if v.end > 20.5 * fs and v.end < 24 * fs}
    assert issues == {QualityIssue.SATURATED}
    assert all(v.reliable for v in verdicts if 4 * fs < v.end < 10 * fs)


def test_no_reading_then_good_again() -> None:
    truth = beats_at_rates([(60.0, 70)])
    x = ecg_mv(truth, 250, 60.0, seed=4)
    x[20 * 250 : 30 * 250] = 0.0
    analyzer = DeviceAnalyzer(uuid.uuid4())
    got = readings(run(analyzer, packets(analyzer.device_id, to_uv(x), 250)))
    levels = [r.quality for r in got]
    first_lost = levels.index(SignalQualityLevel.NO_READING)
    assert SignalQualityLevel.GOOD in levels[first_lost:]
    assert analyzer.quality is SignalQualityLevel.GOOD
    assert analyzer.counters.detector_restarts == 1


def test_sequence_restart_after_re_pairing_starts_a_new_stretch() -> None:
    truth = beats_at_rates([(60.0, 75)])
    samples = to_uv(ecg_mv(truth, 250, 60.0, seed=12))
    analyzer = DeviceAnalyzer(uuid.uuid4())
    stream = list(packets(analyzer.device_id, samples, 250))
    # Re-paired at 30 s: the sequence numbers start again at 0, the clock goes on.
    renumbered = stream[:300] + [
        Packet(p.device_id, k, p.timestamp_ms, p.rate, p.samples)
        for k, p in enumerate(stream[300:])
    ]
    got = readings(run(analyzer, renumbered))
    assert analyzer.counters.restarts == 1 and analyzer.counters.late_packets == 0
    after = [r for r in got if r.bpm is not None and (r.time_ms - T0_MS) / 1000 > 30.0]
    assert after and (after[0].time_ms - T0_MS) / 1000 < 37.0
    assert all(r.bpm is None or abs(r.bpm - 75) <= 1.0 for r in got)
