"""The :class:`Recording` value type: an ECG as samples, rate, lead names and annotations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.annotations import ReferenceAnnotations
from rekam.ecg.errors import SignalValueError
from rekam.ecg.rpeaks import check_sampling_rate

__all__ = ["Recording"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Recording:
    """An ECG recording.

    ``samples`` is a float array in millivolts of shape ``(n_samples, n_leads)``; ``fs`` the
    sampling rate in Hz (125–1000); ``lead_names`` one name per column; ``annotations`` the
    reference beat annotations when the recording came with them.
    """

    samples: FloatArray
    fs: float
    lead_names: tuple[str, ...]
    annotations: ReferenceAnnotations | None = None
    name: str = ""

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float64)
        if samples.ndim == 1:
            samples = samples[:, np.newaxis]
        if samples.ndim != 2:
            raise SignalValueError(
                "ECG samples must be a table of samples × leads; got an array with "
                f"{samples.ndim} dimensions."
            )
        if samples.shape[0] == 0 or samples.shape[1] == 0:
            raise SignalValueError("The recording is empty: it contains no ECG samples.")
        if not np.all(np.isfinite(samples)):
            bad = int(np.count_nonzero(~np.isfinite(samples)))
            raise SignalValueError(
                f"The recording has {bad} missing or invalid sample value(s); it cannot be "
                "analysed as is."
            )
        names = tuple(self.lead_names)
        if len(names) != samples.shape[1]:
            raise SignalValueError(
                f"The recording has {samples.shape[1]} lead(s) but {len(names)} lead name(s)."
            )
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "fs", check_sampling_rate(float(self.fs)))
        object.__setattr__(self, "lead_names", names)

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_leads(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def lead(self, which: int | str = 0) -> FloatArray:
        """One lead's samples (mV), by position or by name."""
        if isinstance(which, str):
            if which not in self.lead_names:
                raise SignalValueError(
                    f"The recording has no lead named {which!r}; it has "
                    f"{', '.join(self.lead_names)}."
                )
            which = self.lead_names.index(which)
        if not -self.n_leads <= which < self.n_leads:
            raise SignalValueError(
                f"The recording has {self.n_leads} lead(s); lead number {which} does not exist."
            )
        return np.asarray(self.samples[:, which])

    def reference_beats(self) -> npt.NDArray[np.int64] | None:
        """Sample positions of the annotated beats, if the recording has annotations."""
        return None if self.annotations is None else self.annotations.beat_samples()
