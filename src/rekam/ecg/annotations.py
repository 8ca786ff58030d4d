"""Reference beat annotations (WFDB annotation symbols) and which of them are beats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rekam.ecg.errors import SignalValueError

__all__ = ["BEAT_SYMBOLS", "ReferenceAnnotations"]

IndexArray = npt.NDArray[np.int64]

BEAT_SYMBOLS: frozenset[str] = frozenset("NLRBAaJSVrFejnE/fQ?")
"""WFDB annotation codes that mark a heartbeat (normal, bundle-branch block, atrial and nodal
premature, ventricular, fusion, escape, paced, unclassifiable). Everything else (``+`` rhythm
change, ``~`` noise, ``|`` artefact, ``"`` comment, …) is not a beat."""


@dataclass(frozen=True)
class ReferenceAnnotations:
    """Annotations that came with a recording: sample positions and WFDB symbols."""

    samples: IndexArray
    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.int64).reshape(-1)
        if samples.size != len(self.symbols):
            raise SignalValueError(
                "The annotation file is inconsistent: it has a different number of positions "
                "and labels."
            )
        order = np.argsort(samples, kind="stable")
        object.__setattr__(self, "samples", samples[order])
        object.__setattr__(self, "symbols", tuple(self.symbols[i] for i in order.tolist()))

    def beat_mask(self) -> npt.NDArray[np.bool_]:
        """True for annotations that are heartbeats."""
        return np.fromiter((s in BEAT_SYMBOLS for s in self.symbols), bool, len(self.symbols))

    def beat_samples(self) -> IndexArray:
        """Sample positions of the annotated heartbeats, in time order."""
        return self.samples[self.beat_mask()]

    def beat_symbols(self) -> tuple[str, ...]:
        """Symbols of the annotated heartbeats, in time order."""
        return tuple(s for s in self.symbols if s in BEAT_SYMBOLS)
