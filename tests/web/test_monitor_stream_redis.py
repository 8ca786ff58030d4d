"""Fan-out through a real redis-server (127.0.0.1, no persistence): the bus itself, and two
``rekam serve`` processes with REKAM_REDIS_URL — an alert raised from a device connected to one
reaches an event-stream subscriber of the other."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from websockets.sync.client import connect

from rekam.his.rbac import Role
from rekam.web.monitor_bus import REGISTRY_CHANNEL, InProcessBus, RedisBus
from support.attacks import fresh_installation
from support.live_monitor import EventCollector, device_socket_url, pair_new_patient, raised_alerts
from support.redis_server import RedisServer, redis_available, redis_server
from support.sealed_stream import SealedStream, schedule_samples
from support.servers import login, running_server

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


async def _collect(bus: Any, count: int, started: threading.Event) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with bus.subscribe() as messages:
        started.set()
        async for message in messages:
            got.append(message)
            if len(got) == count:
                return got
    return got


def test_redis_bus_delivers_between_two_bus_instances(redis: RedisServer) -> None:
    publisher, subscriber = RedisBus(redis.url), RedisBus(redis.url)
    started = threading.Event()
    result: list[list[dict[str, Any]]] = []
    thread = threading.Thread(
        target=lambda: result.append(asyncio.run(_collect(subscriber, 3, started)))
    )
    thread.start()
    try:
        assert started.wait(5)
        time.sleep(0.2)
        for n in range(3):
            publisher.publish({"type": "heart_rate", "device_id": "d", "n": n})
        thread.join(10)
        assert result == [[{"type": "heart_rate", "device_id": "d", "n": n} for n in range(3)]]
        # the sender thread counts a batch once Redis has answered, which may be just after
        # the subscriber has the messages
        deadline = time.monotonic() + 5
        while publisher.published < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert publisher.published == 3 and publisher.dropped == 0
    finally:
        publisher.close()
        subscriber.close()


def test_redis_bus_counts_messages_it_cannot_deliver(tmp_path: Path) -> None:
    with redis_server(tmp_path) as short_lived:
        bus = RedisBus(short_lived.url)
    bus.publish({"type": "heart_rate"})  # redis-server has stopped: lost, counted, no exception
    deadline = time.monotonic() + 10
    while bus.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bus.dropped == 1 and bus.published == 0
    bus.close()


def test_in_process_bus_slow_subscriber_loses_oldest_only() -> None:
    async def scenario() -> list[int]:
        bus = InProcessBus(subscriber_queue=3)
        async with bus.subscribe() as messages:
            for n in range(5):  # from another thread, as the MQTT bridge publishes
                threading.Thread(target=bus.publish, args=({"n": n},)).start()
                await asyncio.sleep(0.02)
            got = [int((await anext(aiter(messages)))["n"]) for _ in range(3)]
        assert bus.subscriber_count == 0
        return got

    assert asyncio.run(scenario()) == [2, 3, 4]


def test_two_server_processes_share_alerts_through_redis(
    redis: RedisServer, tmp_path: Path
) -> None:
    installation = fresh_installation(tmp_path, {"nurse1": Role.NURSE})
    env = {
        "REKAM_REDIS_URL": redis.url,
        "REKAM_MONITOR_SPEED_LIMIT": "20",
        "REKAM_MONITOR_BURST_SECONDS": "30",
    }
    key, _patient = pair_new_patient(installation)
    stream = SealedStream(key, schedule_samples([(8.0, 72.0), (10.0, 150.0)]))
    with (
        running_server(installation, env) as first,
        running_server(installation, env) as second,
        EventCollector(second, "nurse1") as on_second,
        EventCollector(first, "nurse1") as on_first,
        connect(device_socket_url(first), ssl=first.ssl_context()) as socket,
    ):
        for index, packet in enumerate(stream.packets()):
            socket.send(packet)
            if index % 20 == 0:
                time.sleep(0.1)
        assert on_second.wait_for(lambda c: len(raised_alerts(c)) >= 1, 20), second.log()
        assert on_first.wait_for(lambda c: len(raised_alerts(c)) >= 1, 5)
        time.sleep(0.5)
    for collector in (on_first, on_second):
        assert [a["kind"] for a in raised_alerts(collector)] == ["tachycardia"]
    assert raised_alerts(on_first)[0]["episode_id"] == raised_alerts(on_second)[0]["episode_id"]
    # readings went through Redis too; the second server never saw the device's packets
    assert len(on_second.of_type("heart_rate")) == len(on_first.of_type("heart_rate")) > 10


def test_registry_changes_reach_the_other_processes_and_not_their_sender(
    redis: RedisServer,
) -> None:
    import redis as redis_client

    here, there = RedisBus(redis.url), RedisBus(redis.url)
    heard_here: list[UUID | None] = []
    heard_there: list[UUID | None] = []
    here.on_registry_change(heard_here.append)
    there.on_registry_change(heard_there.append)
    device = uuid4()
    try:
        time.sleep(0.5)  # both subscribed
        raw = redis_client.Redis.from_url(redis.url)
        raw.publish(REGISTRY_CHANNEL, b"not a registry note")  # ignored, the channel lives on
        raw.publish(REGISTRY_CHANNEL, b'{"origin": "x", "device_id": "not-a-uuid"}')
        raw.close()
        here.announce_registry_change(device)
        here.announce_registry_change(None)  # alarm limits changed
        deadline = time.monotonic() + 5
        while len(heard_there) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert heard_there == [device, None]
        time.sleep(0.2)
        assert heard_here == []  # its own announcements do not come back to it
    finally:
        here.close()
        there.close()


def test_a_device_unpaired_through_one_process_is_refused_by_the_other_at_once(
    redis: RedisServer, tmp_path: Path
) -> None:
    installation = fresh_installation(tmp_path, {"nurse1": Role.NURSE})
    env = {"REKAM_REDIS_URL": redis.url}
    key, _patient = pair_new_patient(installation)
    packets = SealedStream(key, schedule_samples([(30.0, 72.0)])).packets()
    with (
        running_server(installation, env) as first,
        running_server(installation, env) as second,
        connect(device_socket_url(second), ssl=second.ssl_context()) as socket,
        httpx.Client(base_url=first.url, verify=first.ssl_context()) as on_first,
        httpx.Client(base_url=second.url, verify=second.ssl_context()) as on_second,
    ):
        login(on_second, "nurse1")

        def counted(verdict: str) -> int:
            packets_seen = on_second.get("/api/v1/monitor/gateway").json()["packets"]
            return int(packets_seen[verdict])

        sent = 0
        for packet in packets[:20]:  # the second process now holds the device's key
            socket.send(packet)
            sent += 1
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while counted("accepted") < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counted("accepted") == 20, second.log()
        csrf = login(on_first, "nurse1")
        unpaired = on_first.delete(
            f"/api/v1/monitor/devices/{key.device_id}", headers={"X-CSRF-Token": csrf}
        )
        assert unpaired.status_code == 204, unpaired.text
        # Without the announcement the second process would keep the key for up to 30 s more.
        deadline = time.monotonic() + 5
        while counted("unknown_device") == 0 and time.monotonic() < deadline:
            socket.send(packets[sent])
            sent += 1
            time.sleep(0.1)
        assert counted("unknown_device") >= 1, second.log()
        accepted = counted("accepted")
        for packet in packets[sent : sent + 5]:
            socket.send(packet)
        time.sleep(0.5)
        assert counted("accepted") == accepted  # nothing more from it
