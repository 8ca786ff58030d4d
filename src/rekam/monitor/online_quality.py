"""Signal quality of one device's lead, judged on the stream as packets arrive.

The online counterpart of :func:`rekam.ecg.assess_signal_quality`, with the same limits, applied to
the trailing two seconds of signal every time at least ``hop_s`` of new samples have arrived:

* **flat line / leads off** — less than 0.05 mV peak to peak over the last second, or the last two
  seconds below 15 % of the lead's typical two-second peak to peak (an electrode coming loose);
* **saturated / implausible** — any value within 0.1 mV of the int16 rail (±32.767 mV, where an
  amplifier with a lead off sits), or more than 10 mV from the window's median;
* **heavy noise** — peak to peak more than four times the typical value (movement artefact), or
  high-frequency (> 40 Hz) RMS above a quarter of the window's peak to peak or above 12 % of the
  typical peak to peak (muscle noise, mains interference).

"Typical" is the median peak to peak of the non-flat, non-saturated two-second windows of the last
minute, so it follows the patient and the electrode placement. A bad window marks its whole span
(two seconds back from its end) as unreliable: beats inside it are not used.

All work is vectorised over the window (a few hundred samples); the cost per evaluation does not
depend on the packet size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.quality import (
    ARTEFACT_RATIO,
    FLAT_PEAK_TO_PEAK_MV,
    FLAT_WINDOW_S,
    HIGH_FREQUENCY_HZ,
    HIGH_FREQUENCY_RATIO,
    IMPLAUSIBLE_MV,
    NOISE_WINDOW_S,
    WEAK_RATIO,
    QualityIssue,
)

__all__ = ["OnlineSignalQuality", "QualityVerdict"]

FloatArray = npt.NDArray[np.float64]

RAIL_MV = 32.667
"""Within 0.1 mV of the int16 rail (±32.767 mV): the amplifier is saturated."""
TYPICAL_HISTORY_S = 60.0
TYPICAL_MIN_WINDOWS = 3
HIGH_FREQUENCY_TYPICAL_RATIO = 0.12


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    """One evaluation: the window ``[start, end)`` (sample indices) and what is wrong with it."""

    start: int
    end: int
    issue: QualityIssue | None

    @property
    def reliable(self) -> bool:
        return self.issue is None


class OnlineSignalQuality:
    """Trailing-window signal-quality checks for one lead (mV) at ``fs`` Hz."""

    def __init__(self, fs: float, hop_s: float = 0.1) -> None:
        self.fs = float(fs)
        self._window = max(2, round(NOISE_WINDOW_S * fs))
        self._flat_window = max(2, round(FLAT_WINDOW_S * fs))
        self._hop = max(1, round(hop_s * fs))
        cutoff = min(HIGH_FREQUENCY_HZ, 0.4 * fs)
        self._first_high_bin = int(np.ceil(cutoff * self._window / fs))
        self._ramp = np.linspace(0.0, 1.0, self._window)
        self._raw = np.zeros(0)
        self._n_seen = 0
        self._last_eval = 0
        self._typical: deque[float] = deque(maxlen=max(1, round(TYPICAL_HISTORY_S)))
        self._last_typical_at = -(10**12)
        self._typical_value: float | None = None

    def feed(self, chunk_mv: FloatArray) -> list[QualityVerdict]:
        """Take the next samples; return the verdicts of the windows evaluated on them."""
        x = chunk_mv
        if x.size == 0:
            return []
        self._raw = np.concatenate([self._raw, x])[-self._window :]
        self._n_seen += x.size
        if self._n_seen - self._last_eval < self._hop or self._n_seen < self._flat_window:
            return []
        self._last_eval = self._n_seen
        return [self._evaluate()]

    def _evaluate(self) -> QualityVerdict:
        raw = self._raw
        end = self._n_seen
        start = end - raw.size
        top, bottom = float(raw.max()), float(raw.min())
        p2p = top - bottom
        recent = raw[-self._flat_window :]
        issue: QualityIssue | None = None
        if max(top, -bottom) >= RAIL_MV or (
            p2p > IMPLAUSIBLE_MV and float(np.max(np.abs(raw - np.median(raw)))) > IMPLAUSIBLE_MV
        ):
            issue = QualityIssue.SATURATED
        elif float(recent.max() - recent.min()) < FLAT_PEAK_TO_PEAK_MV:
            issue = QualityIssue.FLAT
        full = raw.size >= self._window
        typical = self._typical_p2p()
        if issue is None and full:
            hf_rms = self._high_frequency_rms(raw)
            if typical is not None and p2p < WEAK_RATIO * typical:
                issue = QualityIssue.FLAT
            elif (typical is not None and p2p > ARTEFACT_RATIO * typical) or (
                hf_rms > HIGH_FREQUENCY_RATIO * p2p
                or (typical is not None and hf_rms > HIGH_FREQUENCY_TYPICAL_RATIO * typical)
            ):
                issue = QualityIssue.NOISE
        # One sample per second of history, from windows that are not flat or saturated.
        if (
            full
            and issue not in (QualityIssue.SATURATED, QualityIssue.FLAT)
            and end - self._last_typical_at >= round(self.fs)
        ):
            self._typical.append(p2p)
            self._last_typical_at = end
            if len(self._typical) >= TYPICAL_MIN_WINDOWS:
                self._typical_value = float(np.median(np.fromiter(self._typical, np.float64)))
        return QualityVerdict(start, end, issue)

    def _high_frequency_rms(self, raw: FloatArray) -> float:
        """RMS of the window's content above the cut-off, from its spectrum (Parseval), after
        removing the straight line between its ends so the window edges add no spurious
        high-frequency energy."""
        n = raw.size
        detrended = raw - (raw[0] + (raw[-1] - raw[0]) * self._ramp)
        power = np.abs(np.fft.rfft(detrended)) ** 2
        high = power[self._first_high_bin :]
        total = 2.0 * float(high.sum())
        if n % 2 == 0 and high.size:
            total -= float(high[-1])  # the Nyquist bin appears once in the full spectrum
        return float(np.sqrt(max(total, 0.0)) / n)

    def _typical_p2p(self) -> float | None:
        return self._typical_value
