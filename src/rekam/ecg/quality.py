"""Signal quality: where a lead gives no reliable reading.

A heart rate computed from a lead that is off, flat, clipped or buried in noise is worse than no
heart rate: it raises false alarms or hides true ones. :func:`assess_signal_quality` marks the
stretches of a lead that cannot be trusted, so that analysis reports "no reliable reading" there.

Checks (all vectorised over the whole lead):

* **flat line / leads off** — less than 0.05 mV of peak-to-peak activity over a whole second, or a
  2-second window with less than 15 % of the lead's typical peak-to-peak amplitude (an electrode
  coming loose);
* **saturated / implausible** — values more than 10 mV from the lead's median, or the signal stuck
  at its extreme value for 0.1 s (amplifier clipping);
* **heavy noise** — in 2-second windows: peak-to-peak more than four times the lead's typical
  window (movement artefact), or high-frequency (> 40 Hz) content above a quarter of the
  window's peak-to-peak amplitude (muscle noise, mains interference).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy import signal as sp_signal

__all__ = ["QualityIssue", "SignalQuality", "UnreliableSegment", "assess_signal_quality"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FLAT_PEAK_TO_PEAK_MV = 0.05
FLAT_WINDOW_S = 1.0
IMPLAUSIBLE_MV = 10.0
CLIPPING_WINDOW_S = 0.1
NOISE_WINDOW_S = 2.0
ARTEFACT_RATIO = 4.0
WEAK_RATIO = 0.15
HIGH_FREQUENCY_HZ = 40.0
HIGH_FREQUENCY_RATIO = 0.25
MERGE_GAP_S = 0.5


class QualityIssue(StrEnum):
    """Why a stretch of signal gives no reliable reading."""

    FLAT = "flat line or leads off"
    SATURATED = "saturated or implausible values"
    NOISE = "heavy noise"


@dataclass(frozen=True)
class UnreliableSegment:
    start_s: float
    end_s: float
    issue: QualityIssue

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class SignalQuality:
    """The unreliable stretches of one lead."""

    segments: tuple[UnreliableSegment, ...]
    duration_s: float

    @property
    def unreliable_s(self) -> float:
        return float(sum(seg.duration_s for seg in self.segments))

    @property
    def reliable_fraction(self) -> float:
        if self.duration_s <= 0:
            return 0.0
        return max(0.0, 1.0 - self.unreliable_s / self.duration_s)

    def is_reliable(self, times_s: npt.ArrayLike) -> BoolArray:
        """For each time (s), whether it lies outside every unreliable segment."""
        t = np.asarray(times_s, dtype=np.float64)
        ok = np.ones(t.shape, dtype=bool)
        for seg in self.segments:
            ok &= ~((t >= seg.start_s) & (t <= seg.end_s))
        return ok


def assess_signal_quality(samples: npt.ArrayLike, fs: float) -> SignalQuality:
    """Find the stretches of one lead (mV) that give no reliable reading."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    n = x.size
    if n == 0:
        return SignalQuality((), 0.0)
    weak, noisy = _window_checks(x, fs)
    masks = {
        QualityIssue.FLAT: _flat(x, fs) | weak,
        QualityIssue.SATURATED: _saturated(x, fs),
        QualityIssue.NOISE: noisy,
    }
    # One issue per sample, in order of precedence (flat explains the rest).
    taken = np.zeros(n, dtype=bool)
    segments: list[UnreliableSegment] = []
    for issue, mask in masks.items():
        mask = mask & ~taken
        taken |= mask
        segments.extend(_segments(mask, fs, issue))
    segments.sort(key=lambda seg: seg.start_s)
    return SignalQuality(tuple(segments), n / fs)


def _rolling_peak_to_peak(x: FloatArray, size: int) -> FloatArray:
    size = max(1, min(size, x.size))
    top = ndimage.maximum_filter1d(x, size, mode="nearest")
    bottom = ndimage.minimum_filter1d(x, size, mode="nearest")
    return np.asarray(top - bottom, dtype=np.float64)


def _spread(mask: BoolArray, size: int) -> BoolArray:
    """Extend each flagged centre to the whole window around it."""
    if not mask.any():
        return mask
    return np.asarray(ndimage.maximum_filter1d(mask.astype(np.uint8), max(1, size)) > 0)


def _flat(x: FloatArray, fs: float) -> BoolArray:
    window = round(FLAT_WINDOW_S * fs)
    if x.size < window:
        return np.full(x.size, bool(np.ptp(x) < FLAT_PEAK_TO_PEAK_MV))
    return _spread(_rolling_peak_to_peak(x, window) < FLAT_PEAK_TO_PEAK_MV, window)


def _saturated(x: FloatArray, fs: float) -> BoolArray:
    implausible = np.abs(x - np.median(x)) > IMPLAUSIBLE_MV
    window = max(2, round(CLIPPING_WINDOW_S * fs))
    at_extreme = (x >= x.max()) | (x <= x.min())
    stuck = (_rolling_peak_to_peak(x, window) == 0) & at_extreme & (np.ptp(x) > 0)
    return _spread(implausible | stuck, round(0.5 * fs))


def _window_checks(x: FloatArray, fs: float) -> tuple[BoolArray, BoolArray]:
    """Per 2-second window: too weak for the lead (loose electrode), and too noisy."""
    window = round(NOISE_WINDOW_S * fs)
    n_windows = x.size // window
    if n_windows == 0:
        none = np.zeros(x.size, dtype=bool)
        return none, none.copy()
    cutoff = min(HIGH_FREQUENCY_HZ, 0.4 * fs)
    sos = sp_signal.butter(4, cutoff, btype="highpass", fs=fs, output="sos")
    high = sp_signal.sosfiltfilt(sos, x)
    body = x[: n_windows * window].reshape(n_windows, window)
    p2p = np.ptp(body, axis=1)
    hf_rms = np.sqrt(np.mean(high[: n_windows * window].reshape(n_windows, window) ** 2, axis=1))
    typical = float(np.median(p2p))
    weak = p2p < WEAK_RATIO * typical
    noisy = (p2p > ARTEFACT_RATIO * typical) | (hf_rms > HIGH_FREQUENCY_RATIO * p2p)
    return _per_sample(weak, window, x.size), _per_sample(noisy, window, x.size)


def _per_sample(flags: BoolArray, window: int, n: int) -> BoolArray:
    spread = np.repeat(flags, window)
    return np.concatenate([spread, np.full(n - spread.size, bool(flags[-1]))])


def _segments(mask: BoolArray, fs: float, issue: QualityIssue) -> list[UnreliableSegment]:
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    gap = round(MERGE_GAP_S * fs)
    keep_start = np.concatenate([[True], starts[1:] - ends[:-1] > gap])
    keep_end = np.concatenate([starts[1:] - ends[:-1] > gap, [True]])
    return [
        UnreliableSegment(float(s) / fs, float(e) / fs, issue)
        for s, e in zip(starts[keep_start].tolist(), ends[keep_end].tolist(), strict=True)
    ]
