"""The QRS-energy envelope: band-pass, derivative, squaring and integration.

This is the front end of the R-peak detector (after Pan & Tompkins, 1985), written as a causal,
chunk-by-chunk transform whose output does not depend on how the input was split: every stage is
either a recursive filter with carried state or a finite window over a carried tail of samples.

Pan & Tompkins integrate the squared derivative over a 150 ms moving window; here the window is
120 ms (``integration_window_s``). The moving window merges the two slopes of a QRS into one
hump, and because its response ends with the window, the hump of one beat is over before the next
beat starts even at 240 bpm (a recursive low-pass of the same −3 dB point keeps a long tail that
buries a small beat right after a large one). It runs over a carried tail of squared slopes, so its
output is exact from chunk to chunk.

After the band-pass (which doubles as the anti-alias filter) the envelope runs at a reduced
"envelope rate" of 100–200 Hz — every ``decimation``-th sample, counted from the start of the
stream — so the work per second of ECG is about the same at 125 Hz and at 1000 Hz. The R peak
itself is placed later on the full-rate input samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.arrays import own
from rekam.ecg.filters import StreamingBandPass

__all__ = ["EnvelopeChunk", "QrsEnvelope"]

FloatArray = npt.NDArray[np.float64]

# Causal five-point derivative of Pan & Tompkins: (2x[n] + x[n-1] - x[n-3] - 2x[n-4]) / 8T.
_DERIVATIVE_TAPS = np.array([2.0, 1.0, 0.0, -1.0, -2.0]) / 8.0
# The envelope runs at the input rate divided by an integer, landing between 100 and 200 Hz.
_MIN_ENVELOPE_RATE = 100.0


@dataclass(frozen=True)
class EnvelopeChunk:
    """The front-end signals for one chunk of input, all of the chunk's length."""

    envelope: FloatArray
    """Integrated squared derivative, QRS energy (envelope rate)."""
    slope: FloatArray
    """Absolute derivative of the band-passed signal in mV/s, steepness (envelope rate)."""
    samples: FloatArray
    """The input itself (full rate), on which the R peak is placed."""


class QrsEnvelope:
    """Causal QRS-energy envelope of one ECG lead, fed chunk by chunk.

    :meth:`feed_many` transforms one chunk for each of several leads in one pass (rows of a 2-D
    array). Every operation works on each row alone, in a fixed order, so a lead's output is the
    same bit for bit whether it is fed alone, with others, or in other chunks.
    """

    def __init__(
        self,
        fs: float,
        band_hz: tuple[float, float] = (5.0, 15.0),
        integration_window_s: float = 0.120,
    ) -> None:
        self.fs = float(fs)
        self.band_hz = (float(band_hz[0]), float(band_hz[1]))
        self.integration_window_s = float(integration_window_s)
        self.decimation = max(1, int(self.fs // _MIN_ENVELOPE_RATE))
        self.envelope_fs = self.fs / self.decimation
        self.integration_samples = max(1, round(integration_window_s * self.envelope_fs))
        self._n_seen = 0
        self._bandpass = StreamingBandPass.bandpass(fs, band_hz[0], band_hz[1], order=2)
        self._squared_tail = np.zeros(self.integration_samples - 1)
        self._derivative_taps = _DERIVATIVE_TAPS * self.envelope_fs
        self._bp_tail: FloatArray | None = None

    def batch_key(self) -> tuple[float, tuple[float, float], float, int]:
        """Envelopes with equal keys can be fed together by :meth:`feed_many`: same design, and
        their next sample falls at the same place on the envelope grid."""
        return (
            self.fs,
            self.band_hz,
            self.integration_window_s,
            (-self._n_seen) % self.decimation,
        )

    def compact(self) -> None:
        """Give the carried tails arrays of their own (after :meth:`feed_rows` they are rows of
        the arrays of that call). Changes no result."""
        if self._bp_tail is not None:
            self._bp_tail = own(self._bp_tail)
        self._squared_tail = own(self._squared_tail)
        self._bandpass.compact()

    def feed(self, chunk: npt.ArrayLike) -> EnvelopeChunk:
        """Transform the next chunk of raw samples (mV, 1-D)."""
        x = np.asarray(chunk, dtype=np.float64).reshape(1, -1)
        return QrsEnvelope.feed_many([self], x)[0]

    @staticmethod
    def feed_many(fronts: Sequence[QrsEnvelope], chunks: FloatArray) -> list[EnvelopeChunk]:
        """Transform row ``i`` of ``chunks`` (mV, one row per envelope, all of one length) as the
        next chunk of ``fronts[i]``. The envelopes must be distinct and share one
        :meth:`batch_key`."""
        envelope, slope, samples = QrsEnvelope.feed_rows(fronts, chunks)
        return [EnvelopeChunk(envelope[i], slope[i], samples[i]) for i in range(len(fronts))]

    @staticmethod
    def feed_rows(
        fronts: Sequence[QrsEnvelope], chunks: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """:meth:`feed_many` as three arrays with one row per envelope: envelope, slope (both at
        the envelope rate) and the input samples."""
        if chunks.ndim != 2 or chunks.shape[0] != len(fronts):
            raise ValueError("feed_many takes one row of samples per envelope")
        if not fronts:
            return np.zeros((0, 0)), np.zeros((0, 0)), chunks
        first_front = fronts[0]
        key = first_front.batch_key()
        if any(f.batch_key() != key for f in fronts):
            raise ValueError("envelopes fed together must share their design and grid position")
        n = chunks.shape[1]
        bp = StreamingBandPass.feed_many([f._bandpass for f in fronts], chunks)
        dec = first_front.decimation
        first = (-first_front._n_seen) % dec
        for front in fronts:
            front._n_seen += n
        bp = bp[:, first::dec]
        if bp.shape[1] == 0:
            empty = np.zeros((len(fronts), 0))
            return empty, empty, chunks
        tails = []
        for i, front in enumerate(fronts):
            if front._bp_tail is None:
                front._bp_tail = np.full(4, bp[i, 0])
            tails.append(front._bp_tail)
        extended = np.concatenate([np.array(tails), bp], axis=1)
        derivative = _fir_valid(extended, first_front._derivative_taps)
        k = first_front.integration_samples
        squared = np.concatenate(
            [np.array([f._squared_tail for f in fronts]), derivative * derivative], axis=1
        )
        envelope = _moving_sum(squared, k) * (1.0 / k)
        bp_tails = extended[:, -4:]
        squared_tails = squared[:, squared.shape[1] - (k - 1) :]
        for i, front in enumerate(fronts):
            front._bp_tail = bp_tails[i]
            front._squared_tail = squared_tails[i]
        return envelope, np.abs(derivative), chunks


def _fir_valid(x: FloatArray, taps: FloatArray) -> FloatArray:
    """``np.convolve(row, taps, "valid")`` for every row of ``x``, as a fixed sequence of
    shifted multiply-adds (the same rounding for every sample, whatever the row's length)."""
    n = taps.size
    m = x.shape[1] - n + 1
    out: FloatArray = taps[0] * x[:, n - 1 : n - 1 + m]
    for j in range(1, n):
        if taps[j] != 0.0:
            out += taps[j] * x[:, n - 1 - j : n - 1 - j + m]
    return out


def _moving_sum(x: FloatArray, n: int) -> FloatArray:
    """Sum of each ``n`` consecutive samples of every row of ``x`` ("valid"), added in a fixed
    order: sums over 2, 4, 8, ... samples are built by doubling and the window is put together
    from those its length's binary digits call for (6 additions for 15 samples, not 14)."""
    m = x.shape[1] - n + 1
    powers = [x]  # powers[i][:, j] = sum of x[:, j : j + 2**i]
    while 2 ** len(powers) <= n:
        half = 2 ** (len(powers) - 1)
        p = powers[-1]
        powers.append(p[:, : p.shape[1] - half] + p[:, half:])
    out: FloatArray | None = None
    offset = 0
    for i in range(len(powers) - 1, -1, -1):
        if n & (1 << i):
            part = powers[i][:, offset : offset + m]
            out = part.copy() if out is None else out + part
            offset += 1 << i
    assert out is not None
    return out
