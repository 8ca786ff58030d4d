"""Sealed device packets for gateway and transport tests: a paired device, synthetic ECG at the
rates a test asks for, cut into RKD1 packets exactly as a wearable sends them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from rekam.monitor.packets import encode_packet
from rekam.monitor.pairing import DeviceKey, DevicePairing, GatewayPairing
from rekam.monitor.synthetic_ecg import render_ecg

RATE = 250
PER_PACKET = 25


def paired_key(device_id: UUID | None = None) -> DeviceKey:
    """Pair a fresh device with a fresh gateway key and return the device's key (the gateway
    derives the same one; both sides are checked in tests/monitor/test_pairing.py)."""
    device_id = device_id or uuid4()
    device = DevicePairing(device_id, X25519PrivateKey.generate())
    gateway = GatewayPairing.new()
    gateway.derive(device.public_bytes(), device_id)
    return device.derive(gateway.public_bytes())


def schedule_samples(
    schedule: Sequence[tuple[float, float]], rate: int = RATE, *, seed: int = 1
) -> npt.NDArray[np.int16]:
    """Microvolts for consecutive ``(seconds, bpm)`` stretches, with 10 µV of noise."""
    beats: list[float] = []
    t, end = 0.4, 0.0
    for seconds, bpm in schedule:
        end += seconds
        while t < end - 0.2:
            beats.append(t)
            t += 60.0 / bpm
    total = round(sum(s for s, _ in schedule) * rate)
    times = np.asarray(beats)
    rr = np.diff(np.concatenate([[times[0] - 1.0], times]))
    mv = render_ecg(times, rr, rate, 0.0, total)
    mv = mv + np.random.default_rng(seed).normal(0.0, 0.01, total)
    return np.clip(np.round(mv * 1000), -32768, 32767).astype(np.int16)


@dataclass
class SealedStream:
    """One device's packets, sealed in order (sequence from 1, device clock from ``t0_ms``)."""

    key: DeviceKey
    samples: npt.NDArray[np.int16]
    rate: int = RATE
    per_packet: int = PER_PACKET
    t0_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    @property
    def device_id(self) -> UUID:
        return self.key.device_id

    def packet(self, index: int) -> bytes:
        first = index * self.per_packet
        chunk = self.samples[first : first + self.per_packet]
        timestamp = self.t0_ms + first * 1000 // self.rate
        return encode_packet(self.key, self.device_id, index + 1, timestamp, self.rate, chunk)

    def __len__(self) -> int:
        return -(-self.samples.size // self.per_packet)

    def packets(self) -> list[bytes]:
        return [self.packet(i) for i in range(len(self))]
