"""The QRS-energy envelope: band-pass, derivative, squaring and moving-window integration.

This is the front end of the R-peak detector (after Pan & Tompkins, 1985), written as a causal,
chunk-by-chunk transform whose output does not depend on how the input was split: every stage is
either a recursive filter with carried state or a finite window over a carried tail of samples.
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


@dataclass(frozen=True)
class EnvelopeChunk:
    """The front-end signals for one chunk of input, all of the chunk's length."""

    envelope: FloatArray
    """Moving-window integral of the squared derivative: QRS energy."""
    slope: FloatArray
    """Absolute derivative of the band-passed signal (mV/s): steepness of each wave."""
    baseline_free: FloatArray
    """The input with baseline wander removed (0.5 Hz high-pass): used to place the R peak."""


class QrsEnvelope:
    """Causal QRS-energy envelope of one ECG lead, fed chunk by chunk."""

    def __init__(
        self,
        fs: float,
        band_hz: tuple[float, float] = (5.0, 15.0),
        integration_window_s: float = 0.150,
    ) -> None:
        self.fs = float(fs)
        self._bandpass = StreamingBandPass.bandpass(fs, band_hz[0], band_hz[1], order=2)
        self._baseline = StreamingBandPass.highpass(fs, 0.5, order=1)
        self.integration_samples = max(1, round(integration_window_s * fs))
        self._window = np.full(self.integration_samples, 1.0 / self.integration_samples)
        self._bp_tail: FloatArray | None = None
        self._sq_tail = np.zeros(self.integration_samples - 1)

    def feed(self, chunk: npt.ArrayLike) -> EnvelopeChunk:
        """Transform the next chunk of raw samples (mV, 1-D)."""
        x = np.asarray(chunk, dtype=np.float64)
        bp = self._bandpass.feed(x)
        baseline_free = self._baseline.feed(x)
        if x.size == 0:
            empty = np.zeros(0)
            return EnvelopeChunk(empty, empty.copy(), empty.copy())
        if self._bp_tail is None:
            self._bp_tail = np.full(4, bp[0])
        extended = np.concatenate([self._bp_tail, bp])
        derivative = np.convolve(extended, _DERIVATIVE_TAPS * self.fs, mode="valid")
        self._bp_tail = extended[-4:].copy()
        squared = derivative * derivative
        sq_extended = np.concatenate([self._sq_tail, squared])
        envelope = np.convolve(sq_extended, self._window, mode="valid")
        if self.integration_samples > 1:
            self._sq_tail = sq_extended[-(self.integration_samples - 1) :].copy()
        return EnvelopeChunk(envelope, np.abs(derivative), baseline_free)
