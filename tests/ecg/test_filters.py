"""Band-pass filters: the streaming filter gives SciPy's causal output in any split, designs are
SciPy's Butterworth designs, and the designs kept for reuse cannot be changed through a filter
or a caller."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sp_signal

from rekam.ecg import StreamingBandPass, bandpass_filter, design_bandpass
from rekam.ecg.errors import InvalidParameterError


def noisy_signal(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 250.0
    return (
        0.8
        + np.sin(2 * np.pi * 1.2 * t)
        + 0.3 * np.sin(2 * np.pi * 17 * t)
        + rng.normal(0, 0.05, n)
    )


@pytest.mark.parametrize(("fs", "order"), [(250.0, 2), (360.0, 2), (1000.0, 4)])
def test_the_stream_gives_scipys_causal_output_in_any_split(fs: float, order: int) -> None:
    x = noisy_signal(5000)
    reference_sos = sp_signal.butter(order, [5.0, 15.0], btype="bandpass", fs=fs, output="sos")
    expected = sp_signal.sosfilt(reference_sos, x, zi=sp_signal.sosfilt_zi(reference_sos) * x[0])[0]
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.choice(np.arange(1, x.size), size=60, replace=False))
    stream = StreamingBandPass.bandpass(fs, 5.0, 15.0, order=order)
    got = np.concatenate([stream.feed(part) for part in np.split(x, cuts)])
    assert np.max(np.abs(got - expected)) < 1e-9 * np.ptp(x)
    offline = bandpass_filter(x, fs, 5.0, 15.0, order=order, zero_phase=False)
    assert np.max(np.abs(offline - expected)) < 1e-9 * np.ptp(x)


def test_designs_are_scipys_and_a_caller_changing_one_changes_no_other() -> None:
    design = design_bandpass(250.0, 0.5, 40.0)
    expected = sp_signal.butter(2, [0.5, 40.0], btype="bandpass", fs=250.0, output="sos")
    assert np.array_equal(design, expected)
    design[:] = 0.0  # the caller's copy
    assert np.array_equal(design_bandpass(250.0, 0.5, 40.0), expected)
    stream = StreamingBandPass.bandpass(250.0, 0.5, 40.0)
    assert np.array_equal(stream._sos, expected)


def test_filters_of_one_design_share_read_only_coefficients_and_keep_their_own_state() -> None:
    one = StreamingBandPass.bandpass(500.0, 5.0, 15.0)
    other = StreamingBandPass.bandpass(500.0, 5.0, 15.0)
    assert one._b is other._b and one._zi_unit is other._zi_unit  # designed once
    for shared in (one._sos, one._b, one._a, one._zi_unit):
        with pytest.raises(ValueError, match="read-only"):
            shared[0] = 1.0
    x = noisy_signal(400)
    alone = StreamingBandPass.bandpass(500.0, 5.0, 15.0).feed(x)
    one.feed(x[:100] * 3)  # one filter's state is its own
    assert np.array_equal(other.feed(x), alone)


def test_bad_designs_are_refused_with_a_clear_error() -> None:
    with pytest.raises(InvalidParameterError, match="half the sampling rate"):
        design_bandpass(100.0, 5.0, 60.0)
    with pytest.raises(InvalidParameterError, match="order"):
        design_bandpass(250.0, 5.0, 15.0, order=0)
    with pytest.raises(InvalidParameterError, match="second-order sections"):
        StreamingBandPass(np.ones((2, 5)))


@pytest.mark.parametrize("order", [2, 4])
def test_filters_fed_together_give_what_each_gives_alone(order: int) -> None:
    rows = np.stack([noisy_signal(300, seed=1), noisy_signal(300, seed=2)])
    alone = [StreamingBandPass.bandpass(1000.0, 5.0, 15.0, order=order) for _ in rows]
    together = [StreamingBandPass.bandpass(1000.0, 5.0, 15.0, order=order) for _ in rows]
    expected = [f.feed(row[:150]) for f, row in zip(alone, rows, strict=True)]
    got = StreamingBandPass.feed_many(together, rows[:, :150])
    assert np.array_equal(got, np.stack(expected))
    expected = [f.feed(row[150:]) for f, row in zip(alone, rows, strict=True)]
    assert np.array_equal(StreamingBandPass.feed_many(together, rows[:, 150:]), np.stack(expected))
