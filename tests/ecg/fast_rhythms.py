"""Fast-rhythm test signals built from real MIT-BIH beats and from a rate-aware synthetic ECG.

Three kinds, each with its true R-peak times:

* :func:`respaced_record` — the real beats of a record, one after another, placed at a new, shorter
  RR interval. Each beat keeps its QRS as recorded; its ST-T segment is shortened as the QT
  interval shortens with rate (Fridericia: QT ∝ RR^(1/3)) and the P wave moves closer to the QRS
  (PR ∝ RR^(1/2), a modest shortening). Beats are overlap-added, so at very fast rates the next P
  wave lands on the T wave, as it does in a real tachycardia.
* :func:`compressed_record` — the record played faster as a whole (every wave, QRS included,
  shortened by the same factor): not physiological, a harder case.
* :func:`synthetic_fast_ecg` — Gaussian PQRST beats whose QT follows Fridericia.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import wfdb
from scipy import signal as sp_signal

from rekam.ecg import BEAT_SYMBOLS

FloatArray = npt.NDArray[np.float64]

# Part of a beat kept as recorded around the R peak (QRS), in s.
_QRS_BEFORE = 0.05
_QRS_AFTER = 0.06
# Where a beat's P wave region starts, before R, at the record's own rate.
_P_REGION = 0.25
_EDGE_TAPER = 0.04


def _qt_end_after_r(rr_s: float) -> float:
    """End of the T wave after the R peak for a QTc of 400 ms (Fridericia), in s."""
    return 0.40 * rr_s ** (1.0 / 3.0) - 0.04


def _read(path: Path) -> tuple[FloatArray, float, npt.NDArray[np.int64]]:
    record = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), "atr")
    beats = np.array(
        [s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS],
        dtype=np.int64,
    )
    return np.asarray(record.p_signal[:, 0], dtype=np.float64), float(record.fs), beats


def target_rr(bpm: float, n: int, seed: int) -> FloatArray:
    """``n`` RR intervals (s) around ``bpm`` with a mild (2 %) beat-to-beat variability."""
    rng = np.random.default_rng(seed)
    return (60.0 / bpm) * (1.0 + 0.02 * np.clip(rng.standard_normal(n), -2.5, 2.5))


def respaced_record(
    path: Path, bpm: float, duration_s: float, *, seed: int = 0, skip_beats: int = 2
) -> tuple[FloatArray, float, FloatArray]:
    """Real beats of ``path`` (channel 0) re-spaced at ``bpm``: (mV, fs, true R times in s)."""
    raw, fs, ref = _read(path)
    # Remove the baseline wander so beats can be overlap-added; the rest of the signal (noise,
    # morphology, beat-to-beat differences) is the record's own.
    sos = sp_signal.butter(2, 0.5, btype="highpass", fs=fs, output="sos")
    x = sp_signal.sosfiltfilt(sos, raw)
    n_out = round(duration_s * fs)
    out = np.zeros(n_out)
    rr_out = target_rr(bpm, int(duration_s * bpm / 60.0) + 4, seed)
    r_times = 0.5 + np.concatenate([[0.0], np.cumsum(rr_out)])
    r_times = r_times[r_times < duration_s - 0.5]
    t_out = np.arange(n_out) / fs
    for k, r_out in enumerate(r_times.tolist()):
        i = skip_beats + k
        if i + 1 >= ref.size:
            raise ValueError(f"{path.name} has too few beats for {duration_s} s at {bpm} bpm")
        s = ref[i] / fs
        rr_in = (ref[i + 1] - ref[i]) / fs
        rr_prev_in = (ref[i] - ref[i - 1]) / fs
        rr_new = float(rr_out[k])
        t_end_in = min(_qt_end_after_r(rr_in) + 0.04, rr_in - _QRS_BEFORE)
        t_end_out = max(_QRS_AFTER + 0.05, t_end_in * (rr_new / rr_in) ** (1.0 / 3.0))
        p_in = min(_P_REGION, rr_prev_in - 0.1)
        p_out = _QRS_BEFORE + (p_in - _QRS_BEFORE) * min(1.0, (rr_new / rr_prev_in) ** 0.5)
        # Piecewise-linear map from output time (relative to R) to input time (relative to R).
        knots_out = [-p_out, -_QRS_BEFORE, _QRS_AFTER, t_end_out]
        knots_in = [-p_in, -_QRS_BEFORE, _QRS_AFTER, t_end_in]
        lo, hi = np.searchsorted(t_out, [r_out - p_out, r_out + t_end_out])
        rel = t_out[lo:hi] - r_out
        src = s + np.interp(rel, knots_out, knots_in)
        seg = np.interp(src * fs, np.arange(x.size), x)
        taper = np.ones(seg.size)
        edge = max(1, round(_EDGE_TAPER * fs))
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, min(edge, seg.size // 2)))
        taper[: ramp.size] = ramp
        taper[seg.size - ramp.size :] = ramp[::-1]
        out[lo:hi] += seg * taper
    rng = np.random.default_rng(seed + 1)
    out += 0.1 * np.sin(2 * np.pi * 0.25 * t_out) + 0.01 * rng.standard_normal(n_out)
    return out, fs, r_times


def compressed_record(
    path: Path, speed: float, duration_s: float
) -> tuple[FloatArray, float, FloatArray]:
    """``path`` (channel 0) played ``speed`` times faster, kept at its sampling rate."""
    raw, fs, ref = _read(path)
    up, down = 100, round(100 * speed)
    n_in = int(duration_s * speed * fs) + 1
    x = sp_signal.resample_poly(raw[:n_in], up, down)
    x = x[: round(duration_s * fs)]
    true = ref / fs / (down / up)
    return x, fs, true[true < x.size / fs]


def mean_rate_bpm(path: Path) -> float:
    _, fs, ref = _read(path)
    return 60.0 * fs / float(np.median(np.diff(ref)))


_WAVES = (  # P, Q, R, S, T at 60 bpm: (offset from R in s, amplitude in mV, width in s)
    (-0.16, 0.12, 0.025),
    (-0.03, -0.10, 0.010),
    (0.0, 1.2, 0.011),
    (0.03, -0.25, 0.010),
    (0.26, 0.35, 0.045),
)


def synthetic_fast_ecg(
    bpm: float, fs: float, duration_s: float, *, seed: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Synthetic PQRST ECG (mV) at ``bpm`` with a Fridericia QT; returns (samples, R times)."""
    rng = np.random.default_rng(seed)
    rr = target_rr(bpm, int(duration_s * bpm / 60.0) + 4, seed)
    r_times = 0.5 + np.concatenate([[0.0], np.cumsum(rr)])
    r_times = r_times[r_times < duration_s - 0.5]
    t = np.arange(round(duration_s * fs)) / fs
    x = 0.1 * np.sin(2 * np.pi * 0.2 * t) + 0.01 * rng.standard_normal(t.size)
    for k, r in enumerate(r_times.tolist()):
        lo, hi = np.searchsorted(t, [r - 0.3, r + 0.5])
        seg = t[lo:hi] - r
        for offset, amp, width in _WAVES:
            if offset > 0.1:
                offset *= float(rr[k]) ** (1.0 / 3.0)
                width *= float(rr[k]) ** (1.0 / 3.0)
            elif offset < -0.1:
                offset *= min(1.0, float(rr[k]) ** 0.5)
            x[lo:hi] += amp * np.exp(-0.5 * ((seg - offset) / width) ** 2)
    return x, r_times
