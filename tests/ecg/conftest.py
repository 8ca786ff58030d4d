"""Shared fixtures for the ECG tests: the MIT-BIH records and a synthetic ECG generator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/ecg"
MITDB_DIR = DATA_DIR / "mitdb"
MITDB_RECORDS = ("100", "102", "105", "106", "116", "119", "121", "200")


@pytest.fixture(scope="session")
def mitdb_records() -> list[Path]:
    missing = [r for r in MITDB_RECORDS if not (MITDB_DIR / f"{r}.hea").is_file()]
    if missing:
        pytest.skip(f"MIT-BIH records not found in {MITDB_DIR} (missing {', '.join(missing)})")
    return [MITDB_DIR / r for r in MITDB_RECORDS]


# P, Q, R, S, T waves: (offset from R in s, amplitude in mV, width in s)
_WAVES = (
    (-0.20, 0.12, 0.025),
    (-0.03, -0.10, 0.010),
    (0.0, 1.2, 0.011),
    (0.03, -0.25, 0.010),
    (0.25, 0.30, 0.045),
)


def synthetic_ecg(
    beat_times_s: Sequence[float] | npt.NDArray[np.float64],
    fs: float,
    duration_s: float,
    *,
    noise_mv: float = 0.01,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    """A simple PQRST ECG (mV) with beats at the given R-peak times, mild noise and wander."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration_s * fs)) / fs
    x = 0.1 * np.sin(2 * np.pi * 0.2 * t) + noise_mv * rng.standard_normal(t.size)
    for r in np.asarray(beat_times_s, dtype=np.float64):
        lo, hi = np.searchsorted(t, [r - 0.4, r + 0.5])
        seg = t[lo:hi] - r
        for offset, amp, width in _WAVES:
            x[lo:hi] += amp * np.exp(-0.5 * ((seg - offset) / width) ** 2)
    return x


def beats_at_rate(bpm: float, duration_s: float, start_s: float = 0.5) -> npt.NDArray[np.float64]:
    return np.arange(start_s, duration_s - 0.5, 60.0 / bpm)
