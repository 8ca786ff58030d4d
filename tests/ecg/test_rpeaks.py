"""R-peak detection on MIT-BIH, offline and streaming, at several sampling rates."""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import wfdb
from scipy import signal as sp_signal
from typer.testing import CliRunner

from rekam.cli.ecg_cmd import app
from rekam.ecg import (
    BEAT_SYMBOLS,
    RPeakDetector,
    SamplingRateError,
    SignalValueError,
    detect_r_peaks,
)
from rekam.ecg.errors import InvalidParameterError

from .conftest import beats_at_rate, synthetic_ecg

TARGET = 99.5


def independent_match(
    reference: npt.NDArray[np.int64], detected: npt.NDArray[np.int64], tolerance: int
) -> int:
    """True positives, recomputed without the library: a plain two-list walk.

    Reference beats in order; each takes the closest still-free detection within tolerance.
    """
    free = sorted(int(d) for d in detected)
    taken: set[int] = set()
    tp = 0
    j = 0
    for r in (int(v) for v in reference):
        while j < len(free) and free[j] < r - tolerance:
            j += 1
        best = None
        k = j
        while k < len(free) and free[k] <= r + tolerance:
            if k not in taken and (best is None or abs(free[k] - r) < abs(free[best] - r)):
                best = k
            k += 1
        if best is not None:
            taken.add(best)
            tp += 1
    return tp


def read_reference(path: Path) -> tuple[npt.NDArray[np.float64], float, npt.NDArray[np.int64]]:
    record = wfdb.rdrecord(str(path))
    ann = wfdb.rdann(str(path), "atr")
    beats = np.array(
        [s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS],
        dtype=np.int64,
    )
    return np.asarray(record.p_signal[:, 0], dtype=np.float64), float(record.fs), beats


def test_cli_evaluate_reports_the_recomputed_numbers_and_meets_the_target(
    mitdb_records: list[Path],
) -> None:
    result = CliRunner().invoke(app, ["evaluate", *map(str, mitdb_records), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    tp_total = fn_total = fp_total = 0
    for path, row in zip(mitdb_records, report["records"], strict=True):
        samples, fs, reference = read_reference(path)
        detected = detect_r_peaks(samples, fs)
        tp = independent_match(reference, detected, round(0.150 * fs))
        fn, fp = reference.size - tp, detected.size - tp
        assert (row["true_positives"], row["false_negatives"], row["false_positives"]) == (
            tp,
            fn,
            fp,
        ), path.name
        assert row["sensitivity"] == pytest.approx(100 * tp / (tp + fn), abs=1e-4)
        assert row["positive_predictivity"] == pytest.approx(100 * tp / (tp + fp), abs=1e-4)
        tp_total, fn_total, fp_total = tp_total + tp, fn_total + fn, fp_total + fp
    se = 100 * tp_total / (tp_total + fn_total)
    ppv = 100 * tp_total / (tp_total + fp_total)
    total = report["total"]
    assert total["sensitivity"] == pytest.approx(se, abs=1e-4)
    assert total["positive_predictivity"] == pytest.approx(ppv, abs=1e-4)
    assert total["f1"] == pytest.approx(
        200 * tp_total / (2 * tp_total + fn_total + fp_total), abs=1e-4
    )
    assert se >= TARGET and ppv >= TARGET, (se, ppv)


def feed_in_random_chunks(
    samples: npt.NDArray[np.float64], fs: float, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], list[float]]:
    """Stream ``samples`` in random chunk sizes.

    Also returns, for each beat, how overdue it already was before the chunk that reported it
    arrived (s): the part of its delay that the chunking does not explain.
    """
    detector = RPeakDetector(fs)
    found: list[npt.NDArray[np.int64]] = []
    delays: list[float] = []
    position = 0
    while position < samples.size:
        size = int(np.exp(rng.uniform(0, np.log(6000))))
        chunk = samples[position : position + size]
        beats = detector.feed(chunk)
        found.append(beats)
        delays.extend(((position - 1 - beats) / fs).tolist())
        position += chunk.size
    found.append(detector.flush())
    return np.concatenate(found), delays


@pytest.mark.parametrize("fs_out", [None, 125, 250, 500, 1000])
def test_streaming_equals_offline_and_accuracy_holds_at_any_rate(
    mitdb_records: list[Path], fs_out: int | None
) -> None:
    rng = np.random.default_rng(fs_out or 7)
    tp_total = fn_total = fp_total = 0
    for path in mitdb_records:
        samples, fs, reference = read_reference(path)
        if fs_out is not None:
            samples = sp_signal.resample_poly(samples, fs_out, int(fs))
            reference = np.round(reference * fs_out / fs).astype(np.int64)
            fs = float(fs_out)
        offline = detect_r_peaks(samples, fs)
        if path.name in ("105", "200") or fs_out is None:  # streaming: a sample of records
            streamed, delays = feed_in_random_chunks(samples, fs, rng)
            np.testing.assert_array_equal(streamed, offline)
            bound = RPeakDetector(fs).max_latency_s
            learning_end = 4.0 + RPeakDetector(fs).latency_s
            late = [
                d
                for d, b in zip(delays, streamed, strict=False)
                if b / fs > learning_end and d > bound
            ]
            assert not late, f"beats reported later than {bound:.2f} s: {late[:5]}"
        tp = independent_match(reference, offline, round(0.150 * fs))
        tp_total += tp
        fn_total += reference.size - tp
        fp_total += offline.size - tp
    assert 100 * tp_total / (tp_total + fn_total) >= TARGET
    assert 100 * tp_total / (tp_total + fp_total) >= TARGET


def test_detectors_fed_together_find_the_beats_each_finds_alone(mitdb_records: list[Path]) -> None:
    """feed_many shares the work of many streams (rows of one array): every stream must still get
    exactly its offline beats, whatever company it keeps in a call — other records, other rates
    (different groups), streams at other points of the decimation grid, and calls where only
    some of the streams have a packet, or a packet of another length."""
    rng = np.random.default_rng(11)
    streams = []
    for n, path in enumerate(mitdb_records[:6]):
        samples, fs, _ = read_reference(path)
        rate = (250, 250, 250, 125, 500, 360)[n]
        if rate != int(fs):
            samples = sp_signal.resample_poly(samples, rate, int(fs))
        samples = samples[int(rng.integers(0, 97)) : 120 * rate]  # other grid positions
        streams.append((samples, float(rate)))
    streams.append((streams[0][0][:-13].copy(), 250.0))  # the same signal twice, shifted end
    detectors = [RPeakDetector(fs) for _, fs in streams]
    found: list[list[npt.NDArray[np.int64]]] = [[] for _ in streams]
    positions = [0] * len(streams)
    while any(p < s.size for p, (s, _) in zip(positions, streams, strict=True)):
        chosen, chunks = [], []
        for i, (samples, fs) in enumerate(streams):
            if positions[i] >= samples.size or rng.random() < 0.2:
                continue  # this stream sends nothing in this call
            size = round(fs / 10) if rng.random() < 0.9 else int(rng.integers(1, 400))
            chosen.append(i)
            chunks.append(samples[positions[i] : positions[i] + size])
            positions[i] += chunks[-1].size
        if not chosen:
            continue
        results = RPeakDetector.feed_many([detectors[i] for i in chosen], chunks)
        for i, beats in zip(chosen, results, strict=True):
            found[i].append(beats)
    for i, (samples, fs) in enumerate(streams):
        together = np.concatenate([*found[i], detectors[i].flush()])
        offline = detect_r_peaks(samples, fs)
        assert offline.size > 100
        np.testing.assert_array_equal(together, offline)


def test_detectors_in_step_find_the_beats_each_finds_alone(mitdb_records: list[Path]) -> None:
    """A server's devices: one rate, one packet of 25 samples each per call, from the first
    packet on, at gains a hundredfold apart. Detectors whose buffers lie alike are advanced as
    rows of one array (learning included); a skipped call or a short packet puts a detector out
    of step with the others, and it must find its beats all the same, alone or with a new set of
    companions."""
    rng = np.random.default_rng(12)
    rate = 250
    streams = []
    for n, path in enumerate(mitdb_records):
        samples, fs, _ = read_reference(path)
        samples = sp_signal.resample_poly(samples, rate, int(fs))
        for offset, gain in ((0, 0.1), (41 + 17 * n, 10.0)):  # two streams per record
            streams.append(gain * samples[offset : offset + 90 * rate])
    detectors = [RPeakDetector(rate) for _ in streams]
    alone = [RPeakDetector(rate) for _ in streams]
    found: list[list[npt.NDArray[np.int64]]] = [[] for _ in streams]
    positions = [0] * len(streams)
    while any(p < s.size for p, s in zip(positions, streams, strict=True)):
        chosen, chunks = [], []
        for i, samples in enumerate(streams):
            if positions[i] >= samples.size or rng.random() < 0.03:
                continue
            size = 25 if rng.random() < 0.99 else int(rng.integers(1, 25))
            chosen.append(i)
            chunks.append(samples[positions[i] : positions[i] + size])
            positions[i] += chunks[-1].size
        results = RPeakDetector.feed_many([detectors[i] for i in chosen], chunks)
        for i, chunk, beats in zip(chosen, chunks, results, strict=True):
            found[i].append(beats)
            # Beside the beats, what every candidate's height and slope feed: the running levels
            # and the last beat's slope, as a detector fed the same chunks alone has them.
            np.testing.assert_array_equal(alone[i].feed(chunk), beats)
            d, a = detectors[i], alone[i]
            assert (d._signal_level, d._noise_level, d._last_slope) == (
                a._signal_level,
                a._noise_level,
                a._last_slope,
            ), f"stream {i}"
    for i, samples in enumerate(streams):
        together = np.concatenate([*found[i], detectors[i].flush()])
        offline = detect_r_peaks(samples, rate)
        assert offline.size > 50
        np.testing.assert_array_equal(together, offline, err_msg=f"stream {i}")


def test_row_medians_are_numpys() -> None:
    """The R peak is placed against the median of its window (a helper with less overhead than
    numpy's median): the same values, to the last bit, for odd and even window lengths."""
    from rekam.ecg.rpeaks import _row_medians

    rng = np.random.default_rng(4)
    for width in (1, 2, 3, 67, 68, 261):
        x = rng.standard_normal((40, width)) * rng.choice([1e-3, 1.0, 1e3], (40, 1))
        x[::7, : width // 2] = x[::7, :1]  # ties
        np.testing.assert_array_equal(_row_medians(x), np.median(x, axis=1, keepdims=True))


def test_feed_many_refuses_bad_batches_and_changes_nothing() -> None:
    fs = 250.0
    x = synthetic_ecg(beats_at_rate(72, 20.0), fs, 20.0)
    a, b = RPeakDetector(fs), RPeakDetector(fs)
    bad = x[:25].copy()
    bad[3] = np.nan
    with pytest.raises(SignalValueError):
        RPeakDetector.feed_many([a, b], [x[:25], bad])
    with pytest.raises(InvalidParameterError, match="only one chunk"):
        RPeakDetector.feed_many([a, a], [x[:25], x[25:50]])
    with pytest.raises(InvalidParameterError, match="one chunk per detector"):
        RPeakDetector.feed_many([a, b], [x[:25]])
    # a was left untouched by the refused calls: it still finds exactly the offline beats
    rest = [a.feed(x[i : i + 25]) for i in range(0, x.size, 25)]
    np.testing.assert_array_equal(np.concatenate([*rest, a.flush()]), detect_r_peaks(x, fs))


@pytest.mark.parametrize("bpm", [40, 48, 60, 99, 101, 150])
@pytest.mark.parametrize("fs", [125.0, 360.0, 1000.0])
def test_synthetic_beats_are_found_where_they_are(bpm: float, fs: float) -> None:
    truth = beats_at_rate(bpm, 60.0)
    x = synthetic_ecg(truth, fs, 60.0, seed=int(bpm))
    found = detect_r_peaks(x, fs) / fs
    assert found.size == truth.size
    assert np.max(np.abs(found - truth)) <= 0.01


def test_main_threshold_beats_are_reported_within_the_documented_latency() -> None:
    fs = 250.0
    truth = beats_at_rate(72, 40.0)
    x = synthetic_ecg(truth, fs, 40.0)
    detector = RPeakDetector(fs)
    for start in range(0, x.size, 5):
        chunk = x[start : start + 5]
        for beat in detector.feed(chunk):
            if beat / fs > 4.0 + detector.latency_s:
                assert (start + chunk.size - 1 - beat) / fs <= detector.latency_s + 1e-9


def test_rejects_unsupported_sampling_rates_and_bad_samples() -> None:
    with pytest.raises(SamplingRateError, match="124"):
        RPeakDetector(124)
    with pytest.raises(SamplingRateError):
        detect_r_peaks(np.zeros(100), 2000)
    with pytest.raises(SignalValueError, match="missing"):
        detect_r_peaks(np.array([0.0, np.nan, 1.0] * 100), 250)
    with pytest.raises(SignalValueError):
        detect_r_peaks(np.zeros((10, 2)), 250)


def test_flat_and_empty_inputs_give_no_beats() -> None:
    assert detect_r_peaks(np.zeros(0), 250).size == 0
    assert detect_r_peaks(np.zeros(250 * 20), 250).size == 0
    assert detect_r_peaks(np.full(250 * 20, 1.5), 250).size == 0


def five_beat_rate_errors(
    reference: npt.NDArray[np.int64], detected: npt.NDArray[np.int64], fs: float, seconds: int
) -> list[float]:
    """Detected minus reference heart rate (bpm), recomputed without the library.

    At each whole second: the mean of 60 / RR over the last five intervals that ended by then
    (fewer at the start), for both beat lists; seconds before either has an interval are skipped.
    """

    def rate_at(beats: list[int], second: int) -> float | None:
        k = bisect.bisect_right(beats, second * fs) - 1  # intervals ended by now
        if k < 1:
            return None
        rates = [60.0 * fs / (beats[i] - beats[i - 1]) for i in range(max(1, k - 4), k + 1)]
        return sum(rates) / len(rates)

    ref, det = reference.tolist(), detected.tolist()
    errors = []
    for second in range(seconds + 1):
        r, d = rate_at(ref, second), rate_at(det, second)
        if r is not None and d is not None:
            errors.append(d - r)
    return errors


def test_beats_keep_the_refractory_period_and_the_heart_rate_follows_the_reference(
    mitdb_records: list[Path],
) -> None:
    """Two reported R peaks are never closer than 200 ms, so no spurious doublet (two R peaks
    placed on one wide QRS) sends the averaged rate to several hundred bpm."""
    squared: list[float] = []
    for path in mitdb_records:
        samples, fs, reference = read_reference(path)
        detected = detect_r_peaks(samples, fs)
        closest = int(np.diff(detected).min())
        assert closest >= 0.200 * fs, (path.name, closest / fs)
        # Whole seconds only, far fewer than beats: the plain-Python walk stays quick.
        errors = np.array(
            five_beat_rate_errors(reference, detected, fs, int(samples.size / fs)), dtype=float
        )
        assert float(np.sqrt(np.mean(errors**2))) <= 7.0, path.name
        squared.extend((errors**2).tolist())
    assert float(np.sqrt(np.mean(squared))) <= 3.0
