"""Version-1 packets from a wearable ECG device: byte format, sealing and opening.

Layout (big-endian, 36-byte header then sealed body)::

    offset size field
    0      4    magic b"RKD1"
    4      16   device id (UUID, RFC 4122 byte order)
    20     4    sequence (u32)
    24     8    timestamp, ms since the Unix epoch, device clock, UTC (u64)
    32     2    sampling rate in Hz (u16), 50..1000
    34     2    sample count (u16), 1..500
    36     2*n  AES-256-GCM ciphertext of the samples (int16 big-endian)
    36+2n  16   GCM tag

Nonce = 4 zero bytes || sequence as u64 big-endian. Associated data = the 36-byte header.
A sequence number is never reused under one key; the device re-pairs before it would wrap.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import numpy.typing as npt

from rekam.monitor.errors import MalformedPacket, UnknownDevice
from rekam.monitor.pairing import DeviceKey

MAGIC = b"RKD1"
HEADER = struct.Struct(">4s16sIQHH")
HEADER_LENGTH = HEADER.size  # 36
TAG_LENGTH = 16
MIN_RATE_HZ = 50
MAX_RATE_HZ = 1000
MIN_SAMPLES = 1
MAX_SAMPLES = 500
MAX_SEQUENCE = 2**32 - 1
MAX_CLOCK_SKEW_MS = 24 * 60 * 60 * 1000
MIN_PACKET_LENGTH = HEADER_LENGTH + 2 * MIN_SAMPLES + TAG_LENGTH
MAX_PACKET_LENGTH = HEADER_LENGTH + 2 * MAX_SAMPLES + TAG_LENGTH

KeyLookup = Callable[[UUID], DeviceKey | None]


@dataclass(frozen=True, slots=True)
class Packet:
    """One authenticated packet of ECG samples."""

    device_id: UUID
    sequence: int
    timestamp_ms: int
    rate: int
    samples: npt.NDArray[np.int16]


DEVICE_ID = slice(len(MAGIC), len(MAGIC) + 16)
"""Where the device id lies in a packet (after the magic)."""


def claimed_device_id(data: bytes | bytearray | memoryview) -> bytes | None:
    """The 16 bytes of device id a packet's header names, or None if it is too short to hold a
    header. Not authenticated: a hint (which key to fetch), never a fact about the packet."""
    if len(data) < HEADER_LENGTH:
        return None
    return bytes(data[DEVICE_ID])


def _check_limits(rate: int, count: int) -> None:
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise MalformedPacket(f"sampling rate {rate} Hz is outside {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz")
    if not MIN_SAMPLES <= count <= MAX_SAMPLES:
        raise MalformedPacket(f"sample count {count} is outside {MIN_SAMPLES}..{MAX_SAMPLES}")


def _check_clock(timestamp_ms: int, now_ms: int) -> None:
    skew = timestamp_ms - now_ms
    if abs(skew) > MAX_CLOCK_SKEW_MS:
        hours = skew / 3_600_000
        raise MalformedPacket(
            f"packet timestamp is {hours:+.1f} h from the gateway clock (limit ±24 h); "
            "check the device clock"
        )


@functools.lru_cache(maxsize=20_000)
def device_uuid(device_bytes: bytes) -> UUID:
    """One UUID object per device id (for the 20,000 ids seen last): building one costs about
    1.5 µs, and the gateway's dictionaries keyed by device find the very same object at once.
    Made-up ids only push the oldest out, to be built again at their device's next packet."""
    return UUID(bytes=device_bytes)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_packet(
    key: DeviceKey,
    device_id: UUID,
    sequence: int,
    timestamp_ms: int,
    rate: int,
    samples: npt.ArrayLike,
) -> bytes:
    """Seal samples into one version-1 packet. ``samples`` must be a 1-D array of int16 values."""
    if key.device_id != device_id:
        raise ValueError("the key belongs to another device")
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence {sequence} does not fit u32; re-pair the device")
    if not 0 <= timestamp_ms < 2**64:
        raise ValueError(f"timestamp {timestamp_ms} does not fit u64")
    values = np.asarray(samples)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise ValueError("samples must be a one-dimensional integer array")
    if values.size and (int(values.min()) < -(2**15) or int(values.max()) >= 2**15):
        raise ValueError("samples must fit int16")
    _check_limits(rate, int(values.size))
    header = HEADER.pack(MAGIC, device_id.bytes, sequence, timestamp_ms, rate, int(values.size))
    body = values.astype(">i2").tobytes()
    return header + key.seal(sequence, body, header)


def decode_packet(
    data: bytes | bytearray | memoryview,
    key_lookup: KeyLookup,
    *,
    now_ms: int | None = None,
) -> Packet:
    """Check and open one packet.

    Raises :class:`MalformedPacket` (layout, limits, clock), :class:`UnknownDevice` (no key) or
    :class:`PacketAuthenticationFailed` (wrong key, tampered, forged). Stateless: replay is the
    job of :class:`rekam.monitor.ReplayWindows`.
    """
    try:
        raw = bytes(data)
    except (TypeError, ValueError):
        raise MalformedPacket("a packet must be bytes") from None
    if len(raw) < MIN_PACKET_LENGTH:
        raise MalformedPacket(
            f"packet is {len(raw)} bytes; a version-1 packet has at least {MIN_PACKET_LENGTH}"
        )
    magic, device_bytes, sequence, timestamp_ms, rate, count = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise MalformedPacket("not a Rekam version-1 packet (magic is not RKD1)")
    _check_limits(rate, count)
    expected = HEADER_LENGTH + 2 * count + TAG_LENGTH
    if len(raw) != expected:
        raise MalformedPacket(
            f"packet is {len(raw)} bytes but its header announces {count} samples "
            f"({expected} bytes)"
        )
    _check_clock(timestamp_ms, _now_ms() if now_ms is None else now_ms)
    device_id = device_uuid(device_bytes)
    key = key_lookup(device_id)
    if key is None:
        raise UnknownDevice(f"no key for device {device_id}; pair it first", device_id=device_id)
    header = raw[:HEADER_LENGTH]
    body = key.open(sequence, raw[HEADER_LENGTH:], header)
    samples = np.frombuffer(body, dtype=">i2").astype(np.int16)
    return Packet(device_id, sequence, timestamp_ms, rate, samples)


__all__ = [
    "HEADER_LENGTH",
    "MAGIC",
    "MAX_CLOCK_SKEW_MS",
    "MAX_PACKET_LENGTH",
    "MIN_PACKET_LENGTH",
    "TAG_LENGTH",
    "KeyLookup",
    "Packet",
    "claimed_device_id",
    "decode_packet",
    "device_uuid",
    "encode_packet",
]
