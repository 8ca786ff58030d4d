"""Rhythm classification: rate classes, hysteresis, minimum duration, irregularity."""

from __future__ import annotations

import numpy as np
import pytest

from rekam.ecg import (
    InvalidParameterError,
    RhythmClass,
    RhythmThresholds,
    analyze_recording,
    assess_irregularity,
    classify_rhythm,
    heart_rate_series,
    recording_from_samples,
)

from .conftest import beats_at_rate, synthetic_ecg


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
def test_synthetic_rates_are_classified(bpm: float, expected: RhythmClass) -> None:
    fs, duration = 250.0, 60.0
    x = synthetic_ecg(beats_at_rate(bpm, duration), fs, duration, seed=bpm)
    analysis = analyze_recording(recording_from_samples(x, fs))
    summary = analysis.summary_bpm()
    assert summary is not None
    assert summary[0] == pytest.approx(bpm, abs=0.5)
    kinds = [e.kind for e in analysis.episodes if e.duration_s > 15]
    assert kinds == [expected]


def series_from_rates(rates: list[tuple[float, float]], fs: float = 250.0):  # type: ignore[no-untyped-def]
    """Beats for consecutive (duration s, bpm) stretches."""
    beats = [0.0]
    for duration, bpm in rates:
        end = beats[-1] + duration
        while beats[-1] + 60.0 / bpm <= end:
            beats.append(beats[-1] + 60.0 / bpm)
    return heart_rate_series(np.round(np.array(beats) * fs).astype(np.int64), fs, window=1)


def test_a_single_ectopic_beat_does_not_raise_an_alarm() -> None:
    # 60 bpm with one premature beat: a 0.4 s RR (150 bpm) then a compensatory pause (37 bpm).
    fs = 250.0
    times = [*np.arange(0, 30, 1.0), 30.4, *np.arange(31.6, 60, 1.0)]
    series = heart_rate_series(np.round(np.array(times) * fs).astype(np.int64), fs, window=1)
    episodes = classify_rhythm(series, RhythmThresholds(min_duration_s=5))
    assert [e.kind for e in episodes] == [RhythmClass.NORMAL]


def test_minimum_duration_decides_whether_an_episode_counts() -> None:
    series = series_from_rates([(60, 70), (8, 120), (60, 70)])
    short = classify_rhythm(series, RhythmThresholds(min_duration_s=10))
    assert [e.kind for e in short] == [RhythmClass.NORMAL]
    long = classify_rhythm(series, RhythmThresholds(min_duration_s=5))
    assert [e.kind for e in long] == [
        RhythmClass.NORMAL,
        RhythmClass.TACHYCARDIA,
        RhythmClass.NORMAL,
    ]
    tachy = long[1]
    assert tachy.start_s == pytest.approx(60, abs=1.0)  # dated from its onset
    assert tachy.mean_bpm == pytest.approx(120, abs=1)


def test_hysteresis_keeps_an_episode_until_the_rate_clearly_recovers() -> None:
    # 45 bpm, then 52 bpm (above 50, below 50 + 5): still bradycardia; then 60 bpm: over.
    series = series_from_rates([(60, 70), (60, 45), (60, 52), (60, 60)])
    th = RhythmThresholds(brady_bpm=50, hysteresis_bpm=5, min_duration_s=5)
    kinds = [(e.kind, round(e.start_s)) for e in classify_rhythm(series, th)]
    assert [k for k, _ in kinds] == [
        RhythmClass.NORMAL,
        RhythmClass.BRADYCARDIA,
        RhythmClass.NORMAL,
    ]
    assert 175 <= kinds[2][1] <= 185
    no_hysteresis = RhythmThresholds(brady_bpm=50, hysteresis_bpm=0, min_duration_s=5)
    starts = [round(e.start_s) for e in classify_rhythm(series, no_hysteresis)]
    assert 115 <= starts[2] <= 125


def test_thresholds_are_per_patient_and_validated() -> None:
    series = series_from_rates([(120, 55)])
    athlete = RhythmThresholds(brady_bpm=40, min_duration_s=5)
    assert [e.kind for e in classify_rhythm(series, athlete)] == [RhythmClass.NORMAL]
    cautious = RhythmThresholds(brady_bpm=60, min_duration_s=5)
    assert RhythmClass.BRADYCARDIA in [e.kind for e in classify_rhythm(series, cautious)]
    with pytest.raises(InvalidParameterError):
        RhythmThresholds(brady_bpm=120, tachy_bpm=100)


def test_irregularity_separates_regular_from_chaotic_rr() -> None:
    rng = np.random.default_rng(1)
    regular = 800 + 15 * rng.standard_normal(300)
    chaotic = rng.uniform(400, 1200, 300)
    assert not assess_irregularity(regular).is_irregular
    assert assess_irregularity(chaotic).is_irregular
