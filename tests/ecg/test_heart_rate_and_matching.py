"""Heart rate, moving average and beat matching: properties checked against direct formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rekam.ecg import heart_rate_series, match_beats, moving_average


@given(st.lists(st.floats(30, 250), min_size=1, max_size=60), st.integers(1, 20))
def test_moving_average_is_the_mean_of_the_last_window_values(
    values: list[float], window: int
) -> None:
    got = moving_average(values, window)
    expected = [np.mean(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


@given(st.lists(st.integers(50, 1000), min_size=1, max_size=50), st.sampled_from([125, 360, 1000]))
def test_heart_rate_is_60000_over_rr_ms(gaps: list[int], fs: int) -> None:
    beats = np.cumsum([10, *gaps])
    series = heart_rate_series(beats, fs, window=5)
    rr_ms = np.array(gaps) * 1000.0 / fs
    np.testing.assert_allclose(series.instantaneous_bpm, 60000.0 / rr_ms)
    np.testing.assert_allclose(series.times_s, beats[1:] / fs)


def brute_force_tp(ref: list[int], det: list[int], tol: int) -> int:
    used: set[int] = set()
    tp = 0
    for r in sorted(ref):
        options = [
            (abs(d - r), i)
            for i, d in enumerate(sorted(det))
            if abs(d - r) <= tol and i not in used
        ]
        if options:
            used.add(min(options)[1])
            tp += 1
    return tp


@settings(max_examples=200)
@given(
    st.lists(st.integers(0, 5000), max_size=40, unique=True),
    st.lists(st.integers(0, 5000), max_size=40, unique=True),
    st.integers(0, 120),
)
def test_matching_agrees_with_brute_force(ref: list[int], det: list[int], tol: int) -> None:
    score, matched = match_beats(ref, det, tol)
    tp = brute_force_tp(ref, det, tol)
    assert score.true_positives == tp
    assert score.false_negatives == len(ref) - tp
    assert score.false_positives == len(det) - tp
    assert len(set(matched[matched >= 0].tolist())) == tp  # each detection used once


def test_scores_in_percent() -> None:
    score, _ = match_beats([100, 400, 700, 1000], [102, 398, 900], 54)
    assert (score.true_positives, score.false_negatives, score.false_positives) == (2, 2, 1)
    assert score.sensitivity == pytest.approx(50.0)
    assert score.positive_predictivity == pytest.approx(200 / 3)
