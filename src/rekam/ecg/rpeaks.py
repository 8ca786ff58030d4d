"""R-peak (QRS) detection, online on a stream and offline on a whole record.

The detector follows the Pan-Tompkins / Hamilton-Tompkins family:

1. a causal front end (:mod:`rekam.ecg.envelope`): 5–15 Hz band-pass, derivative, squaring and a
   150 ms moving-window integral, whose peaks mark QRS complexes;
2. candidate peaks: local maxima of that envelope, at least ``peak_window_s`` apart;
3. a decision stage with adaptive signal and noise levels, a threshold between them, T-wave
   discrimination by slope, and a search-back for beats missed when no beat arrives within
   1.66 average RR intervals;
4. the R peak placed on the baseline-free input, at the largest deflection of the QRS.

The offline function :func:`detect_r_peaks` *is* the streaming detector fed with one chunk, so
the online and offline results are identical beat for beat, whatever the chunk sizes.

Latency bound (streaming)
-------------------------
After a learning period of ``learning_s`` (4 s) from the start of the stream, a beat confirmed by the
main threshold is reported as soon as the samples up to ``R + latency_s`` have been fed, where
``latency_s = integration_window_s + localisation margin + peak_window_s`` (0.15 + 0.10 + 0.20 =
0.45 s at the defaults; see :attr:`RPeakDetector.latency_s`). A beat recovered by search-back is
reported when the search-back deadline is reached, which is at most
``searchback_rr_factor × max_rr_s + peak_window_s`` (1.66 × 2.0 + 0.2 = 3.52 s) after the previous
beat; see :attr:`RPeakDetector.max_latency_s`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from rekam.ecg.envelope import QrsEnvelope
from rekam.ecg.errors import InvalidParameterError, SamplingRateError, SignalValueError

__all__ = [
    "MAX_SAMPLING_RATE_HZ",
    "MIN_SAMPLING_RATE_HZ",
    "DetectorSettings",
    "RPeakDetector",
    "detect_r_peaks",
]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

MIN_SAMPLING_RATE_HZ = 125.0
MAX_SAMPLING_RATE_HZ = 1000.0


@dataclass(frozen=True)
class DetectorSettings:
    """The detector's constants. The same values serve every patient and every record."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    integration_window_s: float = 0.150
    peak_window_s: float = 0.200
    """Candidate peaks are envelope maxima over ± this window; also the refractory period."""
    localisation_margin_s: float = 0.100
    learning_s: float = 4.0
    threshold_fraction: float = 0.25
    """Threshold = noise level + fraction × (signal level − noise level)."""
    signal_update: float = 0.125
    noise_update: float = 0.125
    t_wave_window_s: float = 0.360
    t_wave_slope_ratio: float = 0.5
    searchback_rr_factor: float = 1.66
    searchback_threshold_ratio: float = 0.5
    rr_average_beats: int = 8
    min_rr_s: float = 0.2
    max_rr_s: float = 2.0


@dataclass(frozen=True)
class _Candidate:
    index: int  # envelope peak, absolute sample index
    height: float
    slope: float
    r_index: int


@dataclass
class _DecisionState:
    signal_level: float = 0.0
    noise_level: float = 0.0
    last_index: int = -1
    last_r: int = -1
    last_slope: float = 0.0
    rr: deque[int] = field(default_factory=deque)
    pool: list[_Candidate] = field(default_factory=list)
    deadline: float = float("inf")


def _check_sampling_rate(fs: float) -> float:
    if not np.isfinite(fs) or not MIN_SAMPLING_RATE_HZ <= fs <= MAX_SAMPLING_RATE_HZ:
        raise SamplingRateError(
            f"The sampling rate is {fs:g} Hz; R-peak detection supports "
            f"{MIN_SAMPLING_RATE_HZ:g} to {MAX_SAMPLING_RATE_HZ:g} Hz."
        )
    return float(fs)


class RPeakDetector:
    """Online R-peak detector for one ECG lead.

    >>> detector = RPeakDetector(fs=360)
    >>> beats = [detector.feed(chunk) for chunk in chunks]  # doctest: +SKIP
    >>> beats.append(detector.flush())  # doctest: +SKIP

    :meth:`feed` returns the sample indices (counted from the start of the stream) of the beats
    that became certain with this chunk; :meth:`flush` ends the stream and returns the rest.
    """

    def __init__(self, fs: float, settings: DetectorSettings | None = None) -> None:
        self.fs = _check_sampling_rate(fs)
        self.settings = settings if settings is not None else DetectorSettings()
        s = self.settings
        if not 0 < s.threshold_fraction < 1 or not 0 < s.searchback_threshold_ratio <= 1:
            raise InvalidParameterError("Detector threshold fractions must lie between 0 and 1.")
        self._front = QrsEnvelope(self.fs, s.band_hz, s.integration_window_s)
        w = max(1, round(s.peak_window_s * self.fs))
        self._w = w + (1 - w % 2)  # odd, so the running maximum has a centre
        self._loc_before = self._front.integration_samples + round(
            s.localisation_margin_s * self.fs
        )
        self._loc_after = round(0.02 * self.fs)
        self._lookback = max(self._w, self._loc_before)
        # Buffers hold the front-end signals from absolute index ``_start``; the stream starts
        # with ``_w`` samples of padding so that the first candidates have a left window.
        self._start = -self._w
        self._env = np.full(self._w, -np.inf)
        self._slope = np.zeros(self._w)
        self._level = np.zeros(self._w)
        self._n_seen = 0
        self._next_check = 0
        self._learning_samples = round(s.learning_s * self.fs)
        self._learning: list[FloatArray] = []
        self._pending: deque[_Candidate] = deque()
        self._state: _DecisionState | None = None
        self._flushed = False

    # ----------------------------------------------------------------------------- latency
    @property
    def latency_s(self) -> float:
        """Worst delay between an R peak and its report, for beats above the main threshold."""
        return (self._loc_before + self._w + 1) / self.fs

    @property
    def max_latency_s(self) -> float:
        """Worst delay for any beat after the learning period, search-back included."""
        s = self.settings
        return s.searchback_rr_factor * s.max_rr_s + (self._w + 1) / self.fs

    # ----------------------------------------------------------------------------- input
    def feed(self, chunk: npt.ArrayLike) -> IndexArray:
        """Take the next samples (mV, 1-D) and return the beats confirmed by them."""
        if self._flushed:
            raise InvalidParameterError("This detector's stream has ended; start a new one.")
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if x.size and not np.all(np.isfinite(x)):
            raise SignalValueError(
                "The ECG contains missing or infinite sample values; R peaks cannot be detected."
            )
        front = self._front.feed(x)
        wanted = self._learning_samples - self._n_seen
        if wanted > 0 and self._state is None:
            self._learning.append(front.envelope[:wanted])
        self._append(front.envelope, front.slope, front.baseline_free)
        self._find_candidates(final=False)
        return self._decide(final=False)

    def flush(self) -> IndexArray:
        """End the stream: decide on the samples still waiting for their right-hand context."""
        if self._flushed:
            return np.zeros(0, dtype=np.int64)
        self._flushed = True
        self._find_candidates(final=True)
        return self._decide(final=True)

    def _append(self, env: FloatArray, slope: FloatArray, level: FloatArray) -> None:
        self._env = np.concatenate([self._env, env])
        self._slope = np.concatenate([self._slope, slope])
        self._level = np.concatenate([self._level, level])
        self._n_seen += env.size

    # ----------------------------------------------------------------------------- candidates
    def _find_candidates(self, final: bool) -> None:
        w, start = self._w, self._start
        env = self._env
        if final:
            env = np.concatenate([env, np.full(w, -np.inf)])
        last = self._n_seen - 1 if final else self._n_seen - 1 - w  # last index to evaluate
        if last < self._next_check:
            return
        lo = self._next_check - w - start
        seg = env[lo : last + w + 1 - start]
        half = (w - 1) // 2
        running = ndimage.maximum_filter1d(seg, size=w, mode="nearest")
        positions = np.arange(w, seg.size - w)
        values = seg[positions]
        left = running[positions - 1 - half]
        right = running[positions + 1 + half]
        is_peak = (values > left) & (values >= right) & (values > 0)
        for pos in positions[is_peak]:
            index = int(pos) + lo + start
            self._pending.append(self._describe(index))
        self._next_check = last + 1
        keep_from = self._next_check - self._lookback - start
        if keep_from > 0:
            self._env = self._env[keep_from:]
            self._slope = self._slope[keep_from:]
            self._level = self._level[keep_from:]
            self._start += keep_from

    def _describe(self, index: int) -> _Candidate:
        b = index - self._start
        lo = max(0, b - self._loc_before)
        hi = min(b + self._loc_after + 1, self._level.size)
        qrs_lo = max(0, b - self._front.integration_samples)
        slope = float(np.max(self._slope[qrs_lo : b + 1]))
        window = self._level[lo:hi]
        centred = window - np.median(window)
        r_index = int(np.argmax(np.abs(centred))) + lo + self._start
        return _Candidate(index, float(self._env[b]), slope, max(r_index, 0))

    # ----------------------------------------------------------------------------- decisions
    def _decide(self, final: bool) -> IndexArray:
        if self._state is None:
            if not final and self._n_seen - self._w <= self._learning_samples:
                return np.zeros(0, dtype=np.int64)
            self._state = self._initial_state()
        state = self._state
        horizon = self._n_seen if final else self._n_seen - self._w  # candidates < horizon known
        beats: list[int] = []
        while True:
            if self._pending and self._pending[0].index <= state.deadline:
                self._consider(self._pending.popleft(), state, beats)
            elif state.deadline < horizon:
                self._search_back(state, beats)
            else:
                break
        return np.asarray(beats, dtype=np.int64)

    def _initial_state(self) -> _DecisionState:
        env = np.concatenate(self._learning) if self._learning else np.zeros(0)
        env = env[: self._learning_samples]
        self._learning = []
        second = max(1, round(self.fs))
        n_windows = -(-env.size // second)
        maxima = [float(np.max(env[i * second : (i + 1) * second])) for i in range(n_windows)]
        maxima = maxima or [0.0]
        signal_level = float(np.median(maxima))
        noise_level = 0.5 * float(np.mean(env)) if env.size else 0.0
        return _DecisionState(signal_level=signal_level, noise_level=min(noise_level, signal_level))

    def _threshold(self, state: _DecisionState) -> float:
        s = self.settings
        return state.noise_level + s.threshold_fraction * (state.signal_level - state.noise_level)

    def _rr_average(self, state: _DecisionState) -> float:
        s = self.settings
        if not state.rr:
            return s.max_rr_s * self.fs / s.searchback_rr_factor
        mean = float(np.mean(state.rr))
        return float(np.clip(mean, s.min_rr_s * self.fs, s.max_rr_s * self.fs))

    def _is_t_wave(self, c: _Candidate, state: _DecisionState) -> bool:
        s = self.settings
        return (
            state.last_index >= 0
            and c.index - state.last_index < s.t_wave_window_s * self.fs
            and c.slope < s.t_wave_slope_ratio * state.last_slope
        )

    def _consider(self, c: _Candidate, state: _DecisionState, beats: list[int]) -> None:
        s = self.settings
        if c.height > self._threshold(state) and not self._is_t_wave(c, state):
            state.signal_level += s.signal_update * (c.height - state.signal_level)
            self._accept(c, state, beats)
        else:
            state.noise_level += s.noise_update * (c.height - state.noise_level)
            state.pool.append(c)

    def _accept(self, c: _Candidate, state: _DecisionState, beats: list[int]) -> None:
        s = self.settings
        if state.last_index >= 0:
            state.rr.append(c.index - state.last_index)
            while len(state.rr) > s.rr_average_beats:
                state.rr.popleft()
        state.last_index = c.index
        state.last_slope = c.slope
        state.pool = []
        state.deadline = c.index + s.searchback_rr_factor * self._rr_average(state)
        if c.r_index > state.last_r:
            beats.append(c.r_index)
            state.last_r = c.r_index

    def _search_back(self, state: _DecisionState, beats: list[int]) -> None:
        s = self.settings
        floor = s.searchback_threshold_ratio * self._threshold(state)
        eligible = [
            c
            for c in state.pool
            if c.index <= state.deadline and c.height > floor and not self._is_t_wave(c, state)
        ]
        if eligible:
            best = max(eligible, key=lambda c: c.height)
            state.signal_level += 2 * s.signal_update * (best.height - state.signal_level)
            remaining = [c for c in state.pool if c.index > best.index]
            self._accept(best, state, beats)
            state.pool = remaining
        else:
            state.deadline += self._rr_average(state)


def detect_r_peaks(
    samples: npt.ArrayLike, fs: float, settings: DetectorSettings | None = None
) -> IndexArray:
    """Sample indices of the R peaks in one ECG lead (mV), offline on a whole record.

    Exactly the beats :class:`RPeakDetector` reports when fed the same samples in any chunks.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise SignalValueError("R-peak detection works on one lead at a time (a 1-D array).")
    detector = RPeakDetector(fs, settings)
    found = detector.feed(x)
    rest = detector.flush()
    return np.concatenate([found, rest]).astype(np.int64)
