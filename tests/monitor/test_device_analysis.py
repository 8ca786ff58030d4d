"""DeviceAnalyzer: beats, heart rate, rhythm, quality and alerts, packet by packet."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sp_signal

from rekam.ecg import detect_r_peaks, read_wfdb
from rekam.ecg.rhythm import RhythmClass, RhythmThresholds
from rekam.ecg.rpeaks import RPeakDetector
from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.events import AlertKind, AlertPhase, MonitorEvent, SignalQualityLevel
from rekam.monitor.packets import Packet
from support.ecg_stream import (
    T0_MS,
    alerts,
    beats_at_rates,
    bpm_of,
    ecg_mv,
    packets,
    readings,
    run,
    to_uv,
)

FS = 250
MITDB = Path(__file__).resolve().parents[2].parent / "shared/data/ecg/mitdb"


def analyse(
    segments: Sequence[tuple[float, float]],
    *,
    fs: int = FS,
    thresholds: RhythmThresholds | None = None,
    seed: int = 0,
) -> tuple[DeviceAnalyzer, list[MonitorEvent], np.ndarray]:
    truth = beats_at_rates(segments)
    duration = sum(d for d, _ in segments)
    samples = to_uv(ecg_mv(truth, fs, duration, seed=seed))
    analyzer = DeviceAnalyzer(uuid.uuid4(), thresholds)
    events = run(analyzer, packets(analyzer.device_id, samples, fs, max(1, fs // 10)))
    return analyzer, list(events), truth


def at_s(time_ms: int) -> float:
    return (time_ms - T0_MS) / 1000


@pytest.mark.parametrize(
    ("bpm", "expected"),
    [
        (40, RhythmClass.BRADYCARDIA),
        (48, RhythmClass.BRADYCARDIA),
        (60, RhythmClass.NORMAL),
        (99, RhythmClass.NORMAL),
        (101, RhythmClass.TACHYCARDIA),
        (150, RhythmClass.TACHYCARDIA),
    ],
)
def test_steady_rates_are_classified_online(bpm: float, expected: RhythmClass) -> None:
    analyzer, events, truth = analyse([(40.0, bpm)], seed=int(bpm))
    got = readings(events)
    # One reading per beat after the detector's 4 s of learning, each on a true beat.
    reading_times = np.array([at_s(r.time_ms) for r in got])
    assert np.min(np.abs(reading_times[:, None] - truth[None, :]), axis=1).max() <= 0.012
    assert len(got) >= truth.size - 4 / (60 / bpm) - 2
    assert all(r.quality is SignalQualityLevel.GOOD and not r.irregular for r in got)
    assert all(abs(bpm_of(r) - bpm) <= 0.5 for r in got if r.bpm is not None)
    assert got[-1].rhythm == expected.value
    assert analyzer.rhythm is expected
    raised = alerts(events)
    if expected is RhythmClass.NORMAL:
        assert raised == []
    else:
        (alert,) = raised
        kind = AlertKind.TACHYCARDIA if bpm > 100 else AlertKind.BRADYCARDIA
        assert (alert.kind, alert.phase) == (kind, AlertPhase.RAISED)
        assert abs(alert.bpm - bpm) <= 0.5
        assert alert.started_ms == got[0].time_ms  # the whole record is the episode
        # Confirmed by the first beat at least 10 s (the minimum duration) after the start.
        first_after = min(r.time_ms for r in got if r.time_ms - alert.started_ms >= 10_000)
        assert alert.confirmed_ms == first_after


@pytest.mark.parametrize("fs", [125, 360, 1000])
def test_any_rate_from_125_to_1000_hz(fs: int) -> None:
    _, events, _ = analyse([(20.0, 70), (25.0, 150)], fs=fs, seed=fs)
    (alert,) = alerts(events)
    assert alert.kind is AlertKind.TACHYCARDIA
    assert 20.0 <= at_s(alert.started_ms) <= 23.0
    assert alert.strip is not None and alert.strip.rate_hz == fs


def test_episode_start_end_and_hysteresis() -> None:
    # 110 bpm is tachycardia; 97 bpm is below the limit but inside the 5 bpm hysteresis, so the
    # episode goes on; 90 bpm ends it after the minimum duration.
    analyzer, events, _ = analyse([(30.0, 65), (30.0, 110), (30.0, 97), (30.0, 90)])
    got = alerts(events)
    assert [(a.kind, a.phase) for a in got] == [
        (AlertKind.TACHYCARDIA, AlertPhase.RAISED),
        (AlertKind.TACHYCARDIA, AlertPhase.ENDED),
    ]
    raised, ended = got
    assert raised.episode_id == ended.episode_id
    assert 30.0 <= at_s(raised.started_ms) <= 33.0
    # Confirmed once the 10-beat average has stayed above the limit for 10 s; the episode is
    # dated from its first fast beat, before the average caught up.
    assert 30.0 <= at_s(raised.started_ms) <= 31.0
    assert 10.0 <= at_s(raised.confirmed_ms) - at_s(raised.started_ms) <= 15.0
    assert ended.ended_ms is not None and 90.0 <= at_s(ended.ended_ms) <= 93.0
    assert at_s(ended.confirmed_ms) >= 100.0 or ended.confirmed_ms == raised.confirmed_ms
    assert analyzer.rhythm is RhythmClass.NORMAL


def test_episode_shorter_than_the_minimum_duration_raises_nothing() -> None:
    # With a 10-beat average, 5 s at 150 bpm keeps the average above 100 bpm for about 8.5 s.
    _, events, _ = analyse([(30.0, 70), (5.0, 150), (30.0, 70), (4.0, 35), (30.0, 70)])
    assert alerts(events) == []
    assert {r.rhythm for r in readings(events)} == {RhythmClass.NORMAL.value}


def test_longer_episode_is_raised_once_and_updated_when_faster() -> None:
    segments = [(30.0, 70.0), (20.0, 120.0), (20.0, 140.0), (20.0, 165.0), (30.0, 70.0)]
    truth = beats_at_rates(segments)
    samples = to_uv(ecg_mv(truth, FS, 120.0))
    analyzer = DeviceAnalyzer(uuid.uuid4())
    events: list[MonitorEvent] = []
    update_packets_ms: list[int] = []
    for packet in packets(analyzer.device_id, samples, FS):
        new = analyzer.feed(packet)
        events += new
        update_packets_ms += [
            packet.timestamp_ms for a in alerts(new) if a.phase.value == "updated"
        ]
    assert all(b - a >= 4900 for a, b in itertools.pairwise(update_packets_ms))
    got = alerts(events)
    phases = [a.phase for a in got]
    assert phases[0] is AlertPhase.RAISED and phases[-1] is AlertPhase.ENDED
    assert phases.count(AlertPhase.RAISED) == 1 and phases.count(AlertPhase.ENDED) == 1
    updates = [a for a in got if a.phase is AlertPhase.UPDATED]
    assert updates, "the rate rose from 120 to 165 bpm within the episode"
    assert len({a.episode_id for a in got}) == 1
    rates = [a.bpm for a in updates]
    assert rates == sorted(rates) and rates[-1] >= 160
    # At most one update per 5 s of device time.
    assert all(b.confirmed_ms == a.confirmed_ms for a, b in itertools.pairwise(got))
    assert got[-1].bpm >= 160 and got[0].strip is not None
    assert all(a.strip is None for a in got[1:])


def test_one_ectopic_beat_raises_no_alert() -> None:
    truth = list(beats_at_rates([(120.0, 60)]))
    for k in (30, 60, 90):  # premature beats at 40 % of the RR, then a compensatory pause
        truth[k] = truth[k - 1] + 0.4
    beats = np.asarray(truth)
    samples = to_uv(ecg_mv(beats, FS, 120.0, seed=3))
    analyzer = DeviceAnalyzer(uuid.uuid4(), RhythmThresholds(min_duration_s=5.0))
    events = run(analyzer, packets(analyzer.device_id, samples, FS))
    assert alerts(events) == []
    assert not any(r.irregular for r in readings(events))


def test_irregular_rhythm_is_flagged_and_alerted() -> None:
    rng = np.random.default_rng(5)
    rr = np.concatenate([np.full(30, 0.8), rng.uniform(0.55, 1.05, 90)])
    truth = 0.5 + np.concatenate([[0.0], np.cumsum(rr)])
    duration = float(truth[-1] + 1.0)
    samples = to_uv(ecg_mv(truth, FS, duration, seed=5))
    analyzer = DeviceAnalyzer(uuid.uuid4())
    events = run(analyzer, packets(analyzer.device_id, samples, FS))
    got = alerts(events)
    assert [(a.kind, a.phase) for a in got] == [(AlertKind.IRREGULAR, AlertPhase.RAISED)]
    # The regular beginning (30 intervals of 0.8 s, to 24.5 s) is not part of it, and the start
    # is dated from the first irregular beat, not from when 30 intervals had shown it.
    assert 24.0 <= at_s(got[0].started_ms) <= 26.0
    assert readings(events)[-1].irregular


def _with_bad_stretch(kind: str, seed: int = 11) -> tuple[list[MonitorEvent], np.ndarray]:
    truth = beats_at_rates([(90.0, 72)])
    x = ecg_mv(truth, FS, 90.0, seed=seed)
    lo, hi = 30 * FS, 45 * FS
    rng = np.random.default_rng(seed)
    if kind == "leads off (saturated)":
        x[lo:hi] = 32.767
    elif kind == "flat":
        x[lo:hi] = 0.0
    elif kind == "noise":
        t = np.arange(hi - lo) / FS
        x[lo:hi] += (
            3.0 * np.sin(2 * np.pi * 1.3 * t)
            + 0.6 * rng.standard_normal(hi - lo)
            + 0.8 * np.sin(2 * np.pi * 50 * t)
        )
    elif kind == "spikes":  # motion artefact: sharp steep spikes at 3 per second
        for p in np.arange(lo, hi, FS // 3):
            x[p : p + 4] += rng.uniform(2.0, 6.0)
    elif kind == "absurd":
        x[lo:hi] = rng.integers(-32768, 32767, hi - lo) / 1000
    analyzer = DeviceAnalyzer(uuid.uuid4(), RhythmThresholds(min_duration_s=3.0))
    events = run(analyzer, packets(analyzer.device_id, to_uv(x), FS))
    return events, truth


@pytest.mark.parametrize("kind", ["leads off (saturated)", "flat", "noise", "spikes", "absurd"])
def test_unreliable_signal_gives_no_reading_and_no_alert(kind: str) -> None:
    events, truth = _with_bad_stretch(kind)
    assert alerts(events) == []
    got = readings(events)
    lost = [r for r in got if r.quality is SignalQualityLevel.NO_READING]
    assert lost and all(r.bpm is None and r.rhythm == "no reliable reading" for r in lost)
    assert 29.0 <= at_s(lost[0].time_ms) <= 33.0
    # Every rate reported is a true rate on true beats: nothing from the bad stretch, except
    # that an artefact at its very start may pass for one beat before the window shows it.
    rated = [r for r in got if r.bpm is not None]
    inside = [r for r in rated if 30.0 <= at_s(r.time_ms) <= 45.0]
    assert len(inside) <= 1 and all(40 < bpm_of(r) < 100 for r in inside)
    outside = [r for r in rated if r not in inside]
    assert all(abs(bpm_of(r) - 72) <= 1.0 for r in outside)
    times = np.array([at_s(r.time_ms) for r in outside])
    assert np.min(np.abs(times[:, None] - truth[None, :]), axis=1).max() <= 0.012
    # Readings resume within a few seconds after the signal comes back.
    after = [r for r in rated if at_s(r.time_ms) > 45.0]
    assert after and at_s(after[0].time_ms) <= 52.0
    assert after[-1].quality is SignalQualityLevel.GOOD


def test_lost_packets_make_no_false_beats_and_no_alert() -> None:
    truth = beats_at_rates([(120.0, 75)])
    samples = to_uv(ecg_mv(truth, FS, 120.0, seed=2))
    analyzer = DeviceAnalyzer(uuid.uuid4(), RhythmThresholds(min_duration_s=2.0))
    stream = [p for p in packets(analyzer.device_id, samples, FS) if p.sequence % 53 != 7]
    lost_two = [p for p in stream if p.sequence not in (500, 501, 502)]  # 0.3 s at once
    events = run(analyzer, lost_two)
    assert alerts(events) == []
    rated = [r for r in readings(events) if r.bpm is not None]
    assert len(rated) > 0.5 * truth.size
    assert all(abs(bpm_of(r) - 75) <= 1.0 for r in rated)
    times = np.array([at_s(r.time_ms) for r in rated])
    assert np.min(np.abs(times[:, None] - truth[None, :]), axis=1).max() <= 0.012
    assert analyzer.counters.bridged_gaps > 10 and analyzer.counters.restarts == 0


def test_long_gap_restarts_and_late_packets_are_dropped() -> None:
    truth = beats_at_rates([(60.0, 80)])
    samples = to_uv(ecg_mv(truth, FS, 60.0, seed=4))
    analyzer = DeviceAnalyzer(uuid.uuid4(), RhythmThresholds(min_duration_s=2.0))
    stream = list(packets(analyzer.device_id, samples, FS))
    kept = stream[:200] + stream[250:]  # 5 s lost
    kept.insert(260, stream[240])  # a late packet from inside the gap
    events = run(analyzer, kept)
    assert alerts(events) == []
    assert analyzer.counters.restarts == 1 and analyzer.counters.late_packets == 1
    rated = [r for r in readings(events) if r.bpm is not None]
    assert all(abs(bpm_of(r) - 80) <= 1.0 for r in rated)
    times = np.array([at_s(r.time_ms) for r in rated])
    assert np.min(np.abs(times[:, None] - truth[None, :]), axis=1).max() <= 0.012
    assert not any(20.0 < t < 25.0 for t in times)
    assert any(t > 35.0 for t in times)


def test_unsupported_rate_and_clock_jump_are_handled() -> None:
    analyzer = DeviceAnalyzer(uuid.uuid4())
    samples = np.zeros(25, dtype=np.int16)
    events = analyzer.feed(Packet(analyzer.device_id, 0, T0_MS, 100, samples))
    (reading,) = readings(events)
    assert reading.quality is SignalQualityLevel.NO_READING and reading.bpm is None
    assert analyzer.counters.unsupported_rate_packets == 1
    truth = beats_at_rates([(40.0, 130)])
    x = to_uv(ecg_mv(truth, FS, 40.0, seed=8))
    stream = list(packets(analyzer.device_id, x, FS, first_sequence=1))
    # The device clock jumps by an hour mid-stream: a new stretch, not a 1-hour RR interval.
    jumped = stream[:150] + [
        Packet(p.device_id, p.sequence, p.timestamp_ms + 3_600_000, p.rate, p.samples)
        for p in stream[150:]
    ]
    events = run(analyzer, jumped)
    assert analyzer.counters.restarts >= 1
    assert all(r.bpm is None or abs(bpm_of(r) - 130) <= 1 for r in readings(events))


def test_thresholds_are_per_patient_and_settable() -> None:
    segments = [(40.0, 95.0)]
    _, default_events, _ = analyse(segments)
    assert alerts(default_events) == []
    strict = RhythmThresholds(brady_bpm=45, tachy_bpm=90, hysteresis_bpm=3, min_duration_s=5)
    _, strict_events, _ = analyse(segments, thresholds=strict)
    assert [a.kind for a in alerts(strict_events)] == [AlertKind.TACHYCARDIA]
    analyzer = DeviceAnalyzer(uuid.uuid4())
    truth = beats_at_rates(segments)
    stream = list(packets(analyzer.device_id, to_uv(ecg_mv(truth, FS, 40.0)), FS))
    assert alerts(run(analyzer, stream[:100])) == []
    analyzer.thresholds = strict
    assert [a.kind for a in alerts(run(analyzer, stream[100:]))] == [AlertKind.TACHYCARDIA]


def test_alert_strip_is_the_ecg_that_was_sent() -> None:
    truth = beats_at_rates([(15.0, 70), (20.0, 150)])
    samples = to_uv(ecg_mv(truth, FS, 35.0, seed=6))
    analyzer = DeviceAnalyzer(uuid.uuid4(), RhythmThresholds(min_duration_s=5.0))
    events = run(analyzer, packets(analyzer.device_id, samples, FS))
    (alert,) = alerts(events)
    strip = alert.strip
    assert strip is not None and len(strip.samples_uv) == 6 * FS
    first = round((strip.start_ms - T0_MS) * FS / 1000)
    np.testing.assert_array_equal(strip.samples_uv, samples[first : first + 6 * FS])
    # The confirming beat lies inside the strip, near its end (detector latency 0.45 s).
    end_ms = strip.start_ms + 6000
    assert strip.start_ms < alert.confirmed_ms < end_ms
    assert end_ms - alert.confirmed_ms <= 1000 * RPeakDetector(FS).latency_s + 100


def test_beats_are_reported_within_the_detector_latency() -> None:
    truth = beats_at_rates([(30.0, 90)])
    samples = to_uv(ecg_mv(truth, FS, 30.0, seed=9))
    analyzer = DeviceAnalyzer(uuid.uuid4())
    delays = []
    for packet in packets(analyzer.device_id, samples, FS):
        end_ms = packet.timestamp_ms + packet.samples.size * 1000 // FS
        got = readings(analyzer.feed(packet))
        # Beats are reported from the end of the detector's 4 s of learning.
        delays += [end_ms - r.time_ms for r in got if r.time_ms - T0_MS > 4500]
    assert delays
    assert max(delays) <= 1000 * RPeakDetector(FS).latency_s + 100  # + one packet


def _mitdb(record: str, seconds: float, fs_out: int | None) -> tuple[np.ndarray, int]:
    if not (MITDB / f"{record}.hea").is_file():
        pytest.skip(f"MIT-BIH record {record} not found in {MITDB}")
    recording = read_wfdb(MITDB / record)
    x = recording.lead(0)[: round(seconds * recording.fs)]
    fs = int(recording.fs)
    if fs_out is not None:
        x = sp_signal.resample_poly(x, fs_out, fs)
        fs = fs_out
    return to_uv(x), fs


@pytest.mark.parametrize(
    ("record", "fs_out"), [("100", 250), ("105", 250), ("200", 250), ("119", None)]
)
def test_online_beats_equal_offline_beats_on_mitdb(record: str, fs_out: int | None) -> None:
    samples, fs = _mitdb(record, 300.0, fs_out)
    analyzer = DeviceAnalyzer(uuid.uuid4())
    online: list[np.ndarray] = []
    for packet in packets(analyzer.device_id, samples, fs, fs // 10):
        analyzer.feed(packet)
        online.append(analyzer.beats_in_last_packet)
    offline = detect_r_peaks(samples.astype(np.float64) / 1000, fs)
    streamed = np.concatenate(online)
    # Streaming cannot see past its last sample: the beats of the last 0.5 s come at flush only.
    assert streamed.size >= offline.size - 1
    np.testing.assert_array_equal(streamed, offline[: streamed.size])


def _comparable(event: MonitorEvent) -> object:
    """An event without its random episode id (a new uuid4 per episode)."""
    data = event.to_json()
    data.pop("episode_id", None)
    return data


def test_devices_analysed_together_give_each_the_events_it_gets_alone() -> None:
    """The gateway analyses the packets of many devices in one call (feed_many). Every device
    must get exactly the events it gets when fed packet by packet: every scenario, three rates,
    lost packets, calls holding several packets of one device, devices missing from a call."""
    from rekam.monitor.scenarios import SimulatedDevice

    rng = np.random.default_rng(5)
    streams: list[list[Packet]] = []
    kinds = ("normal", "brady", "tachy", "irregular", "noisy", "mixed")
    for n in range(18):
        rate, per_packet = ((250, 25), (125, 25), (500, 50))[n % 3]
        device = SimulatedDevice(
            uuid.uuid4(), kinds[n % len(kinds)], rate, per_packet, seed=n, start_ms=1_000_000
        )
        packets = [
            Packet(device.device_id, c.sequence, c.timestamp_ms, c.rate, c.samples)
            for c in device.chunks(90.0)
        ]
        if n % 4 == 1:  # a few lost packets
            packets = [p for p in packets if rng.random() > 0.01]
        streams.append(packets)
    alone: list[list[object]] = []
    for packets in streams:
        analyzer = DeviceAnalyzer(packets[0].device_id)
        alone.append([_comparable(e) for p in packets for e in analyzer.feed(p)])
    analyzers = [DeviceAnalyzer(packets[0].device_id) for packets in streams]
    together: list[list[object]] = [[] for _ in streams]
    positions = [0] * len(streams)
    while any(pos < len(s) for pos, s in zip(positions, streams, strict=True)):
        owners: list[int] = []
        for i, packets in enumerate(streams):
            take = min(int(rng.choice([0, 1, 1, 1, 2, 3])), len(packets) - positions[i])
            owners.extend([i] * take)
        owners = [int(i) for i in rng.permutation(owners)]  # devices interleaved in the call
        batch: list[Packet] = []
        for i in owners:  # each device's own packets stay in their order
            batch.append(streams[i][positions[i]])
            positions[i] += 1
        results = DeviceAnalyzer.feed_many([analyzers[i] for i in owners], batch)
        for i, events in zip(owners, results, strict=True):
            together[i].extend(_comparable(e) for e in events)
    assert sum(len(a) for a in alone) > 1000
    assert any(isinstance(e, dict) and e.get("type") == "alert" for a in alone for e in a), (
        "the scenarios raise alerts"
    )
    for i in range(len(streams)):
        assert together[i] == alone[i], f"device {i} differs when analysed with others"


def test_compacting_an_analysis_changes_nothing() -> None:
    """compact() gives an analysis's buffers arrays of their own; the events that follow are
    those of a twin never compacted."""
    from rekam.monitor.scenarios import SimulatedDevice

    def fleet() -> list[DeviceAnalyzer]:
        return [DeviceAnalyzer(uuid.UUID(int=n + 1)) for n in range(4)]

    streams = []
    for n in range(4):
        device = SimulatedDevice(uuid.UUID(int=n + 1), "mixed", 250, 25, seed=n, start_ms=10**6)
        streams.append(
            [
                Packet(device.device_id, c.sequence, c.timestamp_ms, c.rate, c.samples)
                for c in device.chunks(60.0)
            ]
        )
    compacted, twins = fleet(), fleet()
    got: list[list[object]] = [[] for _ in streams]
    expected: list[list[object]] = [[] for _ in streams]
    for tick in range(len(streams[0])):
        batch = [s[tick] for s in streams]
        for i, events in enumerate(DeviceAnalyzer.feed_many(compacted, batch)):
            got[i].extend(_comparable(e) for e in events)
        for i, events in enumerate(DeviceAnalyzer.feed_many(twins, batch)):
            expected[i].extend(_comparable(e) for e in events)
        if tick % 37 == 5:
            for analyzer in compacted[:2]:
                analyzer.compact()
                stretch = analyzer._stretch
                assert stretch is not None
                for array in (stretch.detector._env, stretch.detector._level, stretch.quality._raw):
                    assert array.base is None
    assert sum(len(g) for g in got) > 100
    assert got == expected
