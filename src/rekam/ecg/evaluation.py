"""Evaluation of detected beats against reference annotations.

Beat matching follows the usual practice for the MIT-BIH database (close to ANSI/AAMI EC57):
a detection matches a reference beat within ± 150 ms; reference beats are taken in time order and
each takes the nearest detection not yet matched, so each is matched at most once. Every beat
annotation counts, from the start of the record.

Heart-rate agreement compares 60000 / RR after the moving average, sampled on a 1 Hz grid,
detected against reference: RMSE in bpm, the "accuracy = 100 − RMSE" figure of the published
wearable study, and the share of seconds on which both agree on bradycardia / normal / tachycardia.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import SignalValueError
from rekam.ecg.heart_rate import DEFAULT_AVERAGE_BEATS, heart_rate_on_grid, heart_rate_series
from rekam.ecg.recording import Recording
from rekam.ecg.rhythm import RhythmClass, RhythmThresholds, classify_rhythm
from rekam.ecg.rpeaks import detect_r_peaks

__all__ = [
    "MATCH_TOLERANCE_S",
    "DetectionScore",
    "HeartRateAgreement",
    "RecordEvaluation",
    "compare_heart_rates",
    "evaluate_recording",
    "match_beats",
    "total_evaluation",
]

IndexArray = npt.NDArray[np.int64]
MATCH_TOLERANCE_S = 0.150


@dataclass(frozen=True)
class DetectionScore:
    """True positives, missed beats and false detections, with the derived rates (in %)."""

    true_positives: int
    false_negatives: int
    false_positives: int

    @property
    def reference_beats(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def detected_beats(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def sensitivity(self) -> float:
        """Se = TP / (TP + FN), in percent."""
        return _percent(self.true_positives, self.reference_beats)

    @property
    def positive_predictivity(self) -> float:
        """+P = TP / (TP + FP), in percent."""
        return _percent(self.true_positives, self.detected_beats)

    @property
    def f1(self) -> float:
        """F1 = 2 TP / (2 TP + FN + FP), in percent."""
        return _percent(
            2 * self.true_positives,
            2 * self.true_positives + self.false_negatives + self.false_positives,
        )

    def __add__(self, other: DetectionScore) -> DetectionScore:
        return DetectionScore(
            self.true_positives + other.true_positives,
            self.false_negatives + other.false_negatives,
            self.false_positives + other.false_positives,
        )


def _percent(num: int, den: int) -> float:
    return 100.0 * num / den if den else float("nan")


def match_beats(
    reference: npt.ArrayLike, detected: npt.ArrayLike, tolerance: int
) -> tuple[DetectionScore, IndexArray]:
    """Match detections to reference beats within ``tolerance`` samples.

    Returns the score and, for each reference beat, the index of its matched detection (or −1).
    """
    ref = np.sort(np.asarray(reference, dtype=np.int64).reshape(-1))
    det = np.sort(np.asarray(detected, dtype=np.int64).reshape(-1))
    matched = np.full(ref.size, -1, dtype=np.int64)
    used = np.zeros(det.size, dtype=bool)
    lo_all = np.searchsorted(det, ref - tolerance, side="left")
    hi_all = np.searchsorted(det, ref + tolerance, side="right")
    # One step per reference beat (a few per second); each looks at the few detections in reach.
    for i, (lo, hi) in enumerate(zip(lo_all.tolist(), hi_all.tolist(), strict=True)):
        best, best_distance = -1, tolerance + 1
        for j in range(lo, hi):
            distance = abs(int(det[j]) - int(ref[i]))
            if not used[j] and distance < best_distance:
                best, best_distance = j, distance
        if best >= 0:
            used[best] = True
            matched[i] = best
    tp = int(np.count_nonzero(matched >= 0))
    return DetectionScore(tp, int(ref.size - tp), int(det.size - tp)), matched


@dataclass(frozen=True)
class HeartRateAgreement:
    """Detected against reference heart rate on a 1 Hz grid."""

    seconds: int
    squared_error_sum: float
    agreeing_seconds: int
    reference_brady_s: int
    reference_tachy_s: int
    detected_brady_s: int
    detected_tachy_s: int

    @property
    def rmse_bpm(self) -> float:
        return (
            float(np.sqrt(self.squared_error_sum / self.seconds)) if self.seconds else float("nan")
        )

    @property
    def accuracy_percent(self) -> float:
        """The published study's figure: 100 − RMSE (bpm)."""
        return 100.0 - self.rmse_bpm

    @property
    def rhythm_agreement_percent(self) -> float:
        """Share of seconds where both rates give the same class (brady / normal / tachy)."""
        return _percent(self.agreeing_seconds, self.seconds)

    def __add__(self, other: HeartRateAgreement) -> HeartRateAgreement:
        return HeartRateAgreement(
            seconds=self.seconds + other.seconds,
            squared_error_sum=self.squared_error_sum + other.squared_error_sum,
            agreeing_seconds=self.agreeing_seconds + other.agreeing_seconds,
            reference_brady_s=self.reference_brady_s + other.reference_brady_s,
            reference_tachy_s=self.reference_tachy_s + other.reference_tachy_s,
            detected_brady_s=self.detected_brady_s + other.detected_brady_s,
            detected_tachy_s=self.detected_tachy_s + other.detected_tachy_s,
        )


def _class_per_second(
    beats: IndexArray, fs: float, window: int, duration_s: float, thresholds: RhythmThresholds
) -> npt.NDArray[np.object_]:
    series = heart_rate_series(beats, fs, window)
    grid = np.arange(0.0, duration_s + 1e-9, 1.0)
    classes = np.full(grid.size, RhythmClass.NORMAL, dtype=object)
    if len(series) == 0:
        return classes
    for ep in classify_rhythm(series, thresholds, duration_s=duration_s):
        classes[(grid >= ep.start_s) & (grid < ep.end_s)] = ep.kind
    return classes


def compare_heart_rates(
    reference: npt.ArrayLike,
    detected: npt.ArrayLike,
    fs: float,
    duration_s: float,
    *,
    window: int = DEFAULT_AVERAGE_BEATS,
    thresholds: RhythmThresholds | None = None,
) -> HeartRateAgreement:
    """Compare moving-average heart rates (1 Hz grid) and rhythm classes per second."""
    th = thresholds if thresholds is not None else RhythmThresholds()
    ref = np.sort(np.asarray(reference, dtype=np.int64).reshape(-1))
    det = np.sort(np.asarray(detected, dtype=np.int64).reshape(-1))
    _, hr_ref = heart_rate_on_grid(heart_rate_series(ref, fs, window), duration_s)
    _, hr_det = heart_rate_on_grid(heart_rate_series(det, fs, window), duration_s)
    both = np.isfinite(hr_ref) & np.isfinite(hr_det)
    squared = float(np.sum((hr_ref[both] - hr_det[both]) ** 2))
    cls_ref = _class_per_second(ref, fs, window, duration_s, th)[both]
    cls_det = _class_per_second(det, fs, window, duration_s, th)[both]
    return HeartRateAgreement(
        seconds=int(np.count_nonzero(both)),
        squared_error_sum=squared,
        agreeing_seconds=int(np.count_nonzero(cls_ref == cls_det)),
        reference_brady_s=int(np.count_nonzero(cls_ref == RhythmClass.BRADYCARDIA)),
        reference_tachy_s=int(np.count_nonzero(cls_ref == RhythmClass.TACHYCARDIA)),
        detected_brady_s=int(np.count_nonzero(cls_det == RhythmClass.BRADYCARDIA)),
        detected_tachy_s=int(np.count_nonzero(cls_det == RhythmClass.TACHYCARDIA)),
    )


@dataclass(frozen=True)
class RecordEvaluation:
    """Detection and heart-rate agreement for one record (or, summed, for several)."""

    name: str
    score: DetectionScore
    heart_rate: HeartRateAgreement


def evaluate_recording(
    recording: Recording,
    *,
    lead: int | str = 0,
    window: int = DEFAULT_AVERAGE_BEATS,
    thresholds: RhythmThresholds | None = None,
    detected: npt.ArrayLike | None = None,
) -> RecordEvaluation:
    """Detect beats on ``lead`` (unless ``detected`` is given) and score them."""
    reference = recording.reference_beats()
    if reference is None:
        raise SignalValueError(
            f"The recording {recording.name or ''} has no reference annotations to compare with."
        )
    beats = (
        detect_r_peaks(recording.lead(lead), recording.fs)
        if detected is None
        else np.asarray(detected, dtype=np.int64)
    )
    tolerance = round(MATCH_TOLERANCE_S * recording.fs)
    score, _ = match_beats(reference, beats, tolerance)
    agreement = compare_heart_rates(
        reference, beats, recording.fs, recording.duration_s, window=window, thresholds=thresholds
    )
    return RecordEvaluation(recording.name, score, agreement)


def total_evaluation(evaluations: Iterable[RecordEvaluation]) -> RecordEvaluation:
    """Sum of several records' evaluations (beats and seconds pooled)."""
    items = list(evaluations)
    if not items:
        raise SignalValueError("There are no records to total.")
    score = items[0].score
    agreement = items[0].heart_rate
    for item in items[1:]:
        score = score + item.score
        agreement = agreement + item.heart_rate
    return RecordEvaluation("total", score, agreement)
