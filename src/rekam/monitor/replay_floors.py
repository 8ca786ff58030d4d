"""Replay protection that outlives the process: where each device's replay window starts.

A gateway keeps its replay windows (:class:`rekam.monitor.ReplayWindows`) in memory. Without
more, a restarted server — or a replaced analysis process — would start every window empty and
accept, once, a packet recorded before the restart. A :class:`ReplayFloors` keeps, per device
and pairing, the highest sequence number accepted so far; a gateway starts a device's window at
that number (everything at or below it counts as already seen) and saves the new highest numbers
every few seconds and when it stops.

The ``pairing`` is an opaque value naming one pairing (one key) of the device. A floor saved
under one pairing never applies to the next: re-pairing gives a new key, and the device may
start its sequence numbers again from 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

__all__ = ["ReplayFloor", "ReplayFloors"]


@dataclass(frozen=True, slots=True)
class ReplayFloor:
    """The highest sequence number accepted from a device under one pairing (None: none yet)."""

    pairing: Hashable
    highest: int | None


class ReplayFloors(Protocol):
    def floor(self, device_id: UUID) -> ReplayFloor | None:
        """The device's current pairing and its saved floor; None for an unknown device."""
        ...

    def save(self, floors: Sequence[tuple[UUID, ReplayFloor]]) -> None:
        """Keep these floors (a floor never goes down; one for a pairing that is no longer the
        device's is ignored). Called on the gateway's receive path: must not wait long."""
        ...
