"""Band-pass filtering of ECG samples, offline and on a stream.

Two flavours of the same Butterworth design:

* :func:`bandpass_filter` filters a whole record, by default with zero phase (forward and backward),
  which keeps the waves where they are — use it for display and measurement.
* :class:`StreamingBandPass` filters causally, chunk by chunk, carrying the filter state from one
  chunk to the next. Feeding a signal in any split gives exactly the same output, sample for sample,
  as :func:`bandpass_filter` with ``zero_phase=False`` on the whole signal.

A streaming filter is often fed a few dozen samples at a time (a wearable's packet), where the cost
of the call dominates that of the arithmetic: ``scipy.signal.sosfilt`` spends about 30 µs per call
checking its arguments, ``scipy.signal.lfilter`` about 8 µs. Filters of up to two second-order
sections (the order-2 band-pass: 4 poles) therefore run in transfer-function form with ``lfilter``;
for the band-passes used here its output differs from the sections' by less than 1e-10 of the
signal's range over an hour at 1000 Hz. Longer filters keep the sections, which stay accurate at
any order.

Designing a filter costs about 1 ms (``butter``, the conversion to transfer-function form, the
steady state), which a server pays for every device whose analysis starts — hundreds at once when
devices reconnect after a restart. Designs and their derived coefficients are therefore kept, per
design, read-only, and shared by every filter of that design.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import signal as sp_signal

from rekam.ecg.arrays import own
from rekam.ecg.errors import InvalidParameterError

__all__ = ["StreamingBandPass", "bandpass_filter", "design_bandpass"]

FloatArray = npt.NDArray[np.float64]
# Up to this many second-order sections, a streaming filter runs in transfer-function form.
_MAX_DIRECT_FORM_SECTIONS = 2


def design_bandpass(fs: float, low_hz: float, high_hz: float, order: int = 2) -> FloatArray:
    """Second-order sections of a Butterworth band-pass filter for sampling rate ``fs``."""
    if not 0 < low_hz < high_hz < fs / 2:
        raise InvalidParameterError(
            f"The band-pass filter needs 0 < low ({low_hz} Hz) < high ({high_hz} Hz) < half the "
            f"sampling rate ({fs / 2:g} Hz)."
        )
    if order < 1:
        raise InvalidParameterError(f"The filter order must be at least 1, not {order}.")
    return _butter(order, (float(low_hz), float(high_hz)), "bandpass", float(fs)).copy()


def design_highpass(fs: float, cutoff_hz: float, order: int = 2) -> FloatArray:
    """Second-order sections of a Butterworth high-pass filter (baseline-wander removal)."""
    if not 0 < cutoff_hz < fs / 2:
        raise InvalidParameterError(
            f"The high-pass cut-off ({cutoff_hz} Hz) must lie between 0 and half the sampling "
            f"rate ({fs / 2:g} Hz)."
        )
    return _butter(order, float(cutoff_hz), "highpass", float(fs)).copy()


@functools.lru_cache(maxsize=64)
def _butter(order: int, cutoff: float | tuple[float, float], btype: str, fs: float) -> FloatArray:
    """A Butterworth design as second-order sections (kept; read-only)."""
    sos = np.asarray(sp_signal.butter(order, cutoff, btype=btype, fs=fs, output="sos"), np.float64)
    sos.setflags(write=False)
    return sos


@functools.lru_cache(maxsize=64)
def _coefficients(
    sos_bytes: bytes, sections: int
) -> tuple[FloatArray, FloatArray | None, FloatArray | None, FloatArray]:
    """For the sections ``sos_bytes``: the sections, the transfer function (``b``, ``a``; None
    above ``_MAX_DIRECT_FORM_SECTIONS``) and the unit steady state (kept; read-only)."""
    sos = np.frombuffer(sos_bytes, dtype=np.float64).reshape(sections, 6)
    b: FloatArray | None = None
    a: FloatArray | None = None
    if sections <= _MAX_DIRECT_FORM_SECTIONS:
        tf_b, tf_a = sp_signal.sos2tf(sos)
        b = np.asarray(tf_b, dtype=np.float64)
        a = np.asarray(tf_a, dtype=np.float64)
        zi_unit = np.asarray(sp_signal.lfilter_zi(b, a), dtype=np.float64)
    else:
        zi_unit = np.asarray(sp_signal.sosfilt_zi(sos), dtype=np.float64)
    for array in (b, a, zi_unit):
        if array is not None:
            array.setflags(write=False)
    return sos, b, a, zi_unit


def bandpass_filter(
    samples: npt.ArrayLike,
    fs: float,
    low_hz: float = 0.5,
    high_hz: float = 40.0,
    *,
    order: int = 2,
    zero_phase: bool = True,
) -> FloatArray:
    """Band-pass filter ``samples`` (1-D, or 2-D with one column per lead) along time.

    With ``zero_phase=True`` (default) the filter runs forwards and backwards, so waves keep their
    timing; with ``zero_phase=False`` it runs causally, as :class:`StreamingBandPass` does.
    """
    x = np.asarray(samples, dtype=np.float64)
    sos = design_bandpass(fs, low_hz, high_hz, order)
    if zero_phase:
        padlen = min(x.shape[0] - 1, 3 * (2 * sos.shape[0] + 1))
        return np.asarray(sp_signal.sosfiltfilt(sos, x, axis=0, padlen=padlen), dtype=np.float64)
    return StreamingBandPass(sos).feed(x)


class StreamingBandPass:
    """A causal filter given as second-order sections, fed chunk by chunk.

    The state starts in the steady state for the first sample seen, so a recording that begins
    away from zero does not produce a start-up transient.
    """

    def __init__(self, sos: FloatArray) -> None:
        given = np.asarray(sos, dtype=np.float64)
        if given.ndim != 2 or given.shape[1] != 6 or given.shape[0] == 0:
            raise InvalidParameterError("a filter is given as second-order sections (n × 6)")
        self._design_key = given.tobytes()
        self._sos, b, a, self._zi_unit = _coefficients(self._design_key, given.shape[0])
        self._direct = b is not None and a is not None
        if b is not None and a is not None:
            self._b, self._a = b, a
        self._zi: FloatArray | None = None

    @classmethod
    def bandpass(
        cls, fs: float, low_hz: float = 0.5, high_hz: float = 40.0, order: int = 2
    ) -> StreamingBandPass:
        """A streaming Butterworth band-pass filter."""
        return cls(design_bandpass(fs, low_hz, high_hz, order))

    @classmethod
    def highpass(cls, fs: float, cutoff_hz: float = 0.5, order: int = 2) -> StreamingBandPass:
        """A streaming Butterworth high-pass filter."""
        return cls(design_highpass(fs, cutoff_hz, order))

    def feed(self, chunk: npt.ArrayLike) -> FloatArray:
        """Filter the next chunk (1-D, or 2-D with leads as columns); returns as many samples."""
        x = np.asarray(chunk, dtype=np.float64)
        if x.shape[0] == 0:
            return x.copy()
        if self._zi is None:
            first = x[0]
            shape = self._zi_unit.shape + (() if x.ndim == 1 else x.shape[1:])
            zi = self._zi_unit.reshape(self._zi_unit.shape + (1,) * (x.ndim - 1))
            self._zi = np.broadcast_to(zi * first, shape).copy()
        if self._direct:
            y, zf = sp_signal.lfilter(self._b, self._a, x, axis=0, zi=self._zi)
        else:
            # (sosfilt wants a writable copy of the shared, read-only sections)
            y, zf = sp_signal.sosfilt(self._sos.copy(), x, axis=0, zi=self._zi)
        self._zi = zf
        return np.asarray(y, dtype=np.float64)

    def compact(self) -> None:
        """Give the filter's state an array of its own (after :meth:`feed_many` it is a row of
        the state of that call). Changes no result."""
        if self._zi is not None:
            self._zi = own(self._zi)

    def design_key(self) -> bytes:
        """Filters with equal keys have the same coefficients (see :meth:`feed_many`)."""
        return self._design_key

    @staticmethod
    def feed_many(filters: Sequence[StreamingBandPass], chunks: FloatArray) -> FloatArray:
        """Filter row ``i`` of ``chunks`` as the next 1-D chunk of ``filters[i]``, all in one call.

        The filters must be distinct, share one design and be fed one lead each. The output row
        of each filter is exactly what :meth:`feed` gives for that row alone (the filter runs
        along each row separately)."""
        if chunks.ndim != 2 or chunks.shape[0] != len(filters):
            raise ValueError("feed_many takes one row of samples per filter")
        if not filters or chunks.shape[1] == 0:
            return chunks.astype(np.float64, copy=True)
        first = filters[0]
        if any(f.design_key() != first.design_key() for f in filters):
            raise ValueError("filters fed together must share one design")
        states = []
        for i, f in enumerate(filters):
            if f._zi is None:
                f._zi = f._zi_unit * chunks[i, 0]
            elif f._zi.shape != f._zi_unit.shape:
                raise ValueError("a filter fed with several leads cannot be fed with others")
            states.append(f._zi)
        if first._direct:
            y, zf = sp_signal.lfilter(first._b, first._a, chunks, axis=1, zi=np.array(states))
            for i, f in enumerate(filters):
                f._zi = zf[i]
        else:
            sos = first._sos.copy()  # sosfilt wants a writable copy of the shared sections
            y, zf = sp_signal.sosfilt(sos, chunks, axis=1, zi=np.stack(states, axis=1))
            for i, f in enumerate(filters):
                f._zi = zf[:, i]
        return np.asarray(y, dtype=np.float64)
