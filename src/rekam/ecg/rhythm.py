"""Rhythm classification: bradycardia, tachycardia and normal rate episodes; irregular rhythm.

Rate classes use per-patient thresholds (defaults: bradycardia below 50 bpm, tachycardia above
100 bpm) applied to the moving-average heart rate, with

* **hysteresis** — once in bradycardia the rate must climb to ``brady_bpm + hysteresis_bpm`` to
  leave it (and symmetrically for tachycardia), so a rate hovering at the limit does not flicker;
* **minimum duration** — a new class is only declared after it has held for ``min_duration_s``,
  and the episode is then dated from when it began; a single ectopic beat cannot raise an alarm.

Stretches where the signal gives no reliable reading become ``no reliable reading`` episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import InvalidParameterError
from rekam.ecg.heart_rate import HeartRateSeries
from rekam.ecg.quality import UnreliableSegment

__all__ = [
    "Irregularity",
    "RhythmClass",
    "RhythmEpisode",
    "RhythmThresholds",
    "assess_irregularity",
    "classify_rhythm",
]

FloatArray = npt.NDArray[np.float64]


class RhythmClass(StrEnum):
    NORMAL = "normal"
    BRADYCARDIA = "bradycardia"
    TACHYCARDIA = "tachycardia"
    NO_READING = "no reliable reading"


@dataclass(frozen=True)
class RhythmThresholds:
    """One patient's alarm limits."""

    brady_bpm: float = 50.0
    tachy_bpm: float = 100.0
    hysteresis_bpm: float = 5.0
    min_duration_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.brady_bpm < self.tachy_bpm:
            raise InvalidParameterError(
                f"The bradycardia limit ({self.brady_bpm:g} bpm) must be positive and below the "
                f"tachycardia limit ({self.tachy_bpm:g} bpm)."
            )
        if self.hysteresis_bpm < 0 or self.min_duration_s < 0:
            raise InvalidParameterError("Hysteresis and minimum duration cannot be negative.")
        if self.brady_bpm + self.hysteresis_bpm >= self.tachy_bpm - self.hysteresis_bpm:
            raise InvalidParameterError(
                "The hysteresis is too wide for the gap between the bradycardia and "
                "tachycardia limits."
            )

    def raw_class(self, bpm: float, current: RhythmClass) -> RhythmClass:
        """The class a single rate points to, given the class the patient is in now."""
        if current is RhythmClass.BRADYCARDIA and bpm < self.brady_bpm + self.hysteresis_bpm:
            return RhythmClass.BRADYCARDIA
        if current is RhythmClass.TACHYCARDIA and bpm > self.tachy_bpm - self.hysteresis_bpm:
            return RhythmClass.TACHYCARDIA
        if bpm < self.brady_bpm:
            return RhythmClass.BRADYCARDIA
        if bpm > self.tachy_bpm:
            return RhythmClass.TACHYCARDIA
        return RhythmClass.NORMAL


@dataclass(frozen=True)
class RhythmEpisode:
    kind: RhythmClass
    start_s: float
    end_s: float
    mean_bpm: float | None
    min_bpm: float | None
    max_bpm: float | None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def classify_rhythm(
    series: HeartRateSeries,
    thresholds: RhythmThresholds | None = None,
    *,
    duration_s: float | None = None,
    unreliable: Sequence[UnreliableSegment] = (),
) -> list[RhythmEpisode]:
    """Split the recording into rate episodes (and ``no reliable reading`` stretches).

    Uses the moving-average rate of ``series``. Episodes cover ``[0, duration_s]`` without gaps;
    the time before the first rate value belongs to the first episode.
    """
    th = thresholds if thresholds is not None else RhythmThresholds()
    times, bpm = series.times_s, series.average_bpm
    end = float(duration_s) if duration_s is not None else float(times[-1]) if times.size else 0.0
    reliable = _reliable_mask(times, unreliable)
    t_ok, bpm_ok = times[reliable], bpm[reliable]
    # Hysteresis state machine over beats (a few per second): per beat, not per sample.
    state = RhythmClass.NORMAL
    pending: RhythmClass | None = None
    pending_since = 0.0
    changes: list[tuple[float, RhythmClass]] = [(0.0, state)]
    for t, rate in zip(t_ok.tolist(), bpm_ok.tolist(), strict=True):
        wanted = th.raw_class(rate, state)
        if wanted is state:
            pending = None
            continue
        if wanted is not pending:
            pending, pending_since = wanted, t
        if t - pending_since >= th.min_duration_s:
            state, pending = wanted, None
            changes.append((pending_since, state))
    episodes = _episodes_from_changes(changes, end, times[reliable], bpm[reliable])
    return _overlay_unreliable(episodes, unreliable, end, t_ok, bpm_ok)


def _reliable_mask(
    times: FloatArray, unreliable: Sequence[UnreliableSegment]
) -> npt.NDArray[np.bool_]:
    ok = np.ones(times.shape, dtype=bool)
    for seg in unreliable:
        ok &= ~((times >= seg.start_s) & (times <= seg.end_s))
    return ok


def _stats(
    times: FloatArray, bpm: FloatArray, start: float, end: float
) -> tuple[float | None, float | None, float | None]:
    """Mean, min and max rate of the beats in ``[start, end)``."""
    inside = (times >= start) & (times < end)
    if not inside.any():
        return None, None, None
    values = bpm[inside]
    return float(values.mean()), float(values.min()), float(values.max())


def _episodes_from_changes(
    changes: list[tuple[float, RhythmClass]], end: float, times: FloatArray, bpm: FloatArray
) -> list[RhythmEpisode]:
    episodes: list[RhythmEpisode] = []
    for i, (start, kind) in enumerate(changes):
        stop = changes[i + 1][0] if i + 1 < len(changes) else end
        if stop <= start and i + 1 < len(changes):
            continue
        episodes.append(
            RhythmEpisode(
                kind,
                start,
                max(stop, start),
                *_stats(times, bpm, start, stop if i + 1 < len(changes) else np.inf),
            )
        )
    return episodes


def _overlay_unreliable(
    episodes: list[RhythmEpisode],
    unreliable: Sequence[UnreliableSegment],
    end: float,
    times: FloatArray,
    bpm: FloatArray,
) -> list[RhythmEpisode]:
    if not unreliable:
        return episodes
    cuts = sorted((max(0.0, s.start_s), min(end, s.end_s)) for s in unreliable)
    out: list[RhythmEpisode] = []
    for ep in episodes:
        cursor = ep.start_s
        for lo, hi in cuts:
            if hi <= cursor or lo >= ep.end_s:
                continue
            if lo > cursor:
                out.append(RhythmEpisode(ep.kind, cursor, lo, *_stats(times, bpm, cursor, lo)))
            cursor = max(cursor, min(hi, ep.end_s))
        if cursor < ep.end_s or (ep.start_s == ep.end_s):
            out.append(
                RhythmEpisode(
                    ep.kind,
                    cursor,
                    ep.end_s,
                    *_stats(times, bpm, cursor, ep.end_s + (ep.end_s >= end)),
                )
            )
    for lo, hi in cuts:
        if hi > lo:
            out.append(RhythmEpisode(RhythmClass.NO_READING, lo, hi, None, None, None))
    out.sort(key=lambda e: (e.start_s, e.end_s))
    return _merge_adjacent(out)


def _merge_adjacent(episodes: list[RhythmEpisode]) -> list[RhythmEpisode]:
    merged: list[RhythmEpisode] = []
    for ep in episodes:
        if (
            merged
            and merged[-1].kind is ep.kind is RhythmClass.NO_READING
            and (ep.start_s <= merged[-1].end_s)
        ):
            last = merged.pop()
            ep = RhythmEpisode(ep.kind, last.start_s, max(last.end_s, ep.end_s), None, None, None)
        merged.append(ep)
    return merged


@dataclass(frozen=True)
class Irregularity:
    """RR variability over sliding windows of beats."""

    window_beats: int
    normalised_rmssd: FloatArray
    """RMSSD / mean RR for each window."""
    threshold: float

    @property
    def irregular_fraction(self) -> float:
        if self.normalised_rmssd.size == 0:
            return 0.0
        return float(np.mean(self.normalised_rmssd > self.threshold))

    @property
    def is_irregular(self) -> bool:
        """True when most windows show a clearly irregular rhythm."""
        return self.irregular_fraction > 0.5


def assess_irregularity(
    rr_ms: npt.ArrayLike, window_beats: int = 30, threshold: float = 0.10
) -> Irregularity:
    """Flag an irregular rhythm from RR variability (normalised RMSSD over ``window_beats``).

    Sinus rhythm, even with normal heart-rate variability, rarely exceeds 0.10; atrial
    fibrillation and frequent ectopy do.
    """
    if window_beats < 3:
        raise InvalidParameterError("The irregularity window needs at least 3 beats.")
    rr = np.asarray(rr_ms, dtype=np.float64).reshape(-1)
    if rr.size < window_beats:
        return Irregularity(window_beats, np.zeros(0), threshold)
    diffs = np.diff(rr) ** 2
    csum_d = np.concatenate([[0.0], np.cumsum(diffs)])
    csum_r = np.concatenate([[0.0], np.cumsum(rr)])
    starts = np.arange(0, rr.size - window_beats + 1)
    mean_sq = (csum_d[starts + window_beats - 1] - csum_d[starts]) / (window_beats - 1)
    mean_rr = (csum_r[starts + window_beats] - csum_r[starts]) / window_beats
    return Irregularity(window_beats, np.sqrt(mean_sq) / mean_rr, threshold)
