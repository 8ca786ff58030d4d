"""Signal quality: leads off, flat, saturated and noisy stretches give no reliable reading."""

from __future__ import annotations

import numpy as np
import pytest

from rekam.ecg import (
    QualityIssue,
    RhythmClass,
    analyze_recording,
    assess_signal_quality,
    recording_from_samples,
)

from .conftest import beats_at_rate, synthetic_ecg

FS = 250.0


def ecg(duration: float = 90.0, bpm: float = 70) -> np.ndarray:
    return synthetic_ecg(beats_at_rate(bpm, duration), FS, duration)


def test_clean_signal_is_reliable() -> None:
    assert assess_signal_quality(ecg(), FS).segments == ()


def test_leads_off_gives_no_reliable_reading_rather_than_bradycardia() -> None:
    x = ecg()
    x[round(30 * FS) : round(60 * FS)] = 0.0  # electrode off: flat line for 30 s
    analysis = analyze_recording(recording_from_samples(x, FS))
    segments = analysis.quality.segments
    assert [s.issue for s in segments] == [QualityIssue.FLAT]
    assert segments[0].start_s == pytest.approx(30, abs=1) and segments[0].end_s == pytest.approx(
        60, abs=1
    )
    kinds = [e.kind for e in analysis.episodes]
    assert RhythmClass.NO_READING in kinds
    assert RhythmClass.BRADYCARDIA not in kinds
    summary = analysis.summary_bpm()
    assert summary is not None and summary[1] > 65  # no false low rate across the gap


def test_saturation_and_absurd_values_are_flagged() -> None:
    x = ecg()
    x[round(20 * FS) : round(25 * FS)] = x.max() + 3.0  # amplifier stuck at its rail
    x[round(50 * FS) : round(51 * FS)] += 40.0  # 40 mV is not a surface ECG
    issues = {s.issue for s in assess_signal_quality(x, FS).segments}
    assert QualityIssue.SATURATED in issues


def test_heavy_noise_is_flagged() -> None:
    x = ecg()
    rng = np.random.default_rng(3)
    x[round(40 * FS) : round(50 * FS)] += 1.5 * rng.standard_normal(round(10 * FS))
    segments = assess_signal_quality(x, FS).segments
    noisy = [s for s in segments if s.issue is QualityIssue.NOISE]
    assert noisy and noisy[0].start_s >= 38 and noisy[-1].end_s <= 52
