"""The in-memory cache in front of the device registry, for the gateway's per-packet lookups.

Every packet asks for its device's key; the database is asked once per device and then again
only after ``ttl_seconds`` (so an unpairing done by another server process takes effect within
that time; one done in this process takes effect at once). Unknown device ids are remembered for
``unknown_ttl_seconds`` — a flood of packets from an unknown device does not become a flood of
queries — and at most ``max_entries`` ids are kept (oldest dropped first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.pairing import DeviceKey


@dataclass(frozen=True)
class RegisteredDevice:
    """What the gateway needs about one paired device. ``repr`` never shows the key."""

    key: DeviceKey
    patient_id: str
    thresholds: RhythmThresholds | None
    paired_at: datetime
    """Names the pairing (the key) that ``accepted_sequence`` belongs to."""
    accepted_sequence: int | None = None
    """The highest packet sequence number accepted under this pairing, as last saved."""


class RegistryCache:
    def __init__(
        self,
        load: Callable[[UUID], RegisteredDevice | None],
        *,
        ttl_seconds: float = 30.0,
        unknown_ttl_seconds: float = 2.0,
        max_entries: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._unknown_ttl = unknown_ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[UUID, tuple[float, RegisteredDevice | None]] = OrderedDict()
        #: how many lookups went to the database (for tests and metrics)
        self.loads = 0

    def get(self, device_id: UUID) -> RegisteredDevice | None:
        now = self._clock()
        with self._lock:
            cached = self._entries.get(device_id)
            if cached is not None and cached[0] > now:
                return cached[1]
        found = self._load(device_id)
        ttl = self._ttl if found is not None else self._unknown_ttl
        with self._lock:
            self.loads += 1
            self._entries[device_id] = (now + ttl, found)
            self._entries.move_to_end(device_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return found

    def forget(self, device_id: UUID) -> None:
        with self._lock:
            self._entries.pop(device_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
