"""R-peak detection: Rekam against NeuroKit2 (default) and wfdb XQRS on the shared MIT-BIH records.

Run: .venv/bin/python bench/ecg_detection.py   (needs the ``bench`` extra for NeuroKit2)

All detectors run in the same process on the same samples (channel 0); scoring uses Rekam's
beat matching (±150 ms, every beat annotation). Speed is the best of three passes, in seconds of
computation per hour of ECG, reading the files excluded.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rekam.ecg import DetectionScore, detect_r_peaks, match_beats, read_wfdb

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/ecg/mitdb"
RECORDS = ("100", "102", "105", "106", "116", "119", "121", "200")
Detector = Callable[[npt.NDArray[np.float64], float], npt.NDArray[np.int64]]


def rekam(x: npt.NDArray[np.float64], fs: float) -> npt.NDArray[np.int64]:
    return detect_r_peaks(x, fs)


def neurokit(x: npt.NDArray[np.float64], fs: float) -> npt.NDArray[np.int64]:
    import neurokit2 as nk

    cleaned = nk.ecg_clean(x, sampling_rate=fs)
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def xqrs(x: npt.NDArray[np.float64], fs: float) -> npt.NDArray[np.int64]:
    from wfdb import processing

    return np.asarray(processing.xqrs_detect(x, fs=fs, verbose=False), dtype=np.int64)


def main() -> int:
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if not DATA.is_dir():
        print(f"MIT-BIH records not found in {DATA}", file=sys.stderr)
        return 1
    recordings = [read_wfdb(DATA / r) for r in RECORDS]
    signals = [(rec.lead(0), rec.fs) for rec in recordings]
    hours = sum(rec.duration_s for rec in recordings) / 3600
    detectors: dict[str, tuple[Detector, int]] = {
        "Rekam": (rekam, 3),
        "NeuroKit2 default": (neurokit, 3),
        "wfdb XQRS": (xqrs, 1),
    }
    rows = []
    for name, (detect, passes) in detectors.items():
        detect(*signals[0])  # warm up imports and caches
        best = float("inf")
        found: list[npt.NDArray[np.int64]] = []
        for _ in range(passes):
            start = time.perf_counter()
            found = [detect(x, fs) for x, fs in signals]
            best = min(best, time.perf_counter() - start)
        score = DetectionScore(0, 0, 0)
        for rec, beats in zip(recordings, found, strict=True):
            reference = rec.reference_beats()
            assert reference is not None
            score = score + match_beats(reference, beats, round(0.150 * rec.fs))[0]
        rows.append((name, score, best / hours))
    nk_speed = next(r[2] for r in rows if r[0] == "NeuroKit2 default")
    print(
        f"R-peak detection, {len(RECORDS)} MIT-BIH records ({hours:.1f} h, "
        f"{rows[0][1].reference_beats} beats), ±150 ms; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}\n"
    )
    print("| detector | Se % | +P % | F1 % | FN | FP | s per hour of ECG | speed vs NeuroKit2 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, s, speed in rows:
        print(
            f"| {name} | {s.sensitivity:.2f} | {s.positive_predictivity:.2f} | {s.f1:.2f} | "
            f"{s.false_negatives} | {s.false_positives} | {speed:.3f} | "
            f"{nk_speed / speed:.2f}× |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
