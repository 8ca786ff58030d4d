"""Helpers for tests of live monitoring against a real server: pair a device with a new patient,
collect the Server-Sent Events a logged-in clinician receives, send packets over the device
WebSocket."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Actor, Role
from rekam.monitor.pairing import DeviceKey, DevicePairing
from support.people import make_patient
from support.servers import Installation, RunningServer, login

SETUP_NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)


def pair_new_patient(
    installation: Installation, min_duration_s: float = 3.0
) -> tuple[DeviceKey, str]:
    """Register a patient (in every nurse's care today), pair a device with them through the
    clinic's service and give them alarm limits 50/100 bpm with a short minimum duration."""
    clinic = open_clinic(installation.settings)
    try:
        patient = clinic.patients.register(
            SETUP_NURSE, make_patient(f"Larasati {uuid.uuid4().hex[:4]}", "F")
        )
        service = MonitoringService.for_clinic(clinic)
        private = X25519PrivateKey.generate()
        paired = service.pair_device(
            SETUP_NURSE, patient.id, private.public_key().public_bytes_raw(), "Sabuk dada"
        )
        service.set_thresholds(
            SETUP_NURSE, patient.id, service.thresholds_from(50, 100, 5, min_duration_s)
        )
        key = DevicePairing(paired.device_id, private).derive(paired.gateway_public)
    finally:
        clinic.close()
    return key, patient.id


class EventCollector:
    """A clinician's browser-side subscriber: logs in and reads GET /api/v1/monitor/events in a
    thread, keeping every ``data:`` message."""

    def __init__(self, server: RunningServer, username: str, query: str = "") -> None:
        self.server = server
        self.username = username
        self.query = query
        self.messages: list[dict[str, Any]] = []
        self.received_at: list[float] = []
        self.headers: dict[str, str] = {}
        self.status: int | None = None
        self.ready = threading.Event()
        self._client = server.client(timeout=httpx.Timeout(10.0, read=60.0))
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def __enter__(self) -> EventCollector:
        login(self._client, self.username)
        self._thread.start()
        assert self.ready.wait(15), "the event stream did not open"
        return self

    def __exit__(self, *_exc: object) -> None:
        # the reader leaves at the next line (a keepalive comes at least every 15 s) and closes
        # the response in its own thread; the server sees the disconnect
        self._stop.set()
        self._thread.join(20)
        self._client.close()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/api/v1/monitor/events" + self.query) as response:
                self.status = response.status_code
                self.headers = dict(response.headers)
                for line in response.iter_lines():
                    if self._stop.is_set():
                        break
                    if line.startswith("retry:"):
                        self.ready.set()
                    elif line.startswith("data: "):
                        message = json.loads(line[len("data: ") :])
                        with self._lock:
                            self.messages.append(message)
                            self.received_at.append(time.time())
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass  # closed by __exit__
        finally:
            self.ready.set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m.get("type") == kind]

    def wait_for(self, condition: Callable[[EventCollector], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return True
            time.sleep(0.05)
        return condition(self)


def raised_alerts(collector: EventCollector, kind: str | None = None) -> list[dict[str, Any]]:
    return [
        m
        for m in collector.of_type("alert")
        if m["phase"] == "raised" and (kind is None or m["kind"] == kind)
    ]


def device_socket_url(server: RunningServer) -> str:
    return server.url.replace("https://", "wss://") + "/api/v1/monitor/devices"
