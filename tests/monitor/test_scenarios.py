"""Simulated devices: chunks as a device sends them, and ground truth the offline analysis agrees
with; the online analyzer raises exactly the injected episodes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from rekam.ecg import assess_signal_quality, detect_r_peaks
from rekam.ecg.rhythm import assess_irregularity
from rekam.monitor.device_analysis import DeviceAnalyzer
from rekam.monitor.events import AlertKind, AlertPhase, MonitorEvent, SignalQualityLevel
from rekam.monitor.packets import Packet
from rekam.monitor.scenarios import (
    NO_READING,
    GroundTruthEpisode,
    SampleChunk,
    Scenario,
    SimulatedDevice,
    mitdb_directory,
)
from support.ecg_stream import alerts, readings

SOURCES = ["synthetic", "mitdb"]
DURATION_S = 200.0


@pytest.fixture(autouse=True)
def _records_present(request: pytest.FixtureRequest) -> None:
    source = (
        request.node.callspec.params.get("source") if hasattr(request.node, "callspec") else None
    )
    if source == "mitdb" and not (mitdb_directory() / "100.hea").is_file():
        pytest.skip(f"MIT-BIH records not found in {mitdb_directory()}")


def device(scenario: str, source: str, seed: int = 1, rate: int = 250) -> SimulatedDevice:
    return SimulatedDevice(
        uuid.uuid4(),
        scenario,
        rate,
        rate // 10,
        seed=seed,
        source=source,  # type: ignore[arg-type]
        start_ms=1_767_225_600_000,
    )


def as_packets(d: SimulatedDevice, duration_s: float) -> Iterator[Packet]:
    for c in d.chunks(duration_s):
        yield Packet(d.device_id, c.sequence, c.timestamp_ms, c.rate, c.samples)


def test_chunks_are_what_a_device_sends() -> None:
    d = SimulatedDevice(uuid.uuid4(), "normal", 500, 40, seed=2, start_ms=1000)
    got: list[SampleChunk] = list(d.chunks(3.2))
    assert [c.sequence for c in got] == list(range(len(got)))
    assert all(c.rate == 500 and c.samples.dtype == np.int16 and c.samples.size == 40 for c in got)
    assert [c.timestamp_ms for c in got] == [1000 + 80 * k for k in range(len(got))]
    assert sum(c.samples.size for c in got) == 1600 and d.elapsed_s == 3.2
    # One int16 unit is 1 µV: an R wave is around a millivolt, i.e. several hundred units.
    x = np.concatenate([c.samples for c in got]).astype(float)
    assert 500 < np.ptp(x) < 5000


def test_same_seed_same_signal_other_seed_other_signal() -> None:
    a = device("mixed", "synthetic", seed=7).signal(60.0)
    b = device("mixed", "synthetic", seed=7).signal(60.0)
    c = device("mixed", "synthetic", seed=8).signal(60.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"125\.\.1000"):
        SimulatedDevice(uuid.uuid4(), "normal", 100)
    with pytest.raises(ValueError, match="samples per packet"):
        SimulatedDevice(uuid.uuid4(), "normal", 250, 0)
    with pytest.raises(ValueError, match="source"):
        SimulatedDevice(uuid.uuid4(), "normal", source="tape")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SimulatedDevice(uuid.uuid4(), "asystole")


def _interior(
    times: npt.NDArray[np.float64], start: float, end: float, margin: float = 2.0
) -> npt.NDArray[np.bool_]:
    return (times > start + margin) & (times < end - margin)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("scenario", [s.value for s in Scenario])
def test_ground_truth_matches_the_offline_analysis(scenario: str, source: str) -> None:
    d = device(scenario, source, seed=3)
    x = d.signal(DURATION_S).astype(np.float64) / 1000
    fs = d.rate_hz
    truth = d.ground_truth
    # Logged once started, in order, without overlaps.
    assert all(g.start_s < DURATION_S for g in truth)
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(truth))
    if scenario == "normal":
        assert truth == []
    else:
        kinds = {g.kind for g in truth}
        expected = {
            "brady": {"bradycardia"},
            "tachy": {"tachycardia"},
            "irregular": {"irregular"},
            "noisy": {NO_READING},
            "mixed": {"tachycardia", "bradycardia", NO_READING},
        }[scenario]
        assert expected <= kinds
    beats = detect_r_peaks(x, fs) / fs
    rr = np.diff(beats)
    t = beats[1:]
    bpm = 60.0 / rr
    quality = assess_signal_quality(x, fs)
    complete = [g for g in truth if g.end_s <= DURATION_S]
    normal = np.ones(t.size, dtype=bool)
    for g in truth:
        normal &= ~((t > g.start_s - 12) & (t < g.end_s + 12))
    for g in complete:
        inside = _interior(t, g.start_s, g.end_s)
        if g.kind in ("bradycardia", "tachycardia"):
            assert g.bpm is not None
            assert abs(np.median(bpm[inside]) - g.bpm) <= 0.06 * g.bpm, g
        elif g.kind == "irregular":
            assert assess_irregularity(rr[inside] * 1000, window_beats=20).is_irregular, g
        else:
            covered = quality.is_reliable(np.arange(g.start_s, g.end_s, 0.1))
            assert np.mean(~covered) >= 0.8, g
    # Outside the episodes the offline analysis sees a normal, regular rhythm with good signal.
    if normal.sum() > 30:
        assert 50 < np.median(bpm[normal]) < 100
        assert not assess_irregularity(rr[normal] * 1000, window_beats=20).is_irregular
        assert np.mean(bpm[normal] > 100) < 0.02 and np.mean(bpm[normal] < 50) < 0.02


def _run(d: SimulatedDevice, duration_s: float) -> tuple[DeviceAnalyzer, list[MonitorEvent]]:
    analyzer = DeviceAnalyzer(d.device_id)
    events: list[MonitorEvent] = []
    for packet in as_packets(d, duration_s):
        events.extend(analyzer.feed(packet))
    return analyzer, events


def _at_s(d: SimulatedDevice, time_ms: int) -> float:
    return (time_ms - d.start_ms) / 1000


@pytest.mark.parametrize(
    ("scenario", "kind", "source", "seed"),
    [
        ("tachy", "tachycardia", "synthetic", 5),
        ("brady", "bradycardia", "synthetic", 5),
        ("tachy", "tachycardia", "mitdb", 5),  # record 121
        ("tachy", "tachycardia", "mitdb", 3),  # record 100
        ("brady", "bradycardia", "mitdb", 5),
        ("brady", "bradycardia", "mitdb", 3),
    ],
)
def test_every_injected_episode_raises_one_alert(
    scenario: str, kind: str, source: str, seed: int
) -> None:
    d = device(scenario, source, seed=seed)
    _, events = _run(d, DURATION_S + 30)  # time for the last episode to end
    got = alerts(events)
    episodes = [g for g in d.ground_truth if g.end_s < DURATION_S]
    assert episodes and all(g.kind == kind for g in episodes)
    raised = [a for a in got if a.phase is AlertPhase.RAISED]
    assert all(a.kind is AlertKind(kind) for a in got), "no alert of another kind"
    ended = {a.episode_id for a in got if a.phase is AlertPhase.ENDED}
    for g in episodes:
        matching = [a for a in raised if abs(_at_s(d, a.started_ms) - g.start_s) <= 3.0]
        assert len(matching) == 1, (g, [(_at_s(d, a.started_ms), a.kind) for a in raised])
        alert = matching[0]
        assert alert.episode_id in ended
        assert g.bpm is not None and abs(alert.bpm - g.bpm) <= 0.1 * g.bpm
        # Confirmed after the minimum duration, while the episode lasts.
        assert g.start_s + 10 <= _at_s(d, alert.confirmed_ms) <= g.end_s
    # Nothing else: any other alert belongs to an episode still going on when the run stopped.
    later = [g for g in d.ground_truth if g.end_s >= DURATION_S]
    for alert in raised:
        start = _at_s(d, alert.started_ms)
        assert any(abs(start - g.start_s) <= 3.0 for g in episodes + later), start


@pytest.mark.parametrize(("source", "seed"), [("synthetic", 9), ("mitdb", 9), ("mitdb", 3)])
def test_normal_scenario_raises_nothing_for_minutes(source: str, seed: int) -> None:
    d = device("normal", source, seed=seed)
    analyzer, events = _run(d, 300.0)
    assert alerts(events) == []
    got = readings(events)
    assert len(got) > 250 and all(r.quality is SignalQualityLevel.GOOD for r in got)
    assert all(r.bpm is not None and 50 < r.bpm < 100 for r in got)
    assert analyzer.counters.discarded_beats == 0


@pytest.mark.parametrize("source", SOURCES)
def test_noisy_scenario_reports_no_reading_and_raises_nothing(source: str) -> None:
    d = device("noisy", source, seed=4)
    _, events = _run(d, DURATION_S)
    assert alerts(events) == []
    lost = [r for r in readings(events) if r.quality is SignalQualityLevel.NO_READING]
    for g in (g for g in d.ground_truth if g.end_s < DURATION_S):
        assert any(g.start_s - 1 <= _at_s(d, r.time_ms) <= g.end_s for r in lost), g


@pytest.mark.parametrize("source", SOURCES)
def test_irregular_scenario_is_flagged(source: str) -> None:
    d = device("irregular", source, seed=2)
    _, events = _run(d, DURATION_S)
    got = alerts(events)
    assert {a.kind for a in got} == {AlertKind.IRREGULAR}
    raised = [a for a in got if a.phase is AlertPhase.RAISED]
    complete = [g for g in d.ground_truth if g.end_s < DURATION_S - 5]
    assert complete
    for g in complete:
        starts = [_at_s(d, a.started_ms) for a in raised]
        assert sum(g.start_s - 1 <= s <= g.start_s + 8 for s in starts) == 1, (g, starts)
    assert len(raised) <= len(d.ground_truth)


def test_ground_truth_serialises() -> None:
    g = GroundTruthEpisode("tachycardia", 30.5, 60.0, 141.2)
    assert g.alerting and g.to_json()["kind"] == "tachycardia"
    assert not GroundTruthEpisode(NO_READING, 1.0, 2.0, None, "lead off").alerting


@pytest.mark.parametrize("rate", [125, 500, 1000])
def test_any_rate(rate: int) -> None:
    d = device("tachy", "synthetic", seed=6, rate=rate)
    _, events = _run(d, 70.0)
    first = d.ground_truth[0]
    raised = [a for a in alerts(events) if a.phase is AlertPhase.RAISED]
    assert len(raised) == 1 and abs(_at_s(d, raised[0].started_ms) - first.start_s) <= 3.0


def test_devices_simulated_together_render_their_signal_at_different_moments() -> None:
    # Rendering a block of signal costs far more than taking a packet from it. Devices that all
    # rendered at the same tick would stall the simulator there and then send in a burst.
    devices = [device("tachy", "synthetic", seed=n) for n in range(40)]
    renders_per_tick = []
    for _ in range(60):  # 6 s of 0.1 s packets
        before = [d._rendered for d in devices]
        for d in devices:
            d.next_chunk()
        renders_per_tick.append(sum(d._rendered != b for d, b in zip(devices, before, strict=True)))
    assert renders_per_tick[0] == 40  # every device renders its first block at its start
    assert sum(renders_per_tick[1:]) >= 80  # a block is 2 s: each renders again, twice or more
    assert max(renders_per_tick[1:]) <= 4  # but not at the same moments
