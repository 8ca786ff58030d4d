"""One call from a recording to beats, heart rate, rhythm episodes and signal quality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.heart_rate import DEFAULT_AVERAGE_BEATS, HeartRateSeries, heart_rate_series
from rekam.ecg.quality import SignalQuality, assess_signal_quality
from rekam.ecg.recording import Recording
from rekam.ecg.rhythm import (
    Irregularity,
    RhythmEpisode,
    RhythmThresholds,
    assess_irregularity,
    classify_rhythm,
)
from rekam.ecg.rpeaks import detect_r_peaks

__all__ = ["EcgAnalysis", "analyze_recording", "reliable_heart_rate"]

IndexArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class EcgAnalysis:
    """What the analysis of one lead found."""

    name: str
    lead: str
    fs: float
    duration_s: float
    beats: IndexArray
    """R-peak sample indices (all detections, including inside unreliable stretches)."""
    heart_rate: HeartRateSeries
    """Heart rate from reliable stretches only."""
    quality: SignalQuality
    episodes: tuple[RhythmEpisode, ...]
    irregularity: Irregularity

    @property
    def beat_times_s(self) -> npt.NDArray[np.float64]:
        return self.beats / self.fs

    def summary_bpm(self) -> tuple[float, float, float] | None:
        """Mean, minimum and maximum of the averaged heart rate, or None with no reading."""
        values = self.heart_rate.average_bpm
        if values.size == 0:
            return None
        return float(values.mean()), float(values.min()), float(values.max())


def reliable_heart_rate(
    beats: IndexArray, fs: float, quality: SignalQuality, window: int = DEFAULT_AVERAGE_BEATS
) -> HeartRateSeries:
    """Heart rate computed separately on each stretch of reliable signal.

    Beats inside unreliable stretches are ignored, and no RR interval spans one, so a lead that
    falls off gives no rate rather than a false bradycardia.
    """
    b = np.asarray(beats, dtype=np.int64)
    times = b / fs
    ok = quality.is_reliable(times)
    starts = np.array([seg.start_s for seg in quality.segments])
    run = np.searchsorted(starts, times, side="right")  # stretch number of each beat
    parts: list[HeartRateSeries] = []
    for r in np.unique(run[ok]).tolist():  # one step per reliable stretch
        parts.append(heart_rate_series(b[ok & (run == r)], fs, window))
    if not parts:
        return heart_rate_series(np.zeros(0, dtype=np.int64), fs, window)
    return HeartRateSeries(
        np.concatenate([p.times_s for p in parts]),
        np.concatenate([p.instantaneous_bpm for p in parts]),
        np.concatenate([p.average_bpm for p in parts]),
        window,
    )


def analyze_recording(
    recording: Recording,
    *,
    lead: int | str = 0,
    window: int = DEFAULT_AVERAGE_BEATS,
    thresholds: RhythmThresholds | None = None,
) -> EcgAnalysis:
    """Detect beats on one lead, then heart rate, signal quality and rhythm episodes."""
    samples = recording.lead(lead)
    lead_name = recording.lead_names[lead] if isinstance(lead, int) else lead
    beats = detect_r_peaks(samples, recording.fs)
    quality = assess_signal_quality(samples, recording.fs)
    series = reliable_heart_rate(beats, recording.fs, quality, window)
    episodes = classify_rhythm(
        series, thresholds, duration_s=recording.duration_s, unreliable=quality.segments
    )
    irregularity = assess_irregularity(60000.0 / series.instantaneous_bpm)
    return EcgAnalysis(
        name=recording.name,
        lead=lead_name,
        fs=recording.fs,
        duration_s=recording.duration_s,
        beats=beats,
        heart_rate=series,
        quality=quality,
        episodes=tuple(episodes),
        irregularity=irregularity,
    )
