"""Signal-quality windows judged together (rows of one array) give each lead what it gets alone."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rekam.ecg.quality import NOISE_WINDOW_S, QualityIssue
from rekam.monitor.online_quality import OnlineSignalQuality, QualityVerdict
from support.ecg_stream import beats_at_rates, ecg_mv

FloatArray = npt.NDArray[np.float64]


def _leads(rng: np.random.Generator) -> list[tuple[FloatArray, float]]:
    """Twelve leads at 250 Hz and three at 125 Hz, each with stretches a check must flag."""
    leads = []
    for n in range(15):
        fs = 250.0 if n < 12 else 125.0
        truth = beats_at_rates([(30.0, 60 + 7 * n), (30.0, 110 - 3 * n)])
        x = ecg_mv(truth, fs, 60.0, noise_mv=0.005 + 0.02 * (n % 4), seed=n)
        at = int(rng.integers(5, 40) * fs)
        kind = n % 5
        if kind == 1:
            x[at : at + int(3 * fs)] = 0.0  # leads off
        elif kind == 2:
            x[at : at + int(2 * fs)] = 32.767  # saturated
        elif kind == 3:
            x[at : at + int(4 * fs)] += 2.0 * rng.standard_normal(int(4 * fs))  # movement
        leads.append((x, fs))
    return leads


def test_checks_fed_together_give_each_the_verdicts_and_typical_it_gets_alone() -> None:
    """Calls as a server makes them: mostly one packet of 25 samples per lead, some leads absent,
    now and then a packet of another length (which puts a lead's window out of step)."""
    rng = np.random.default_rng(8)
    leads = _leads(rng)
    alone = [OnlineSignalQuality(fs) for _, fs in leads]
    together = [OnlineSignalQuality(fs) for _, fs in leads]
    positions = [0] * len(leads)
    calls = 0
    flagged: set[QualityIssue | None] = set()
    while any(p < x.size for p, (x, _) in zip(positions, leads, strict=True)):
        chosen: list[int] = []
        chunks: list[FloatArray] = []
        for i, (x, _) in enumerate(leads):
            if positions[i] >= x.size or rng.random() < 0.15:
                continue
            size = 25 if rng.random() < 0.95 else int(rng.integers(1, 600))
            chosen.append(i)
            chunks.append(x[positions[i] : positions[i] + size])
            positions[i] += chunks[-1].size
        if not chosen:
            continue
        calls += 1
        results = OnlineSignalQuality.feed_many([together[i] for i in chosen], chunks)
        for i, chunk, got in zip(chosen, chunks, results, strict=True):
            expected: list[QualityVerdict] = alone[i].feed(chunk)
            assert got == expected, f"lead {i}, call {calls}"
            flagged.update(v.issue for v in expected)
            assert together[i]._typical_p2p() == alone[i]._typical_p2p(), f"lead {i}"
            # The window judged next is exactly the lead's last NOISE_WINDOW_S of signal.
            x, fs = leads[i]
            np.testing.assert_array_equal(
                together[i]._raw,
                x[max(0, positions[i] - round(NOISE_WINDOW_S * fs)) : positions[i]],
            )
    assert calls > 500
    assert flagged == {None, *QualityIssue}, "every kind of verdict was compared"
