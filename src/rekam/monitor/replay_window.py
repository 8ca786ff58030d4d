"""Per-device replay protection: a sliding window of recently accepted sequence numbers.

Like the IPsec anti-replay window (RFC 4303 §3.4.3): the newest accepted sequence number and a
bitmap of the ``size`` numbers at and below it. A packet ahead of the window moves it forward; one
inside it is accepted once (slightly reordered delivery is fine); one behind it is stale. The
window only moves after the packet authenticated, so a forged packet cannot push it forward and
make genuine packets look stale.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from uuid import UUID

from rekam.monitor.errors import PacketAuthenticationFailed, ReplayedPacket, StalePacket
from rekam.monitor.packets import KeyLookup, Packet, decode_packet

DEFAULT_WINDOW_SIZE = 64


@dataclass(frozen=True, slots=True)
class WindowCounters:
    """How many packets from one device were accepted, replayed, stale or forged."""

    accepted: int = 0
    replayed: int = 0
    stale: int = 0
    forged: int = 0


class _DeviceWindow:
    __slots__ = ("accepted", "bitmap", "forged", "highest", "replayed", "stale")

    def __init__(self) -> None:
        self.highest: int | None = None
        self.bitmap = 0
        self.accepted = 0
        self.replayed = 0
        self.stale = 0
        self.forged = 0


class ReplayWindows:
    """Sliding replay windows for every device a gateway hears from. Thread-safe."""

    def __init__(self, size: int = DEFAULT_WINDOW_SIZE) -> None:
        if size < 1:
            raise ValueError("a replay window holds at least one sequence number")
        self.size = size
        self._mask = (1 << size) - 1
        self._windows: dict[UUID, _DeviceWindow] = {}
        self._lock = threading.Lock()

    def _window(self, device_id: UUID) -> _DeviceWindow:
        window = self._windows.get(device_id)
        if window is None:
            window = self._windows[device_id] = _DeviceWindow()
        return window

    def admit(self, device_id: UUID, sequence: int) -> None:
        """Record an AUTHENTICATED sequence number, or raise ReplayedPacket / StalePacket."""
        with self._lock:
            window = self._window(device_id)
            if window.highest is None or sequence > window.highest:
                if window.highest is None:
                    window.bitmap = 1
                else:
                    shift = sequence - window.highest
                    window.bitmap = ((window.bitmap << shift) | 1) & self._mask
                window.highest = sequence
                window.accepted += 1
                return
            offset = window.highest - sequence
            if offset >= self.size:
                window.stale += 1
                raise StalePacket(
                    f"packet {sequence} from device {device_id} is {offset} behind the newest "
                    f"({window.highest}); only the last {self.size} can be checked for replay",
                    device_id=device_id,
                )
            bit = 1 << offset
            if window.bitmap & bit:
                window.replayed += 1
                raise ReplayedPacket(
                    f"packet {sequence} from device {device_id} was already received (replay)",
                    device_id=device_id,
                )
            window.bitmap |= bit
            window.accepted += 1

    def start_at(self, device_id: UUID, highest: int) -> None:
        """Start a device's window at ``highest``, as if every number up to it had been accepted
        (after a restart: :mod:`rekam.monitor.replay_floors`). A window that has already accepted
        a packet is left as it is."""
        with self._lock:
            window = self._window(device_id)
            if window.highest is None:
                window.highest = highest
                window.bitmap = self._mask

    def record_forged(self, device_id: UUID) -> None:
        """Count a packet that claimed to be from this device but failed authentication."""
        with self._lock:
            self._window(device_id).forged += 1

    def receive(
        self,
        data: bytes | bytearray | memoryview,
        key_lookup: KeyLookup,
        *,
        now_ms: int | None = None,
    ) -> Packet:
        """Decode and authenticate one packet, then admit it through the device's window."""
        try:
            packet = decode_packet(data, key_lookup, now_ms=now_ms)
        except PacketAuthenticationFailed as failure:
            if failure.device_id is not None:
                self.record_forged(failure.device_id)
            raise
        self.admit(packet.device_id, packet.sequence)
        return packet

    def counters(self, device_id: UUID) -> WindowCounters:
        """Counts for one device (all zero for a device never heard from)."""
        with self._lock:
            window = self._windows.get(device_id)
            if window is None:
                return WindowCounters()
            return WindowCounters(window.accepted, window.replayed, window.stale, window.forged)

    def newest_sequence(self, device_id: UUID) -> int | None:
        with self._lock:
            window = self._windows.get(device_id)
            return None if window is None else window.highest

    def forget(self, device_id: UUID) -> None:
        """Drop a device's window, e.g. after it re-paired under a new key."""
        with self._lock:
            self._windows.pop(device_id, None)


__all__ = ["DEFAULT_WINDOW_SIZE", "ReplayWindows", "WindowCounters"]
