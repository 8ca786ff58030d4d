"""Heart rate from beats: 60000 / RR (ms), a moving average over beats, and a 1 Hz grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import InvalidParameterError

__all__ = [
    "HeartRateSeries",
    "heart_rate_on_grid",
    "heart_rate_series",
    "moving_average",
    "rr_intervals_ms",
]

FloatArray = npt.NDArray[np.float64]

DEFAULT_AVERAGE_BEATS = 5
"""The published wearable study compared 5, 10 and 15 beats."""


def rr_intervals_ms(beats: npt.ArrayLike, fs: float) -> FloatArray:
    """Intervals between successive beats (sample indices at ``fs`` Hz), in milliseconds."""
    b = np.asarray(beats, dtype=np.float64).reshape(-1)
    return np.diff(b) * (1000.0 / fs)


def moving_average(values: npt.ArrayLike, window: int) -> FloatArray:
    """Trailing mean over the last ``window`` values (fewer at the start)."""
    if window < 1:
        raise InvalidParameterError(
            f"The heart-rate average must span at least one beat, not {window}."
        )
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return v.copy()
    csum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return np.asarray((csum[idx] - csum[lo]) / (idx - lo), dtype=np.float64)


@dataclass(frozen=True)
class HeartRateSeries:
    """Heart rate per beat: at ``times_s`` (each beat that ends an RR interval), in bpm."""

    times_s: FloatArray
    instantaneous_bpm: FloatArray
    """60000 / RR for each interval."""
    average_bpm: FloatArray
    """Moving average of ``instantaneous_bpm`` over ``window`` beats."""
    window: int

    def __len__(self) -> int:
        return int(self.times_s.size)


def heart_rate_series(
    beats: npt.ArrayLike, fs: float, window: int = DEFAULT_AVERAGE_BEATS
) -> HeartRateSeries:
    """Heart rate of each RR interval (60000 / RR ms) and its moving average over ``window``."""
    b = np.asarray(beats, dtype=np.int64).reshape(-1)
    rr = rr_intervals_ms(b, fs)
    if np.any(rr <= 0):
        raise InvalidParameterError("Beats must be in strictly increasing time order.")
    bpm = 60000.0 / rr if rr.size else np.zeros(0)
    return HeartRateSeries(b[1:] / fs, bpm, moving_average(bpm, window), window)


def heart_rate_on_grid(
    series: HeartRateSeries,
    duration_s: float,
    step_s: float = 1.0,
    *,
    averaged: bool = True,
    max_age_s: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Heart rate sampled every ``step_s`` seconds: the latest value known at each grid time.

    Grid times before the first value, or (with ``max_age_s``) longer than that since the last
    beat, are NaN.
    """
    grid = np.arange(0.0, duration_s + 1e-9, step_s)
    values = series.average_bpm if averaged else series.instantaneous_bpm
    out = np.full(grid.size, np.nan)
    if values.size == 0:
        return grid, out
    idx = np.searchsorted(series.times_s, grid, side="right") - 1
    known = idx >= 0
    out[known] = values[idx[known]]
    if max_age_s is not None:
        age = grid[known] - series.times_s[idx[known]]
        stale = np.flatnonzero(known)[age > max_age_s]
        out[stale] = np.nan
    return grid, out
