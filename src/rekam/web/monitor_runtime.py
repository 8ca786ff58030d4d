"""The live-monitoring machinery of one server process, built once per app.

:class:`MonitorRuntime` holds the process's :class:`~rekam.monitor.gateway.Gateway` (or, with
an analysis process, the :class:`~rekam.monitor.gateway_process.GatewayProcess` that runs one
there), the bus that
fans events out to the clinicians' event streams (in-process, or Redis when ``REKAM_REDIS_URL`` is
set) and, when ``REKAM_MQTT_URL`` is set, the MQTT bridge. Keys, alarm limits and the storing sink
come from :class:`rekam.his.monitoring.MonitoringService`; this module is the one place that
connects them.

Events from the gateway go to two places: the clinic's storing sink (alerts merged per episode,
per-minute trends; only the process that received the packet stores it — the analysis process,
when there is one, while the server's sink then only keeps the latest readings for the tiles)
and the bus (every process's subscribers, as ``to_json()`` dictionaries).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from uuid import UUID

from rekam.his.installation import Clinic
from rekam.his.monitoring import AlertView, MonitoringService
from rekam.his.monitoring_gateway_setup import ClinicGatewaySetup
from rekam.monitor.events import EventSink, MonitorEvent, publish_all
from rekam.monitor.gateway import Gateway
from rekam.monitor.gateway_process import GatewayProcess
from rekam.monitor.mqtt_bridge import MqttBridge, MqttEndpoint
from rekam.web.monitor_bus import InProcessBus, MonitorBus, RedisBus

log = logging.getLogger("rekam.web.monitor")

__all__ = ["BusSink", "FanOutSink", "MonitorRuntime"]


class BusSink:
    """Publishes each event's ``to_json()`` on the bus."""

    def __init__(self, bus: MonitorBus) -> None:
        self.bus = bus

    def publish(self, event: MonitorEvent) -> None:
        self.bus.publish(event.to_json())

    def publish_many(self, events: Sequence[MonitorEvent]) -> None:
        self.bus.publish_many([event.to_json() for event in events])


class FanOutSink:
    """Hands each event to several sinks; one failing does not keep it from the others."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = tuple(sinks)
        self.failures = 0

    def publish(self, event: MonitorEvent) -> None:
        self.publish_many([event])

    def publish_many(self, events: Sequence[MonitorEvent]) -> None:
        """A batch of events to every sink (in one call to those that take batches)."""
        for sink in self.sinks:
            self.failures += publish_all(sink, events)


class MonitorRuntime:
    """Gateway, bus and MQTT bridge of one server process."""

    def __init__(
        self,
        clinic: Clinic,
        *,
        bus: MonitorBus | None = None,
        analysis_process: bool | None = None,
    ) -> None:
        """``analysis_process``: run the gateway in a process of its own (see
        :mod:`rekam.monitor.gateway_process`); default the ``monitor_analysis_process`` setting
        (unset: in this process)."""
        settings = clinic.settings
        self.clinic = clinic
        self.service = MonitoringService.for_clinic(clinic)
        if bus is None:
            bus = RedisBus(settings.redis_url) if settings.redis_url else InProcessBus()
        self.bus: MonitorBus = bus
        if analysis_process is None:
            analysis_process = bool(settings.monitor_analysis_process)
        # With an analysis process, that process stores the events; this one keeps the latest
        # readings for the tiles and fans the events out to the event streams.
        self._storing = self.service.event_sink()
        self._storing.store = not analysis_process
        self._sink = FanOutSink([self._storing, BusSink(self.bus)])
        self.gateway: Gateway | GatewayProcess
        if analysis_process:
            self.gateway = GatewayProcess(
                ClinicGatewaySetup(settings),
                self._sink,
                speed_limit=settings.monitor_speed_limit,
                burst_seconds=settings.monitor_burst_seconds,
                all_samples=not isinstance(self.bus, InProcessBus),
            )
        else:
            self.gateway = self._gateway_here()
        self.service.on_registry_change(self._registry_changed)
        self.bus.on_registry_change(self._registry_changed_elsewhere)
        self.bridge: MqttBridge | None = None
        self._lock = threading.Lock()
        self._watched: Counter[UUID] = Counter()

    def _gateway_here(self) -> Gateway:
        settings = self.clinic.settings
        return Gateway(
            self.service.key_lookup,
            self._sink,
            thresholds_for=self.service.thresholds_for,
            speed_limit=settings.monitor_speed_limit,
            burst_seconds=settings.monitor_burst_seconds,
            samples_wanted=self.wants_samples,
            replay_floors=self.service.replay_floors(self._storing),
            prefetch=self.service.prefetch_devices,
        )

    def start(self) -> None:
        """Start the analysis process (when the gateway runs in one), and the MQTT bridge if a
        broker is configured. The bridge connects in the background and keeps retrying while
        the broker cannot be reached. An analysis process that cannot start is logged, and the
        packets are analysed (and stored) in this process instead: monitoring goes on."""
        if isinstance(self.gateway, GatewayProcess):
            try:
                self.gateway.start()
            except RuntimeError as exc:
                log.error("monitor: %s; analysing device packets in the server process", exc)
                self._storing.store = True
                self.gateway = self._gateway_here()
        settings = self.clinic.settings
        if not settings.mqtt_url:
            return
        with self._lock:
            if self.bridge is not None:
                return
            endpoint = MqttEndpoint.from_url(
                settings.mqtt_url,
                ca_file=settings.mqtt_ca or self.clinic.pki.root_certificate_path,
                username=settings.mqtt_username,
                password=(
                    settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
                ),
                client_cert=settings.mqtt_client_cert,
            )
            self.bridge = MqttBridge(
                endpoint, self.gateway.receive, receive_many=self.gateway.receive_many
            )
            self.bridge.start_in_background()
            log.info("monitor: MQTT bridge connecting to %s:%d", endpoint.host, endpoint.port)

    def watch_samples(self, devices: Iterable[UUID]) -> None:
        """An event stream of this process shows these devices' strips (until unwatched)."""
        with self._lock:
            self._watched.update(devices)
            self._tell_watched()

    def unwatch_samples(self, devices: Iterable[UUID]) -> None:
        with self._lock:
            self._watched.subtract(devices)
            for device in [d for d, n in self._watched.items() if n <= 0]:
                del self._watched[device]
            self._tell_watched()

    def _tell_watched(self) -> None:
        if isinstance(self.gateway, GatewayProcess):
            self.gateway.watch(self._watched)

    def _registry_changed(self, device_id: UUID | None) -> None:
        """A device paired or unpaired in this process (or alarm limits changed: None): the
        gateway drops the device's state (a device paired again starts a fresh stream) and, in
        an analysis process, what that process cached about keys and limits; the other server
        processes are told through the bus."""
        self.gateway.forget(device_id)
        self.bus.announce_registry_change(device_id)

    def _registry_changed_elsewhere(self, device_id: UUID | None) -> None:
        """Another server process announced a registry change: drop what this one (and its
        analysis process) cached about the device, as if the change had been made here."""
        self.service.forget_device(device_id)
        self.gateway.forget(device_id)

    def wants_samples(self, device_id: UUID) -> bool:
        """Whether a device's raw samples are worth publishing: someone in this process watches
        its strip, or the bus is shared with other processes (whose watchers are not known
        here)."""
        return not isinstance(self.bus, InProcessBus) or device_id in self._watched

    def announce_acknowledged(self, alert: AlertView) -> None:
        """Tell every open dashboard (in this process and, through Redis, the others) that an
        alert was acknowledged, so none of them keeps showing it as waiting."""
        acknowledged_at = alert.acknowledged_at
        self.bus.publish(
            {
                "type": "alert_acknowledged",
                "episode_id": alert.episode_id,
                "device_id": alert.device_id,
                "acknowledged_by": alert.acknowledged_by,
                "acknowledged_ms": (
                    int(acknowledged_at.timestamp() * 1000) if acknowledged_at else None
                ),
            }
        )

    def stop(self) -> None:
        """At server shutdown: stop taking packets from the broker, let the analysis process
        finish the packets it has, and write the alerts and trend minutes still waiting in the
        storing sink. The runtime can be started again."""
        with self._lock:
            if self.bridge is not None:
                self.bridge.stop()
                self.bridge = None
        if isinstance(self.gateway, GatewayProcess):
            if not self.gateway.stop():
                log.error("monitor: the analysis process did not finish its packets in time")
        else:
            self.gateway.save_floors()
        if not self._storing.flush():
            log.error("monitor: alerts or trends could not be written before shutdown")

    def close(self) -> None:
        with self._lock:
            if self.bridge is not None:
                self.bridge.stop()
                self.bridge = None
        if isinstance(self.gateway, GatewayProcess):
            self.gateway.close()
        self.bus.close()
