"""The one exception hierarchy of :mod:`rekam.monitor`.

Every error raised while pairing a device or reading its packets is a :class:`MonitorError`, so a
gateway can catch one class, log the message (which never contains key material or samples) and
drop the packet.
"""

from __future__ import annotations

from uuid import UUID


class MonitorError(Exception):
    """Base class: something about a wearable device or its data could not be accepted."""

    def __init__(self, message: str, *, device_id: UUID | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.device_id = device_id


class PairingFailed(MonitorError):
    """The peer's public key is unusable (wrong length, or a low-order point)."""


class MalformedPacket(MonitorError):
    """The bytes are not a version-1 packet: too short, wrong magic, wrong length, out of limits."""


class UnknownDevice(MonitorError):
    """The packet names a device the gateway holds no key for."""


class PacketAuthenticationFailed(MonitorError):
    """The packet was not sealed with this device's key: wrong key, tampered or forged."""


class ReplayedPacket(MonitorError):
    """A packet with this sequence number was already accepted from this device."""


class StalePacket(MonitorError):
    """The packet's sequence number is too far behind the newest one to be checked for replay."""


__all__ = [
    "MalformedPacket",
    "MonitorError",
    "PacketAuthenticationFailed",
    "PairingFailed",
    "ReplayedPacket",
    "StalePacket",
    "UnknownDevice",
]
