"""Parser for the Bluetooth Heart Rate Measurement characteristic (UUID 0x2A37).

Payload (little-endian, Heart Rate Service 1.0 / GATT Specification Supplement)::

    flags (u8)
      bit 0     heart rate value format: 0 = u8, 1 = u16
      bits 1-2  sensor contact: 0/1 not supported, 2 supported but no contact, 3 contact detected
      bit 3     energy expended present (u16, kilojoules)
      bit 4     RR intervals present (one or more u16, units of 1/1024 s)
      bits 5-7  reserved (ignored)
    heart rate (u8 or u16, beats per minute)
    [energy expended (u16)]
    [RR interval (u16)] ...
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rekam.monitor.errors import MalformedPacket

HEART_RATE_MEASUREMENT_UUID = 0x2A37

_FORMAT_UINT16 = 0x01
_CONTACT_SUPPORTED = 0x04
_CONTACT_DETECTED = 0x02
_ENERGY_PRESENT = 0x08
_RR_PRESENT = 0x10


class SensorContact(enum.Enum):
    NOT_SUPPORTED = "not supported"
    NOT_DETECTED = "not detected"
    DETECTED = "detected"


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    heart_rate_bpm: int
    sensor_contact: SensorContact
    energy_expended_kj: int | None
    rr_intervals_ms: tuple[float, ...]


def _u16(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 2], "little")


def parse_heart_rate_measurement(payload: bytes | bytearray | memoryview) -> HeartRateMeasurement:
    """Parse one 0x2A37 notification; :class:`MalformedPacket` if truncated or inconsistent."""
    raw = bytes(payload)
    if not raw:
        raise MalformedPacket("heart rate measurement is empty (no flags byte)")
    flags = raw[0]
    offset = 1
    hr_size = 2 if flags & _FORMAT_UINT16 else 1
    if len(raw) < offset + hr_size:
        raise MalformedPacket(
            f"heart rate measurement is truncated: flags announce a {8 * hr_size}-bit heart rate "
            f"but {len(raw) - offset} byte(s) follow"
        )
    heart_rate = int.from_bytes(raw[offset : offset + hr_size], "little")
    offset += hr_size

    if not flags & _CONTACT_SUPPORTED:
        contact = SensorContact.NOT_SUPPORTED
    elif flags & _CONTACT_DETECTED:
        contact = SensorContact.DETECTED
    else:
        contact = SensorContact.NOT_DETECTED

    energy: int | None = None
    if flags & _ENERGY_PRESENT:
        if len(raw) < offset + 2:
            raise MalformedPacket(
                "heart rate measurement is truncated: energy expended announced but missing"
            )
        energy = _u16(raw, offset)
        offset += 2

    rest = len(raw) - offset
    intervals: tuple[float, ...] = ()
    if flags & _RR_PRESENT:
        if rest == 0:
            raise MalformedPacket("heart rate measurement announces RR intervals but has none")
        if rest % 2:
            raise MalformedPacket(
                f"heart rate measurement is truncated: {rest} byte(s) of RR intervals, "
                "which are 2 bytes each"
            )
        intervals = tuple(
            _u16(raw, position) * 1000 / 1024 for position in range(offset, len(raw), 2)
        )
    elif rest:
        raise MalformedPacket(
            f"heart rate measurement has {rest} unexpected byte(s) after the announced fields"
        )
    return HeartRateMeasurement(heart_rate, contact, energy, intervals)


__all__ = [
    "HEART_RATE_MEASUREMENT_UUID",
    "HeartRateMeasurement",
    "SensorContact",
    "parse_heart_rate_measurement",
]
