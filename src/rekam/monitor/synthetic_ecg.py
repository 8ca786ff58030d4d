"""Synthetic single-lead ECG: PQRST complexes at chosen R-peak times, rendered in blocks.

Each beat is a sum of five Gaussian waves (P, Q, R, S, T) placed relative to its R peak; the
QT interval shortens with the rate (Bazett-like), so fast rhythms keep the T wave clear of the
next beat. Rendering is vectorised over the samples of each wave; a block of any length can be
rendered on its own, so a simulated device produces its signal chunk by chunk for ever.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["WAVES", "render_ecg"]

FloatArray = npt.NDArray[np.float64]

# P, Q, R, S, T: (offset from R in s at 60 bpm, amplitude in mV, width in s)
WAVES: tuple[tuple[float, float, float], ...] = (
    (-0.20, 0.12, 0.025),
    (-0.03, -0.10, 0.010),
    (0.0, 1.2, 0.011),
    (0.03, -0.25, 0.010),
    (0.25, 0.30, 0.045),
)
_REACH_S = 0.45  # no wave reaches further than this from its R peak


def render_ecg(
    beat_times_s: npt.ArrayLike,
    rr_s: npt.ArrayLike,
    fs: float,
    start_s: float,
    n_samples: int,
    *,
    amplitude: float = 1.0,
) -> FloatArray:
    """The ECG (mV) of the samples ``start_s + i / fs`` for ``i < n_samples``.

    ``beat_times_s`` are R-peak times; ``rr_s`` the RR interval leading to each (it scales the
    P and T offsets). Beats outside the block reach into it when close enough.
    """
    t = start_s + np.arange(n_samples) / fs
    x = np.zeros(n_samples)
    beats = np.asarray(beat_times_s, dtype=np.float64).reshape(-1)
    rrs = np.asarray(rr_s, dtype=np.float64).reshape(-1)
    for r, rr in zip(beats.tolist(), rrs.tolist(), strict=True):
        scale = float(np.sqrt(min(max(rr, 0.3), 1.5)))
        lo = int(np.searchsorted(t, r - _REACH_S * scale))
        hi = int(np.searchsorted(t, r + _REACH_S * scale))
        if hi <= lo:
            continue
        seg = t[lo:hi] - r
        for offset, amp, width in WAVES:
            centre = offset * scale if offset < -0.1 or offset > 0.1 else offset
            x[lo:hi] += amplitude * amp * np.exp(-0.5 * ((seg - centre) / width) ** 2)
    return x
