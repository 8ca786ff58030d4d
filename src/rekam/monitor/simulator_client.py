"""The sending side of the device simulator: seal each simulated device's samples into RKD1
packets and send them in real time (or ``speed`` times faster) over the device WebSocket or MQTT.

One asyncio event loop drives every device: each device is one task that sleeps until its next
packet is due, seals it with :func:`rekam.monitor.encode_packet` and hands it to the transport.
The samples and the injected episodes come from :class:`rekam.monitor.scenarios.SimulatedDevice`;
every packet sent can be reported to ``on_sent`` (the latency benchmark uses it to know when the
first sample of an alert's confirming beat left the device).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from rekam.monitor.errors import MonitorError
from rekam.monitor.mqtt_bridge import MqttEndpoint, device_topic, make_client
from rekam.monitor.packets import encode_packet
from rekam.monitor.pairing import DeviceKey
from rekam.monitor.scenarios import SimulatedDevice

__all__ = [
    "MqttTransport",
    "PacketTransport",
    "SentPacket",
    "SimulatedWearable",
    "SimulationStats",
    "TransportFailed",
    "WebSocketTransport",
    "simulate",
]

CONNECT_CONCURRENCY = 50


class TransportFailed(MonitorError):
    """The simulator could not connect to the server or the broker."""


@dataclass(frozen=True)
class SimulatedWearable:
    """A simulated device and the key it was paired with."""

    device: SimulatedDevice
    key: DeviceKey

    @property
    def device_id(self) -> UUID:
        return self.device.device_id


@dataclass(frozen=True, slots=True)
class SentPacket:
    device_id: UUID
    sequence: int
    timestamp_ms: int  # device clock of the first sample
    samples: int
    sent_at: float  # time.time() just before the packet was handed to the transport


@dataclass
class SimulationStats:
    sent: int = 0
    failed: int = 0
    samples: int = 0
    late: int = 0  # packets sent more than one packet interval after they were due
    connect_seconds: float = 0.0  # opening the transport (TLS handshakes of every device)
    per_device: dict[UUID, int] = field(default_factory=dict)


class PacketTransport(Protocol):
    async def open(self, device_ids: Sequence[UUID]) -> None: ...

    async def send(self, device_id: UUID, packet: bytes) -> None: ...

    async def close(self) -> None: ...


class WebSocketTransport:
    """One WebSocket (TLS) per device to ``wss://host:port/api/v1/monitor/devices``, as each
    wearable's phone would open."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        if not url.startswith("wss://"):
            raise TransportFailed("the device WebSocket must be wss:// (TLS)")
        self.url = url
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._sockets: dict[UUID, Any] = {}

    async def open(self, device_ids: Sequence[UUID]) -> None:
        from websockets.asyncio.client import connect

        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(device_id: UUID) -> None:
            async with gate:
                try:
                    self._sockets[device_id] = await connect(
                        self.url, ssl=self.ssl_context, max_size=2**12, open_timeout=20
                    )
                except (TimeoutError, OSError, ssl.SSLError) as exc:
                    raise TransportFailed(
                        f"cannot open the device WebSocket {self.url} ({type(exc).__name__})"
                    ) from None

        await asyncio.gather(*(one(d) for d in device_ids))

    async def send(self, device_id: UUID, packet: bytes) -> None:
        await self._sockets[device_id].send(packet)

    async def close(self) -> None:
        sockets, self._sockets = list(self._sockets.values()), {}
        for socket in sockets:
            with contextlib.suppress(Exception):
                await socket.close()


class MqttTransport:
    """Publishes each device's packets to its topic. One MQTT connection carries all simulated
    devices (as a hub would); the payload is the sealed packet, unchanged."""

    def __init__(self, endpoint: MqttEndpoint, client_id: str = "rekam-simulator") -> None:
        self.endpoint = endpoint
        self._client = make_client(endpoint, client_id)
        self._ready = asyncio.Event()

    async def open(self, device_ids: Sequence[UUID]) -> None:
        loop = asyncio.get_running_loop()
        connected = asyncio.Event()
        failure: list[str] = []

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                failure.append(str(reason))
            loop.call_soon_threadsafe(connected.set)

        self._client.on_connect = on_connect
        try:
            await asyncio.to_thread(
                self._client.connect, self.endpoint.host, self.endpoint.port, 30
            )
        except (OSError, ssl.SSLError) as exc:
            raise TransportFailed(f"cannot reach the MQTT broker ({type(exc).__name__})") from None
        self._client.loop_start()
        try:
            await asyncio.wait_for(connected.wait(), 10)
        except TimeoutError:
            failure.append("no answer")
        if failure:
            self._client.loop_stop()
            raise TransportFailed(f"the MQTT broker refused the simulator ({failure[0]})")

    async def send(self, device_id: UUID, packet: bytes) -> None:
        info = self._client.publish(device_topic(device_id), packet, qos=0)
        if info.rc != 0:
            raise TransportFailed(f"MQTT publish failed (rc {info.rc})")

    async def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


async def _run_device(
    wearable: SimulatedWearable,
    transport: PacketTransport,
    start: float,
    duration_s: float,
    speed: float,
    stats: SimulationStats,
    on_sent: Callable[[SentPacket], None] | None,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    device, key = wearable.device, wearable.key
    interval = device.samples_per_packet / device.rate_hz
    for chunk in device.chunks(duration_s):
        if stop.is_set():
            return
        offset_s = (chunk.timestamp_ms - device.start_ms) / 1000.0
        due = start + offset_s / speed
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > interval:
            stats.late += 1
        packet = encode_packet(
            key, device.device_id, chunk.sequence, chunk.timestamp_ms, chunk.rate, chunk.samples
        )
        sent_at = time.time()
        try:
            await transport.send(device.device_id, packet)
        except Exception:  # a dropped connection loses this packet; the others go on
            stats.failed += 1
            continue
        stats.sent += 1
        stats.samples += int(chunk.samples.size)
        stats.per_device[device.device_id] = stats.per_device.get(device.device_id, 0) + 1
        if on_sent is not None:
            on_sent(
                SentPacket(
                    device.device_id,
                    chunk.sequence,
                    chunk.timestamp_ms,
                    int(chunk.samples.size),
                    sent_at,
                )
            )


async def simulate(
    wearables: Sequence[SimulatedWearable],
    transport: PacketTransport,
    *,
    duration_s: float,
    speed: float = 1.0,
    on_sent: Callable[[SentPacket], None] | None = None,
    stop: asyncio.Event | None = None,
) -> SimulationStats:
    """Send ``duration_s`` seconds of every device's signal, ``speed`` times real time. Devices
    start spread over one packet interval, as independent wearables would."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    stats = SimulationStats()
    stop = stop or asyncio.Event()
    opening = time.monotonic()
    await transport.open([w.device_id for w in wearables])
    stats.connect_seconds = time.monotonic() - opening
    try:
        with long_lived_objects_frozen():
            loop = asyncio.get_running_loop()
            begin = loop.time() + 0.2
            tasks = []
            for index, wearable in enumerate(wearables):
                interval = wearable.device.samples_per_packet / wearable.device.rate_hz
                start = begin + interval * index / max(1, len(wearables))
                tasks.append(
                    asyncio.create_task(
                        _run_device(
                            wearable, transport, start, duration_s, speed, stats, on_sent, stop
                        )
                    )
                )
            await asyncio.gather(*tasks)
    finally:
        await transport.close()
    return stats


@contextlib.contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist now (devices, signals, keys, connections) out of the garbage
    collector's full passes while the block runs.

    One process simulates every device. Without this, each full collection walks all of their
    objects: 0.1-0.17 s with 500 devices, during which no device sends, and then all of them
    send what fell due at once, a burst no set of independent wearables would make. After the
    block the objects go back to the collector, unless the process had frozen objects of its own
    before (it means them to live; they and these stay frozen)."""
    gc.collect()
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if frozen_before == 0:
            gc.unfreeze()
