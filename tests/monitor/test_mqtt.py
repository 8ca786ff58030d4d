"""The MQTT bridge against a real Mosquitto (TLS, password file, access list, 127.0.0.1): packets a
device publishes reach the gateway and raise the tachycardia alert; an outsider reading the broker
sees only ciphertext; the bridge refuses brokers it cannot trust and logins that fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from rekam.ecg.rhythm import RhythmThresholds
from rekam.monitor.events import AlertEvent, AlertKind, AlertPhase, MonitorEvent
from rekam.monitor.gateway import Gateway
from rekam.monitor.mqtt_bridge import (
    BridgeUnavailable,
    MqttBridge,
    MqttEndpoint,
    device_topic,
    make_client,
)
from support.mosquitto import (
    DEVICE_USER,
    GATEWAY_USER,
    OBSERVER_USER,
    PASSWORDS,
    MosquittoBroker,
    mosquitto_available,
    mosquitto_broker,
)
from support.sealed_stream import SealedStream, paired_key, schedule_samples

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    with mosquitto_broker(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


def endpoint(broker: MosquittoBroker, user: str, **overrides: object) -> MqttEndpoint:
    values: dict[str, object] = {
        "ca_file": broker.ca_file,
        "username": user,
        "password": PASSWORDS[user],
    }
    values.update(overrides)
    return MqttEndpoint.from_url(broker.url, **values)


class ListSink:
    def __init__(self) -> None:
        self.events: list[MonitorEvent] = []
        self.lock = threading.Lock()

    def publish(self, event: MonitorEvent) -> None:
        with self.lock:
            self.events.append(event)


def connected(client: mqtt.Client, broker: MosquittoBroker) -> mqtt.Client:
    ready = threading.Event()
    client.on_connect = lambda *_args: ready.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert ready.wait(10), broker.log()
    return client


def wait_until(condition: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_device_packets_through_mosquitto_raise_the_alert_and_the_broker_sees_no_samples(
    broker: MosquittoBroker,
) -> None:
    key = paired_key()
    stream = SealedStream(key, schedule_samples([(8.0, 72.0), (10.0, 150.0)]))
    sink = ListSink()
    gateway = Gateway(
        {key.device_id: key}.get,
        sink,
        thresholds_for=lambda _d: RhythmThresholds(min_duration_s=3.0),
        burst_seconds=60.0,  # the test sends 18 s of signal at once
    )
    bridge = MqttBridge(endpoint(broker, GATEWAY_USER), gateway.receive)
    bridge.start()

    seen: list[tuple[str, bytes]] = []
    observer = make_client(endpoint(broker, OBSERVER_USER), "observer-test")
    observer.on_message = lambda _c, _u, m: seen.append((m.topic, bytes(m.payload)))
    observer = connected(observer, broker)
    observer.subscribe("#")
    device = connected(make_client(endpoint(broker, DEVICE_USER), "device-test"), broker)
    time.sleep(0.3)  # both subscriptions in place
    try:
        packets = stream.packets()
        for packet in packets:
            device.publish(device_topic(key.device_id), packet, qos=1).wait_for_publish(5)
        assert wait_until(lambda: gateway.counters["accepted"] == len(packets)), (
            gateway.counters,
            bridge.counters,
        )
        assert wait_until(lambda: len(seen) >= len(packets))
    finally:
        device.loop_stop()
        observer.loop_stop()
        bridge.stop()

    raised = [e for e in sink.events if isinstance(e, AlertEvent) and e.phase is AlertPhase.RAISED]
    assert [a.kind for a in raised] == [AlertKind.TACHYCARDIA]
    assert bridge.counters["messages"] == len(packets)
    # What the broker carried: the sealed packets byte for byte, never the samples.
    assert [payload for _topic, payload in seen] == packets
    assert {topic for topic, _ in seen} == {f"rekam/v1/devices/{key.device_id}/ecg"}
    for index, (_topic, payload) in enumerate(seen[:50]):
        plain = stream.samples[index * 25 : (index + 1) * 25].astype(">i2").tobytes()
        assert plain not in payload
        body = np.frombuffer(payload[36:-16], dtype=">i2")
        assert not np.array_equal(body, stream.samples[index * 25 : (index + 1) * 25])


def test_a_device_cannot_speak_under_another_devices_topic(broker: MosquittoBroker) -> None:
    key, other = paired_key(), paired_key()
    received: list[bytes] = []
    bridge = MqttBridge(endpoint(broker, GATEWAY_USER), received.append)
    bridge.start()
    device = connected(make_client(endpoint(broker, DEVICE_USER), "device-mismatch"), broker)
    try:
        packet = SealedStream(key, np.zeros(25, dtype=np.int16)).packet(0)
        device.publish(device_topic(other.device_id), packet, qos=1).wait_for_publish(5)
        device.publish(device_topic(key.device_id), packet, qos=1).wait_for_publish(5)
        device.publish("rekam/v1/devices/not-a-uuid/ecg", packet, qos=1).wait_for_publish(5)
        assert wait_until(lambda: len(received) == 1)
        assert wait_until(lambda: bridge.counters["topic_mismatch"] == 1)
        assert wait_until(lambda: bridge.counters["bad_topic"] == 1)
    finally:
        device.loop_stop()
        bridge.stop()
    assert received == [packet]


def test_the_bridge_refuses_an_untrusted_broker_and_a_wrong_password(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    with pytest.raises(BridgeUnavailable, match="cannot reach"):  # verified against system CAs
        MqttBridge(endpoint(broker, GATEWAY_USER, ca_file=None), lambda _b: None).start(3)
    with pytest.raises(BridgeUnavailable, match="did not accept"):
        MqttBridge(
            endpoint(broker, GATEWAY_USER, password="wrong-password"), lambda _b: None
        ).start(3)
    with pytest.raises(BridgeUnavailable, match="mqtts://"):
        MqttEndpoint.from_url(f"mqtt://127.0.0.1:{broker.port}")
    assert "wrong-password" not in repr(endpoint(broker, GATEWAY_USER, password="wrong-password"))


def test_the_bridge_hands_packets_over_in_batches_and_loses_none(broker: MosquittoBroker) -> None:
    """With receive_many (as the server runs it) the bridge gathers what arrives and hands it
    over in batches: several devices publishing at once, every packet accepted, every device's
    tachycardia raised — and fewer batches than messages."""
    keys = [paired_key() for _ in range(4)]
    streams = [
        SealedStream(k, schedule_samples([(8.0, 72.0), (10.0, 150.0)], seed=n))
        for n, k in enumerate(keys)
    ]
    sink = ListSink()
    gateway = Gateway(
        {k.device_id: k for k in keys}.get,
        sink,
        thresholds_for=lambda _d: RhythmThresholds(min_duration_s=3.0),
        burst_seconds=60.0,  # the test sends 18 s of signal at once
    )
    singly: list[bytes] = []
    bridge = MqttBridge(
        endpoint(broker, GATEWAY_USER), singly.append, receive_many=gateway.receive_many
    )
    bridge.start()
    device = connected(make_client(endpoint(broker, DEVICE_USER), "device-batches"), broker)
    time.sleep(0.3)
    total = sum(len(s) for s in streams)
    try:
        for index in range(max(len(s) for s in streams)):
            for stream in streams:
                topic = device_topic(stream.device_id)
                device.publish(topic, stream.packet(index), qos=1).wait_for_publish(5)
        assert wait_until(lambda: gateway.counters["accepted"] == total), (
            gateway.counters,
            bridge.counters,
        )
    finally:
        device.loop_stop()
        bridge.stop()
    assert singly == []  # everything went through receive_many
    assert bridge.counters["messages"] == total
    assert 0 < bridge.counters["batches"] < total
    raised = [e for e in sink.events if isinstance(e, AlertEvent) and e.phase is AlertPhase.RAISED]
    assert sorted(str(a.device_id) for a in raised) == sorted(str(k.device_id) for k in keys)
    assert {a.kind for a in raised} == {AlertKind.TACHYCARDIA}
