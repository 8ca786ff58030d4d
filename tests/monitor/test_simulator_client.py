"""The simulator's sending loop (``rekam.monitor.simulator_client.simulate``) over an in-memory
transport: every packet sealed for its device and in order, and the devices' objects
kept out of the garbage collector's full passes while they stream (one collection over 500
devices' objects stopped every device for 0.1-0.17 s). The real transports are tested end to
end in ``test_end_to_end.py``."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import Sequence
from uuid import UUID

import numpy as np
import pytest

from rekam.monitor.errors import PacketAuthenticationFailed
from rekam.monitor.packets import decode_packet
from rekam.monitor.pairing import KEY_LENGTH, DeviceKey
from rekam.monitor.scenarios import SimulatedDevice
from rekam.monitor.simulator_client import SentPacket, SimulatedWearable, simulate

SPEED = 40.0
DURATION_S = 2.0


class MemoryTransport:
    """Keeps what was sent, per device, in order."""

    def __init__(self) -> None:
        self.opened: list[UUID] = []
        self.sent: dict[UUID, list[bytes]] = {}
        self.closed = False

    async def open(self, device_ids: Sequence[UUID]) -> None:
        self.opened = list(device_ids)

    async def send(self, device_id: UUID, packet: bytes) -> None:
        self.sent.setdefault(device_id, []).append(packet)

    async def close(self) -> None:
        self.closed = True


def wearables(count: int) -> list[SimulatedWearable]:
    made = []
    for n in range(count):
        device_id = uuid.uuid4()
        key = DeviceKey(device_id, bytes([n + 1]) * KEY_LENGTH)
        made.append(SimulatedWearable(SimulatedDevice(device_id, "tachy", seed=n), key))
    return made


def test_every_packet_is_sealed_for_its_device_in_order() -> None:
    devices = wearables(3)
    transport = MemoryTransport()
    stats = asyncio.run(simulate(devices, transport, duration_s=DURATION_S, speed=SPEED))
    assert transport.opened == [w.device_id for w in devices]
    assert transport.closed
    per_device = round(DURATION_S * 250 / 25)
    assert stats.sent == 3 * per_device and stats.failed == 0
    keys = {w.device_id: w.key for w in devices}
    for n, wearable in enumerate(devices):
        # an independent twin of the device gives the samples it should have sent
        twin = SimulatedDevice(wearable.device_id, "tachy", seed=n)
        expected = list(twin.chunks(DURATION_S))
        packets = [decode_packet(raw, keys.get) for raw in transport.sent[wearable.device_id]]
        assert [p.sequence for p in packets] == list(range(per_device))
        assert all(p.device_id == wearable.device_id for p in packets)
        for packet, chunk in zip(packets, expected, strict=True):
            assert (
                packet.timestamp_ms - wearable.device.start_ms == chunk.timestamp_ms - twin.start_ms
            )
            assert np.array_equal(packet.samples, chunk.samples)


def test_a_packet_for_another_device_does_not_open() -> None:
    devices = wearables(2)
    transport = MemoryTransport()
    asyncio.run(simulate(devices, transport, duration_s=0.2, speed=SPEED))
    first, second = devices
    stolen = transport.sent[first.device_id][0]
    wrong_keys = {first.device_id: DeviceKey(first.device_id, second.key.export_for_storage())}
    with pytest.raises(PacketAuthenticationFailed):
        decode_packet(stolen, wrong_keys.get)


def collector_sees(thing: object) -> bool:
    return any(o is thing for o in gc.get_objects())


def test_devices_are_out_of_full_collections_while_they_stream() -> None:
    devices = wearables(2)
    device = devices[0].device
    frozen_before = gc.get_freeze_count()
    assert collector_sees(device)
    seen_while_streaming: list[bool] = []

    def on_sent(packet: SentPacket) -> None:
        if not seen_while_streaming:
            seen_while_streaming.append(collector_sees(device))

    asyncio.run(simulate(devices, MemoryTransport(), duration_s=0.3, speed=SPEED, on_sent=on_sent))
    assert seen_while_streaming == [False]
    # handed back afterwards: the process's collector is as it was
    assert gc.get_freeze_count() == frozen_before
    assert collector_sees(device)


def test_objects_the_process_froze_itself_stay_frozen() -> None:
    kept = [object(), {"a": []}]  # a tracked container of the caller's
    gc.collect()
    gc.freeze()
    try:
        assert not collector_sees(kept[1])
        asyncio.run(simulate(wearables(1), MemoryTransport(), duration_s=0.2, speed=SPEED))
        assert not collector_sees(kept[1])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert collector_sees(kept[1])
