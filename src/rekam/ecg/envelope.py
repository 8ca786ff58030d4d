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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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
    """Causal QRS-energy envelope of one ECG lead, fed chunk by chunk."""

    def __init__(
        self,
        fs: float,
        band_hz: tuple[float, float] = (5.0, 15.0),
        integration_window_s: float = 0.120,
    ) -> None:
        self.fs = float(fs)
        self.decimation = max(1, int(self.fs // _MIN_ENVELOPE_RATE))
        self.envelope_fs = self.fs / self.decimation
        self.integration_samples = max(1, round(integration_window_s * self.envelope_fs))
        self._n_seen = 0
        self._bandpass = StreamingBandPass.bandpass(fs, band_hz[0], band_hz[1], order=2)
        self._integrator = np.full(self.integration_samples, 1.0 / self.integration_samples)
        self._squared_tail = np.zeros(self.integration_samples - 1)
        self._derivative_taps = _DERIVATIVE_TAPS * self.envelope_fs
        self._bp_tail: FloatArray | None = None

    def feed(self, chunk: npt.ArrayLike) -> EnvelopeChunk:
        """Transform the next chunk of raw samples (mV, 1-D)."""
        x = np.asarray(chunk, dtype=np.float64)
        samples = x
        bp = self._bandpass.feed(x)
        first = (-self._n_seen) % self.decimation  # first sample on the envelope grid
        self._n_seen += x.size
        bp = bp[first :: self.decimation]
        if bp.size == 0:
            empty = np.zeros(0)
            return EnvelopeChunk(empty, empty.copy(), samples)
        if self._bp_tail is None:
            self._bp_tail = np.full(4, bp[0])
        extended = np.concatenate([self._bp_tail, bp])
        derivative = np.convolve(extended, self._derivative_taps, mode="valid")
        self._bp_tail = extended[-4:].copy()
        squared = np.concatenate([self._squared_tail, derivative * derivative])
        envelope = np.convolve(squared, self._integrator, mode="valid")
        self._squared_tail = squared[squared.size - self._squared_tail.size :]
        return EnvelopeChunk(envelope, np.abs(derivative), samples)
