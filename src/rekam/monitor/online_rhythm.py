"""Rhythm state on a stream of beats: rate class with minimum duration, and irregularity.

:class:`ClassTracker` is the online form of the state machine in
:func:`rekam.ecg.classify_rhythm`: a new class is declared only once every beat since it first
appeared has pointed to it for ``min_duration_s`` (the hysteresis lives in
:meth:`rekam.ecg.RhythmThresholds.raw_class`), and it is dated from its first beat. The beat at
which the class is declared is the *confirming beat*. :meth:`ClassTracker.interrupt` forgets a
pending change (after a gap or an unreliable stretch, a change must be seen anew from start to
confirmation).

:class:`IrregularityTracker` flags an irregular rhythm when more than a third of the successive
RR differences over the last 30 intervals exceed 12 % of the mean RR. One ectopic beat changes two
or three differences (≈ 10 %), so it does not flag; atrial fibrillation changes most of them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

__all__ = ["ClassChange", "ClassTracker", "IrregularityTracker"]

T = TypeVar("T")

IRREGULAR_WINDOW = 30
IRREGULAR_MIN_INTERVALS = 16
IRREGULAR_STEP_RATIO = 0.12
IRREGULAR_ON_FRACTION = 1 / 3
IRREGULAR_OFF_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class ClassChange(Generic[T]):
    previous: T
    current: T
    since_ms: int  # the first beat that pointed to the new class
    confirmed_ms: int  # the confirming beat


class ClassTracker(Generic[T]):
    """The current class of a beat stream, changed only after a minimum duration."""

    def __init__(self, initial: T) -> None:
        self.state: T = initial
        self._pending: T | None = None
        self._pending_since = 0

    @property
    def pending(self) -> T | None:
        return self._pending

    def update(self, time_ms: int, wanted: T, min_duration_ms: int) -> ClassChange[T] | None:
        """One beat at ``time_ms`` points to ``wanted``; return the change it confirms, if any."""
        if wanted == self.state:
            self._pending = None
            return None
        if wanted != self._pending:
            self._pending, self._pending_since = wanted, time_ms
        if time_ms - self._pending_since >= min_duration_ms:
            change = ClassChange(self.state, wanted, self._pending_since, time_ms)
            self.state, self._pending = wanted, None
            return change
        return None

    def interrupt(self) -> None:
        """Forget a change in progress (the beats that supported it can no longer be trusted)."""
        self._pending = None


class IrregularityTracker:
    """Irregular-rhythm flag over the last RR intervals, with hysteresis."""

    def __init__(self) -> None:
        self._rr: deque[float] = deque(maxlen=IRREGULAR_WINDOW)
        self._times: deque[int] = deque(maxlen=IRREGULAR_WINDOW)
        self.irregular = False
        self.onset_ms: int | None = None
        """When the flag last turned on: the beat ending the first irregular step in the window
        (the window needs many beats to show irregularity; the rhythm changed at its first
        step)."""

    def reset(self) -> None:
        self._rr.clear()
        self._times.clear()
        self.irregular = False
        self.onset_ms = None

    def update(self, rr_ms: float, time_ms: int = 0) -> bool:
        """Add the RR interval ending at ``time_ms``; return the flag."""
        self._rr.append(rr_ms)
        self._times.append(time_ms)
        if len(self._rr) < IRREGULAR_MIN_INTERVALS:
            return self.irregular
        rr = np.fromiter(self._rr, dtype=np.float64)
        steps = np.abs(np.diff(rr)) > IRREGULAR_STEP_RATIO * float(rr.mean())
        fraction = float(steps.mean())
        if self.irregular:
            self.irregular = fraction > IRREGULAR_OFF_FRACTION
        elif fraction > IRREGULAR_ON_FRACTION:
            self.irregular = True
            first_step = int(np.argmax(steps))  # step k lies between intervals k and k + 1
            self.onset_ms = self._times[first_step]
        return self.irregular
