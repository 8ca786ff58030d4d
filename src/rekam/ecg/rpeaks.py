"""R-peak (QRS) detection, online on a stream and offline on a whole record.

The detector follows the Pan-Tompkins / Hamilton-Tompkins family:

1. a causal front end (:mod:`rekam.ecg.envelope`): 5–15 Hz band-pass, derivative, squaring and a
   120 ms moving-window integrator, whose humps mark QRS complexes;
2. candidate peaks: maxima of that envelope over ± ``peak_window_s``, and — so that fast rhythms
   keep every beat — smaller humps inside that window that stand on their own: separated from
   the higher neighbour by a deep valley and at least half as high (a beat right after a larger
   ectopic beat at 200 bpm). Two beats (their humps and their R peaks) are never closer than
   ``min_rr_s`` (the refractory period);
3. a decision stage with adaptive signal and noise levels and a threshold between them, T-wave
   discrimination by slope, and a search-back for beats missed when no beat arrives within
   1.66 average RR intervals;
4. the R peak placed on the full-rate, baseline-free input, at the largest deflection of the QRS.

The offline function :func:`detect_r_peaks` *is* the streaming detector fed with one chunk, and
every stage carries exact state from chunk to chunk, so online and offline results are identical
beat for beat, whatever the chunk sizes.

Latency bound (streaming)
-------------------------
Beats are first reported once ``learning_s`` (4 s) of signal have been fed. After that, a beat
that passes the main threshold is reported as soon as the samples up to
``R + latency_s`` have been fed, with ``latency_s = integration window + localisation margin +
peak window`` = 0.12 + 0.13 + 0.20 s = 0.45 s (plus at most one envelope sample, ≤ 10 ms); see
:attr:`RPeakDetector.latency_s`. A beat recovered by search-back is reported when the search-back
deadline passes: at most ``searchback_rr_factor × max_rr_s + peak_window_s`` = 1.66 × 2.0 + 0.2 =
3.52 s after the previous beat; see :attr:`RPeakDetector.max_latency_s`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from rekam.ecg.arrays import own
from rekam.ecg.envelope import EnvelopeChunk, QrsEnvelope
from rekam.ecg.errors import InvalidParameterError, SamplingRateError, SignalValueError

__all__ = [
    "MAX_SAMPLING_RATE_HZ",
    "MIN_SAMPLING_RATE_HZ",
    "DetectorSettings",
    "RPeakDetector",
    "check_sampling_rate",
    "detect_r_peaks",
]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]

MIN_SAMPLING_RATE_HZ = 125.0
MAX_SAMPLING_RATE_HZ = 1000.0
# Envelope (mean squared slope, (mV/s)²) below which a lead is silent: a slope of 1 µV/s. Keeps
# rounding noise on a constant signal from being taken for beats.
_SILENT_ENVELOPE = 1e-6
# Local maxima are first screened against their neighbours up to this many envelope samples away.
_SCREEN_SAMPLES = 4
_SCREEN_FROM = 16


@dataclass(frozen=True)
class DetectorSettings:
    """The detector's constants. The same values serve every patient and every record."""

    band_hz: tuple[float, float] = (5.0, 15.0)
    integration_window_s: float = 0.120
    peak_window_s: float = 0.200
    """Candidates are envelope maxima over ± this window (or humps of their own, below)."""
    hump_window_s: float = 0.080
    """A hump of its own is the envelope maximum over ± this window ..."""
    hump_valley_ratio: float = 0.5
    """... the envelope falls to this fraction of its height before any higher sample ..."""
    hump_height_ratio: float = 0.5
    """... and it is at least this fraction of the highest sample within ± ``peak_window_s``."""
    localisation_margin_s: float = 0.130
    """How far before the integrated QRS the R peak is looked for, beyond the integration window."""
    learning_s: float = 4.0
    threshold_fraction: float = 0.25
    """Threshold = noise level + fraction × (signal level − noise level)."""
    level_update: float = 0.125
    """Weight of each new peak in the running signal and noise levels."""
    t_wave_window_s: float = 0.360
    t_wave_slope_ratio: float = 0.5
    searchback_rr_factor: float = 1.66
    searchback_threshold_ratio: float = 0.5
    rr_average_beats: int = 8
    min_rr_s: float = 0.2
    """Refractory period: a candidate closer than this to the last beat — by its envelope hump or
    by the R peak placed for it — is not a beat. Two humps of one wide QRS can lie this far apart
    and still have their R peaks placed a few dozen ms apart."""
    max_rr_s: float = 2.0


class _Candidate(NamedTuple):
    position: int  # envelope maximum, envelope-rate sample index
    height: float
    slope: float
    r_index: int  # R peak, full-rate sample index


def check_sampling_rate(fs: float) -> float:
    """Return ``fs`` as a float, or raise :class:`SamplingRateError` if it is unsupported."""
    if not np.isfinite(fs) or not MIN_SAMPLING_RATE_HZ <= fs <= MAX_SAMPLING_RATE_HZ:
        raise SamplingRateError(
            f"The sampling rate is {fs:g} Hz; R-peak detection supports "
            f"{MIN_SAMPLING_RATE_HZ:g} to {MAX_SAMPLING_RATE_HZ:g} Hz."
        )
    return float(fs)


_DESIGNS: dict[DetectorSettings, int] = {}


def _design_id(settings: DetectorSettings) -> int:
    """A small number per distinct settings (detectors are grouped by it many times a second;
    hashing the settings each time would cost more than the grouping saves)."""
    return _DESIGNS.setdefault(settings, len(_DESIGNS))


def _odd(n: int) -> int:
    return n + 1 - n % 2


class RPeakDetector:
    """Online R-peak detector for one ECG lead.

    :meth:`feed` returns the sample indices (counted from the start of the stream) of the beats
    that became certain with this chunk; :meth:`flush` ends the stream and returns the rest.

    >>> detector = RPeakDetector(fs=360)
    >>> first = detector.feed(samples[:1000])  # doctest: +SKIP
    >>> rest = detector.feed(samples[1000:])  # doctest: +SKIP
    >>> last = detector.flush()  # doctest: +SKIP
    """

    def __init__(self, fs: float, settings: DetectorSettings | None = None) -> None:
        self.fs = check_sampling_rate(fs)
        self.settings = s = settings if settings is not None else DetectorSettings()
        if not 0 < s.threshold_fraction < 1 or not 0 < s.searchback_threshold_ratio <= 1:
            raise InvalidParameterError("Detector threshold fractions must lie between 0 and 1.")
        if not 0 < s.hump_valley_ratio < 1 or not 0 < s.hump_height_ratio <= 1:
            raise InvalidParameterError("Detector hump ratios must lie between 0 and 1.")
        if not 0 < s.level_update <= 1 or s.rr_average_beats < 1:
            raise InvalidParameterError("Detector averaging settings are out of range.")
        self._front = QrsEnvelope(self.fs, s.band_hz, s.integration_window_s)
        self._design = (self.fs, _design_id(s))
        self._k = k = self._front.decimation
        efs = self._front.envelope_fs
        self._w = _odd(max(1, round(s.peak_window_s * efs)))
        self._hump_w = min(self._w, max(1, round(s.hump_window_s * efs)))
        self._window_offsets = np.arange(-self._w, self._w + 1)
        self._screen = min(_SCREEN_SAMPLES, self._hump_w)
        self._hump_valley = s.hump_valley_ratio
        self._hump_height = s.hump_height_ratio
        self._n_int = self._front.integration_samples
        self._loc_before = round((s.integration_window_s + s.localisation_margin_s) * self.fs)
        self._loc_after = round(0.02 * self.fs)
        # Envelope-rate buffers (envelope, slope) start at ``_start``; the full-rate buffer of
        # baseline-free samples starts at ``_level_start``. Both begin with padding.
        pad = max(self._w, self._n_int) + 2
        self._start = -pad
        self._env = np.full(pad, -np.inf)
        self._slope = np.zeros(pad)
        level_pad = self._loc_before + 1
        self._level_start = -level_pad
        self._level = np.zeros(level_pad)
        self._n_env = 0  # envelope samples seen
        self._n_full = 0  # input samples seen
        self._next_check = 0
        # Decision constants, in envelope samples.
        self._learning = round(s.learning_s * efs)
        self._learning_env: list[FloatArray] = []
        self._min_rr = s.min_rr_s * efs
        self._min_rr_full = s.min_rr_s * self.fs
        self._max_rr = s.max_rr_s * efs
        self._t_wave = s.t_wave_window_s * efs
        self._efs = efs
        # Decision state.
        self._pending: deque[_Candidate] = deque()
        self._started = False
        self._signal_level = 0.0
        self._noise_level = 0.0
        self._last_index = -1
        self._last_r = -1
        self._last_slope = 0.0
        self._rr: deque[int] = deque()
        self._pool: list[_Candidate] = []
        self._deadline = float("inf")
        self._flushed = False
        del k

    # ----------------------------------------------------------------------------- latency
    @property
    def latency_s(self) -> float:
        """Worst delay between an R peak and its report, for beats above the main threshold."""
        s = self.settings
        return s.integration_window_s + s.localisation_margin_s + (self._w + 1) / self._efs

    @property
    def max_latency_s(self) -> float:
        """Worst delay for any beat once learning is over, search-back included."""
        s = self.settings
        return s.searchback_rr_factor * s.max_rr_s + (self._w + 2) / self._efs

    # ----------------------------------------------------------------------------- input
    def feed(self, chunk: npt.ArrayLike) -> IndexArray:
        """Take the next samples (mV, 1-D) and return the beats confirmed by them."""
        return RPeakDetector.feed_many([self], [chunk])[0]

    @staticmethod
    def feed_many(
        detectors: Sequence[RPeakDetector], chunks: Sequence[npt.ArrayLike]
    ) -> list[IndexArray]:
        """Feed ``chunks[i]`` to ``detectors[i]`` for every ``i`` and return each one's beats.

        The result is exactly that of calling :meth:`feed` on each detector in turn; the work is
        shared: detectors with the same sampling rate and settings and chunks of one length run
        their front end and candidate search as rows of one array, so a server analysing many
        devices pays NumPy's per-call cost once per group instead of once per device. Each
        detector may appear once. Nothing changes if any chunk is refused.
        """
        if len(detectors) != len(chunks):
            raise InvalidParameterError("feed_many takes one chunk per detector")
        if len({id(d) for d in detectors}) != len(detectors):
            raise InvalidParameterError("a detector can be fed only one chunk per call")
        groups: dict[tuple[object, ...], tuple[list[RPeakDetector], list[FloatArray]]] = {}
        for detector, chunk in zip(detectors, chunks, strict=True):
            if detector._flushed:
                raise InvalidParameterError("This detector's stream has ended; start a new one.")
            x = np.asarray(chunk, dtype=np.float64).reshape(-1)
            key = (detector._design, detector._front.batch_key(), x.size)
            members, xs = groups.setdefault(key, ([], []))
            members.append(detector)
            xs.append(x)
        stacked = [np.array(xs) for _, xs in groups.values()]
        for rows in stacked:  # all refused, or all taken
            if rows.size and not np.all(np.isfinite(rows)):
                raise SignalValueError(
                    "The ECG contains missing or infinite sample values; R peaks cannot be "
                    "detected."
                )
        alone: list[RPeakDetector] = []
        for (members, _), rows in zip(groups.values(), stacked, strict=True):
            envelope, slope, samples = QrsEnvelope.feed_rows([d._front for d in members], rows)
            alone.extend(RPeakDetector._advance_together(members, envelope, slope, samples))
        RPeakDetector._find_candidates_many(alone, final=False)
        return [detector._decide(final=False) for detector in detectors]

    @staticmethod
    def _advance_together(
        members: list[RPeakDetector], envelope: FloatArray, slope: FloatArray, samples: FloatArray
    ) -> list[RPeakDetector]:
        """Append row ``i`` of the front-end output to ``members[i]`` and search the new stretch
        for candidates, for every set of detectors whose buffers lie alike (same lengths, same
        place of the next check): those are searched and trimmed as rows of one array, and each
        keeps a row of it as its buffer. Returns the detectors left to search one by one.

        This is the steady state of a server's devices (one packet each, at one rate): their
        buffers then have one length, so the per-detector work is a few assignments."""
        alike: dict[tuple[int, int, int, int], list[int]] = {}
        for i, d in enumerate(members):
            start = d._start
            key = (
                d._n_env - start,
                d._next_check - start,
                d._n_full - d._level_start,
                start * d._k - d._level_start,
            )
            alike.setdefault(key, []).append(i)
        alone: list[RPeakDetector] = []
        for key, rows in alike.items():
            if len(rows) == 1:
                i = rows[0]
                d = members[i]
                d._take(EnvelopeChunk(envelope[i], slope[i], samples[i]))
                alone.append(d)
                continue
            if len(rows) == len(members):  # all alike: the arrays as they are
                RPeakDetector._advance_alike(members, key, envelope, slope, samples)
            else:
                RPeakDetector._advance_alike(
                    [members[i] for i in rows], key, envelope[rows], slope[rows], samples[rows]
                )
        return alone

    @staticmethod
    def _advance_alike(
        detectors: list[RPeakDetector],
        key: tuple[int, int, int, int],
        envelope: FloatArray,
        slope: FloatArray,
        samples: FloatArray,
    ) -> None:
        """:meth:`_take`, :meth:`_find_candidates_many` and :meth:`_trim` for detectors whose
        buffers lie alike (``key``, positions counted from each one's buffer start)."""
        first = detectors[0]
        w = first._w
        env = np.concatenate([np.array([d._env for d in detectors]), envelope], axis=1)
        slopes = np.concatenate([np.array([d._slope for d in detectors]), slope], axis=1)
        level = np.concatenate([np.array([d._level for d in detectors]), samples], axis=1)
        n_env, n_full = envelope.shape[1], samples.shape[1]
        for row, d in enumerate(detectors):
            wanted = d._learning - d._n_env
            if wanted > 0:
                d._learning_env.append(envelope[row, :wanted])
            d._n_env += n_env
            d._n_full += n_full
        next_at = key[1]
        last = env.shape[1] - 1 - w  # last buffer position to evaluate
        if last < next_at:
            for row, d in enumerate(detectors):
                d._env, d._slope, d._level = env[row], slopes[row], level[row]
            return
        lo = next_at - w
        rows, positions = first._search(env[:, lo : last + w + 1])
        if positions.size:
            RPeakDetector._describe_alike(
                detectors, key[3], env, slopes, level, rows, positions + lo
            )
        # _trim, once for all: the next check is at buffer position last + 1 for every one.
        keep_from = max(0, last + 1 - max(w, first._n_int) - 2)
        keep_level = max(0, (last + 1) * first._k + key[3] - first._loc_before - 1)
        env, slopes, level = env[:, keep_from:], slopes[:, keep_from:], level[:, keep_level:]
        for row, d in enumerate(detectors):
            d._next_check = d._start + last + 1
            d._start += keep_from
            d._level_start += keep_level
            d._env, d._slope, d._level = env[row], slopes[row], level[row]

    def compact(self) -> None:
        """Give the buffers arrays of their own. Detectors fed together keep rows of arrays
        shared with the others of a call (:meth:`feed_many`); one whose stream has gone quiet
        would keep those alive. Changes no result."""
        self._env, self._slope, self._level = own(self._env), own(self._slope), own(self._level)
        self._learning_env = [own(a) for a in self._learning_env]
        self._front.compact()

    def _take(self, front: EnvelopeChunk) -> None:
        wanted = self._learning - self._n_env
        if wanted > 0:
            self._learning_env.append(front.envelope[:wanted])
        self._env = np.concatenate([self._env, front.envelope])
        self._slope = np.concatenate([self._slope, front.slope])
        self._level = np.concatenate([self._level, front.samples])
        self._n_env += front.envelope.size
        self._n_full += front.samples.size

    def flush(self) -> IndexArray:
        """End the stream: decide on the samples still waiting for their right-hand context."""
        if self._flushed:
            return np.zeros(0, dtype=np.int64)
        self._flushed = True
        RPeakDetector._find_candidates_many([self], final=True)
        return self._decide(final=True)

    # ----------------------------------------------------------------------------- candidates
    @staticmethod
    def _find_candidates_many(detectors: Sequence[RPeakDetector], final: bool) -> None:
        """Queue, for each detector, every envelope maximum whose ± window is complete.

        A candidate is higher than every envelope sample up to ``w`` before it and not lower than
        any up to ``w`` after it, or a hump of its own (:meth:`_separate_humps`). Local maxima are
        screened first (cheap, vectorised), then only those are checked against their windows.
        Detectors whose new stretch of envelope has the same length are searched together, one
        row each; every test looks at one row only.
        """
        groups: dict[tuple[object, ...], list[tuple[RPeakDetector, FloatArray, int, int]]] = {}
        for d in detectors:
            w, start = d._w, d._start
            env = d._env
            if final:
                env = np.concatenate([env, np.full(w + 1, -np.inf)])
            last = d._n_env - 1 if final else d._n_env - 1 - w  # last index to evaluate
            if last < d._next_check:
                continue
            lo = d._next_check - w - start
            seg = env[lo : last + w + 1 - start]
            groups.setdefault((d._design, seg.size), []).append((d, seg, lo, last))
        for items in groups.values():
            first = items[0][0]
            rows, positions = first._search(np.array([seg for _, seg, _, _ in items]))
            if positions.size:
                bounds = np.searchsorted(rows, np.arange(len(items) + 1))
                found = [
                    (d, positions[bounds[row] : bounds[row + 1]] + lo)
                    for row, (d, _, lo, _) in enumerate(items)
                    if bounds[row] < bounds[row + 1]
                ]
                RPeakDetector._describe_many(found, final)
            for d, _, _, last in items:
                d._next_check = last + 1
                d._trim()

    def _search(self, segs: FloatArray) -> tuple[IndexArray, IndexArray]:
        """The candidates among rows of envelope ``segs`` (``w`` samples of context on each
        side), as (row, position in the row), sorted by row. Every test looks at one row only.

        Local maxima are screened first (cheap, vectorised), then only those are checked against
        their windows."""
        w = self._w
        width = segs.shape[1]
        inner = segs[:, w : width - w]
        rising = inner > segs[:, w - 1 : width - w - 1]
        not_falling = inner >= segs[:, w + 1 : width - w + 1]
        rows, positions = np.nonzero(rising & not_falling & (inner > _SILENT_ENVELOPE))
        positions = positions + w
        # The moving-window envelope ripples: most local maxima are topped a few samples
        # away. Neither a candidate nor a hump of its own (the highest over ± hump_window_s)
        # can be. (Only worth its calls on a long stretch: a packet has a maximum or two.)
        for k in range(2, self._screen + 1):
            if positions.size > _SCREEN_FROM:
                values = segs[rows, positions]
                kept = (values > segs[rows, positions - k]) & (values >= segs[rows, positions + k])
                rows, positions = rows[kept], positions[kept]
        if positions.size:
            values = segs[rows, positions]
            windows = segs[rows[:, None], positions[:, None] + self._window_offsets]
            left_max = windows[:, :w].max(axis=1)
            right_max = windows[:, w + 1 :].max(axis=1)
            keep = (values > left_max) & (values >= right_max)
            # Only maxima at least hump_height_ratio × their window's highest can be humps.
            maybe = ~keep & (values >= self._hump_height * np.maximum(left_max, right_max))
            if maybe.any():
                keep[maybe] = self._separate_humps(
                    values[maybe], windows[maybe, :w], windows[maybe, w + 1 :]
                )
            rows, positions = rows[keep], positions[keep]
        return rows, positions

    def _separate_humps(
        self, values: FloatArray, left: FloatArray, right: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """Which local maxima are humps of their own beside a higher neighbour in their window.

        ``left`` and ``right`` hold the ``w`` envelope samples before and after each maximum. A
        maximum counts when it is the highest over ± ``hump_window_s``; on each side the envelope
        falls to ``hump_valley_ratio`` × its height before reaching a sample as high (before) or
        higher (after); and it is at least ``hump_height_ratio`` × the highest sample around it.
        At a fast rate this is the next beat's QRS; P and T waves are far smaller than the QRS
        beside them, so at slow rates the windows still hold one candidate per beat.
        """
        valley, ratio, hw = self._hump_valley, self._hump_height, self._hump_w
        v = values[:, None]
        w = left.shape[1]
        cols = np.arange(w)
        # Before: the nearest sample as high (last such column, −1 if none) and the lowest after it.
        hit = left >= v
        last = np.where(hit.any(axis=1), w - 1 - np.argmax(hit[:, ::-1], axis=1), -1)
        low_left = np.where(cols[None, :] > last[:, None], left, np.inf).min(axis=1)
        # After: the nearest higher sample (first such column, w if none) and the lowest before it.
        hit_r = right > v
        first = np.where(hit_r.any(axis=1), np.argmax(hit_r, axis=1), w)
        low_right = np.where(cols[None, :] < first[:, None], right, np.inf).min(axis=1)
        ok_left = (last < 0) | (low_left <= valley * values)
        ok_right = (first >= w) | (low_right <= valley * values)
        near = (values > left[:, w - hw :].max(axis=1)) & (values >= right[:, :hw].max(axis=1))
        big = values >= ratio * np.maximum(left.max(axis=1), right.max(axis=1))
        return np.asarray(ok_left & ok_right & near & big, dtype=np.bool_)

    @staticmethod
    def _describe_many(found: list[tuple[RPeakDetector, IndexArray]], final: bool) -> None:
        """Queue the candidates at buffer positions ``b`` of each ``(detector, b)``, with their
        height, steepest slope and R-peak position (:meth:`_describe_alike`, one detector at a
        time; at the end of the stream the level buffer is padded for the last R-peak windows)."""
        for d, b in found:
            level = d._level
            if final:
                level = np.concatenate([level, np.zeros(d._loc_before + d._loc_after + 1)])
            RPeakDetector._describe_alike(
                [d],
                d._start * d._k - d._level_start,
                d._env[None],
                d._slope[None],
                level[None],
                np.zeros(b.size, dtype=np.int64),
                b,
            )

    @staticmethod
    def _describe_alike(
        detectors: list[RPeakDetector],
        level_offset: int,
        env: FloatArray,
        slopes: FloatArray,
        level: FloatArray,
        rows: IndexArray,
        b: IndexArray,
    ) -> None:
        """Queue the candidates of detectors whose buffers lie alike and are rows of ``env``,
        ``slopes`` and ``level`` (``level_offset``: where envelope position 0 falls in the level
        buffer, ``start × k − level_start``, the same for all): candidate ``j`` is at buffer
        position ``b[j]`` of row ``rows[j]`` (sorted by row), and gets its height, steepest
        slope and R-peak position. The R-peak windows of all of them are centred in one call."""
        d0 = detectors[0]
        n = d0._n_int
        first = b * d0._k + level_offset - d0._loc_before  # R-peak windows, level positions
        offsets = np.arange(d0._loc_before + d0._loc_after + 1)
        windows = level[rows[:, None], first[:, None] + offsets]
        peaks = np.argmax(np.abs(windows - _row_medians(windows)), axis=1)
        steepest = slopes[rows[:, None], b[:, None] - n + np.arange(n + 1)].max(axis=1)
        for row, i, h, sl, r in zip(
            rows.tolist(),
            b.tolist(),
            env[rows, b].tolist(),
            steepest.tolist(),
            (peaks + first).tolist(),
            strict=True,
        ):
            d = detectors[row]
            r += d._level_start
            d._pending.append(_Candidate(i + d._start, h, sl, r if r > 0 else 0))

    def _trim(self) -> None:
        keep_from = self._next_check - max(self._w, self._n_int) - 2 - self._start
        if keep_from > 0:
            self._env = self._env[keep_from:]
            self._slope = self._slope[keep_from:]
            self._start += keep_from
        keep_level = self._next_check * self._k - self._loc_before - 1 - self._level_start
        if keep_level > 0:
            self._level = self._level[keep_level:]
            self._level_start += keep_level

    # ----------------------------------------------------------------------------- decisions
    def _decide(self, final: bool) -> IndexArray:
        if not self._started:
            if not final and self._n_env - self._w <= self._learning:
                return np.zeros(0, dtype=np.int64)
            self._start_levels()
        horizon = self._n_env if final else self._n_env - self._w  # all candidates < horizon known
        beats: list[int] = []
        pending = self._pending
        s = self.settings
        fraction, update = s.threshold_fraction, s.level_update
        t_wave, t_ratio = self._t_wave, s.t_wave_slope_ratio
        # The common path (one candidate against the threshold) is written out inline: it runs
        # once per candidate peak, a few times per second of ECG.
        while True:
            if pending and pending[0].position <= self._deadline:
                c = pending.popleft()
                if self._last_index >= 0 and (
                    c.position - self._last_index < self._min_rr
                    or c.r_index - self._last_r < self._min_rr_full
                ):
                    continue  # refractory: neither a beat nor noise
                threshold = self._noise_level + fraction * (self._signal_level - self._noise_level)
                if c.height > threshold and not (
                    self._last_index >= 0
                    and c.position - self._last_index < t_wave
                    and c.slope < t_ratio * self._last_slope
                ):
                    self._signal_level += update * (c.height - self._signal_level)
                    self._accept(c, beats)
                else:
                    self._noise_level += update * (c.height - self._noise_level)
                    self._pool.append(c)
            elif self._deadline < horizon:
                self._search_back(beats)
            else:
                break
        return np.asarray(beats, dtype=np.int64)

    def _start_levels(self) -> None:
        """Initial signal and noise levels from the learning period (Pan & Tompkins' phase 1)."""
        self._started = True
        env = np.concatenate(self._learning_env) if self._learning_env else np.zeros(0)
        self._learning_env = []
        second = max(1, round(self._efs))
        maxima = [float(np.max(env[i : i + second])) for i in range(0, env.size, second)]
        self._signal_level = float(np.median(maxima)) if maxima else 0.0
        noise = 0.5 * float(np.mean(env)) if env.size else 0.0
        self._noise_level = min(noise, self._signal_level)

    def _threshold(self) -> float:
        fraction = self.settings.threshold_fraction
        return self._noise_level + fraction * (self._signal_level - self._noise_level)

    def _is_t_wave(self, c: _Candidate) -> bool:
        return (
            self._last_index >= 0
            and c.position - self._last_index < self._t_wave
            and c.slope < self.settings.t_wave_slope_ratio * self._last_slope
        )

    def _is_refractory(self, c: _Candidate) -> bool:
        """Closer than ``min_rr_s`` to the last beat, by its envelope hump or by its R peak."""
        return self._last_index >= 0 and (
            c.position - self._last_index < self._min_rr
            or c.r_index - self._last_r < self._min_rr_full
        )

    def _accept(self, c: _Candidate, beats: list[int]) -> None:
        rr = self._rr
        if self._last_index >= 0:
            rr.append(c.position - self._last_index)
            if len(rr) > self.settings.rr_average_beats:
                rr.popleft()
        self._last_index = c.position
        self._last_slope = c.slope
        self._pool = []
        self._deadline = c.position + self.settings.searchback_rr_factor * self._rr_average()
        if c.r_index > self._last_r:
            beats.append(c.r_index)
            self._last_r = c.r_index

    def _rr_average(self) -> float:
        if not self._rr:
            return self._max_rr
        return min(max(sum(self._rr) / len(self._rr), self._min_rr), self._max_rr)

    def _search_back(self, beats: list[int]) -> None:
        """No beat for 1.66 RR: take the largest earlier candidate above half the threshold."""
        s = self.settings
        floor = s.searchback_threshold_ratio * self._threshold()
        eligible = [
            c
            for c in self._pool
            if c.position <= self._deadline
            and c.height > floor
            and not self._is_t_wave(c)
            and not self._is_refractory(c)
        ]
        if eligible:
            best = max(eligible, key=lambda c: c.height)
            self._signal_level += 2 * s.level_update * (best.height - self._signal_level)
            remaining = [c for c in self._pool if c.position > best.position]
            self._accept(best, beats)
            self._pool = remaining
        else:
            # Candidates up to the deadline had their chance: keeping them would let a beat be
            # reported arbitrarily late once the threshold drifts down.
            self._pool = [c for c in self._pool if c.position > self._deadline]
            self._deadline += self._rr_average()


def _row_medians(x: FloatArray) -> FloatArray:
    """``np.median(x, axis=1, keepdims=True)``, the same values, with less overhead per call."""
    m = x.shape[1] // 2
    if x.shape[1] % 2:
        return np.partition(x, m, axis=1)[:, m : m + 1]
    part = np.partition(x, (m - 1, m), axis=1)
    return (part[:, m - 1 : m] + part[:, m : m + 1]) / 2.0


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
