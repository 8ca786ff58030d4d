"""Devices that publish to an MQTT broker: the bridge subscribes and hands packets to the gateway.

Topic per device: ``rekam/v1/devices/<device-id>/ecg``. The payload is the RKD1 packet exactly as
the device sealed it, so the broker only ever holds ciphertext — it authenticates and routes, it
never sees a sample (the packet is end-to-end encrypted between the device and the gateway).

The bridge connects over TLS only (``mqtts://``), verifies the broker's certificate against the
given CA (Rekam's root by default) and host name, and logs in with a user name and password
and/or a client certificate. paho-mqtt runs its network loop in a background thread and
reconnects by itself; each message goes to ``receive`` (normally :meth:`Gateway.receive`, which
never raises), or in batches to ``receive_many`` (:meth:`Gateway.receive_many`) from a worker
thread of the bridge. A payload whose device id is not the one in its topic is refused and
counted: a device may only speak under its own topic.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from rekam.monitor.errors import MonitorError
from rekam.monitor.packets import HEADER_LENGTH, MAX_PACKET_LENGTH

__all__ = [
    "TOPIC_FILTER",
    "BridgeUnavailable",
    "MqttBridge",
    "MqttEndpoint",
    "device_topic",
    "mqtt_tls_context",
]

log = logging.getLogger("rekam.monitor.mqtt")

TOPIC_PREFIX = "rekam/v1/devices"
TOPIC_FILTER = f"{TOPIC_PREFIX}/+/ecg"
DEFAULT_PORT = 8883


class BridgeUnavailable(MonitorError):
    """The MQTT broker cannot be reached, refused the login or is not trusted."""


def device_topic(device_id: UUID) -> str:
    """The topic a device publishes its packets to."""
    return f"{TOPIC_PREFIX}/{device_id}/ecg"


def _device_of_topic(topic: str) -> UUID | None:
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != TOPIC_PREFIX or parts[4] != "ecg":
        return None
    try:
        return UUID(parts[3])
    except ValueError:
        return None


@dataclass(frozen=True)
class MqttEndpoint:
    """Where the broker is and how to log in to it."""

    host: str
    port: int
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None
    client_cert: Path | None = None  # PEM with the certificate and its (unencrypted) key

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MqttEndpoint:
        parts = urlsplit(url)
        if parts.scheme != "mqtts":
            raise BridgeUnavailable(
                f"the MQTT broker address must start with mqtts:// (TLS), not {parts.scheme}://"
            )
        if not parts.hostname:
            raise BridgeUnavailable(f"no host in the MQTT broker address {url!r}")
        return cls(parts.hostname, parts.port or DEFAULT_PORT, **kwargs)

    def __repr__(self) -> str:  # never show the password
        return f"MqttEndpoint({self.host}:{self.port}, user={self.username!r})"


def mqtt_tls_context(endpoint: MqttEndpoint) -> ssl.SSLContext:
    """TLS 1.2+ with certificate and host-name verification against the endpoint's CA."""
    context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if endpoint.client_cert is not None:
        context.load_cert_chain(str(endpoint.client_cert))
    return context


def make_client(endpoint: MqttEndpoint, client_id: str) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
    )
    client.tls_set_context(mqtt_tls_context(endpoint))
    if endpoint.username is not None:
        client.username_pw_set(endpoint.username, endpoint.password)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


class MqttBridge:
    """Subscribes to every device topic and passes each payload to ``receive``.

    With ``receive_many`` (normally :meth:`Gateway.receive_many`), payloads are handed over in
    batches instead, by a worker thread of the bridge: the messages that arrive within
    ``batch_window_s`` of the first, or while the previous batch is being analysed. paho's
    network thread then only reads and queues, and the analysis of a batch is shared among its
    devices. At most ``MAX_WAITING`` payloads wait; beyond that they are dropped and counted
    (``overflow``), so a stalled analysis cannot exhaust the memory.
    """

    MAX_WAITING = 50_000

    def __init__(
        self,
        endpoint: MqttEndpoint,
        receive: Callable[[bytes], object],
        *,
        receive_many: Callable[[list[bytes]], object] | None = None,
        batch_window_s: float = 0.005,
        client_id: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._receive = receive
        self._receive_many = receive_many
        self._batch_window_s = batch_window_s
        self.counters: Counter[str] = Counter()
        self._connected = threading.Event()
        self._failure: str | None = None
        self._waiting: list[bytes] = []
        self._first_waiting_at = 0.0
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._client = make_client(endpoint, client_id or f"rekam-gateway-{uuid.uuid4().hex[:12]}")
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; raises :class:`BridgeUnavailable` if that fails in time."""
        try:
            self._client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise BridgeUnavailable(
                f"cannot reach the MQTT broker at {self.endpoint.host}:{self.endpoint.port} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        self._start_worker()
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self._client.loop_stop()
            reason = self._failure or "no answer"
            raise BridgeUnavailable(f"the MQTT broker did not accept the bridge ({reason})")

    def start_in_background(self) -> None:
        """Connect without waiting (a server starting before its broker): the client keeps
        retrying until the broker answers; :attr:`connected` tells when it has."""
        self._client.connect_async(self.endpoint.host, self.endpoint.port, keepalive=30)
        self._start_worker()
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect; the payloads already received are still analysed."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        worker = self._worker
        if worker is not None:
            with self._wake:
                self._stopping = True
                self._wake.notify()
            worker.join(10)
            self._worker = None

    def _start_worker(self) -> None:
        if self._receive_many is None or self._worker is not None:
            return
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="mqtt-bridge-batches", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        receive_many = self._receive_many
        assert receive_many is not None
        while True:
            with self._wake:
                while not self._waiting and not self._stopping:
                    self._wake.wait()
                if not self._waiting:
                    return
                wait = self._first_waiting_at + self._batch_window_s - time.monotonic()
            if wait > 0 and not self._stopping:
                time.sleep(wait)
            with self._wake:
                batch, self._waiting = self._waiting, []
            self.counters["batches"] += 1
            try:
                receive_many(batch)
            except Exception as exc:  # the worker must outlive any one batch
                self.counters["receive_failed"] += len(batch)
                log.error("MQTT bridge: receive failed (%s)", type(exc).__name__)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self._failure = str(reason)
            log.error("MQTT bridge: broker refused the connection (%s)", reason)
            return
        client.subscribe(TOPIC_FILTER, qos=0)
        self.counters["connects"] += 1
        self._connected.set()
        log.info("MQTT bridge: subscribed to %s", TOPIC_FILTER)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("MQTT bridge: disconnected (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = message.payload
        device_id = _device_of_topic(message.topic)
        if device_id is None:
            self.counters["bad_topic"] += 1
            return
        if len(payload) > MAX_PACKET_LENGTH:
            self.counters["oversized"] += 1
            return
        if len(payload) >= HEADER_LENGTH and payload[4:20] != device_id.bytes:
            self.counters["topic_mismatch"] += 1
            return
        self.counters["messages"] += 1
        if self._worker is not None:
            with self._wake:
                if len(self._waiting) >= self.MAX_WAITING:
                    self.counters["overflow"] += 1
                    return
                if not self._waiting:
                    self._first_waiting_at = time.monotonic()
                    self._wake.notify()
                self._waiting.append(bytes(payload))
            return
        try:
            self._receive(bytes(payload))
        except Exception as exc:  # the receive path must not stop paho's network thread
            self.counters["receive_failed"] += 1
            log.error("MQTT bridge: receive failed (%s)", type(exc).__name__)
