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

import statistics
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from rekam.ecg.arrays import own
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


class QualityVerdict(NamedTuple):
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

    def batch_key(self) -> tuple[float, int, int, int]:
        """Checks with equal keys can be evaluated together by :meth:`feed_many`."""
        return (self.fs, self._window, self._flat_window, self._raw.size)

    def compact(self) -> None:
        """Give the window an array of its own (windows judged together are rows of one array;
        see :meth:`feed_many`). Changes no result."""
        self._raw = own(self._raw)

    def feed(self, chunk_mv: FloatArray) -> list[QualityVerdict]:
        """Take the next samples; return the verdicts of the windows evaluated on them."""
        return OnlineSignalQuality.feed_many([self], [chunk_mv])[0]

    @staticmethod
    def feed_many(
        checks: Sequence[OnlineSignalQuality], chunks: Sequence[FloatArray]
    ) -> list[list[QualityVerdict]]:
        """Feed ``chunks[i]`` to ``checks[i]`` (each check once) and return each one's verdicts:
        exactly what :meth:`feed` gives one by one. The windows due for evaluation are judged
        together, one row per lead, when they have the same length."""
        results: list[list[QualityVerdict]] = [[] for _ in checks]
        due: dict[tuple[float, int, int, int], list[int]] = {}
        # Full windows taking chunks of one length move on as rows of one array, each keeping
        # its row (a server's devices in their steady state).
        shifted: dict[tuple[float, int, int, int], list[int]] = {}
        for i, (check, x) in enumerate(zip(checks, chunks, strict=True)):
            if x.size == 0:
                continue
            if check._raw.size == check._window >= x.size:
                key = (check.fs, check._window, check._flat_window, x.size)
                shifted.setdefault(key, []).append(i)
                continue
            raw = np.concatenate([check._raw, x])
            check._raw = raw[raw.size - check._window :] if raw.size > check._window else raw
            if check._moved_on(x.size):
                due.setdefault(check.batch_key(), []).append(i)
        for members in due.values():
            group = [checks[i] for i in members]
            raw = np.array([c._raw for c in group])
            for i, verdict in zip(members, _evaluate_many(group, raw), strict=True):
                results[i] = [verdict]
        for (_, _, _, size), members in shifted.items():
            group = [checks[i] for i in members]
            old = np.array([c._raw for c in group])
            raw = np.concatenate([old[:, size:], np.array([chunks[i] for i in members])], axis=1)
            judged = []
            for row, check in enumerate(group):
                check._raw = raw[row]
                if check._moved_on(size):
                    judged.append(row)
            if not judged:
                continue
            if len(judged) < len(group):
                group, members, raw = (
                    [group[r] for r in judged],
                    [members[r] for r in judged],
                    raw[judged],
                )
            for i, verdict in zip(members, _evaluate_many(group, raw), strict=True):
                results[i] = [verdict]
        return results

    def _moved_on(self, size: int) -> bool:
        """Count ``size`` new samples; whether the window is due for evaluation."""
        self._n_seen += size
        if self._n_seen - self._last_eval < self._hop or self._n_seen < self._flat_window:
            return False
        self._last_eval = self._n_seen
        return True

    def _high_frequency_rms(self, raw: FloatArray) -> float:
        """High-frequency RMS of one window (what :func:`_evaluate_many` computes per row)."""
        return float(_high_frequency_rms(raw.reshape(1, -1), self._ramp, self._first_high_bin)[0])

    def _typical_p2p(self) -> float | None:
        return self._typical_value

    def _judge(
        self, p2p: float, recent_p2p: float, saturated: bool, hf_rms: float
    ) -> QualityVerdict:
        """The verdict on the current window from its measures (see the module's limits), and
        the typical peak to peak brought up to date."""
        end = self._n_seen
        start = end - self._raw.size
        issue: QualityIssue | None = None
        if saturated:
            issue = QualityIssue.SATURATED
        elif recent_p2p < FLAT_PEAK_TO_PEAK_MV:
            issue = QualityIssue.FLAT
        full = self._raw.size >= self._window
        typical = self._typical_p2p()
        if issue is None and full:
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
                self._typical_value = statistics.median(self._typical)
        return QualityVerdict(start, end, issue)


def _evaluate_many(checks: Sequence[OnlineSignalQuality], raw: FloatArray) -> list[QualityVerdict]:
    """Judge the current window of each check, given as row ``i`` of ``raw`` (one length)."""
    first = checks[0]
    top = raw.max(axis=1)
    bottom = raw.min(axis=1)
    p2p = top - bottom
    recent = raw[:, raw.shape[1] - first._flat_window :]
    recent_p2p = recent.max(axis=1) - recent.min(axis=1)
    saturated = np.maximum(top, -bottom) >= RAIL_MV
    wide = ~saturated & (p2p > IMPLAUSIBLE_MV)
    if wide.any():
        spread = raw[wide] - np.median(raw[wide], axis=1, keepdims=True)
        saturated[wide] = np.abs(spread).max(axis=1) > IMPLAUSIBLE_MV
    hf_rms = np.zeros(len(checks))
    if raw.shape[1] >= first._window:
        hf_rms = _high_frequency_rms(raw, first._ramp, first._first_high_bin)
    return [
        check._judge(float(p2p[i]), float(recent_p2p[i]), bool(saturated[i]), float(hf_rms[i]))
        for i, check in enumerate(checks)
    ]


def _high_frequency_rms(raw: FloatArray, ramp: FloatArray, first_bin: int) -> FloatArray:
    """RMS of each row's content above the cut-off, from its spectrum (Parseval), after removing
    the straight line between the row's ends so the window edges add no spurious high-frequency
    energy."""
    n = raw.shape[1]
    detrended = raw - (raw[:, :1] + (raw[:, -1:] - raw[:, :1]) * ramp)
    power = np.abs(np.fft.rfft(detrended, axis=1)) ** 2
    high = power[:, first_bin:]
    total = 2.0 * high.sum(axis=1)
    if n % 2 == 0 and high.shape[1]:
        total -= high[:, -1]  # the Nyquist bin appears once in the full spectrum
    result: FloatArray = np.sqrt(np.maximum(total, 0.0)) / n
    return result
