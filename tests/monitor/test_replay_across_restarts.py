"""Replay protection outlives the server: packets a `rekam serve` accepted are refused by the
next one on the same installation — with the analysis in a process of its own and without —
while the device's stream goes on."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.sync.client import connect

from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Role
from rekam.monitor.packets import encode_packet
from rekam.monitor.pairing import DeviceKey, DevicePairing
from rekam.store.models import MonitorDevice
from support.attacks import fresh_installation
from support.live_monitor import SETUP_NURSE
from support.people import make_patient
from support.servers import Installation, RunningServer, login, running_server

pytestmark = pytest.mark.slow

SENT_BEFORE = 100
"""More than the replay window (64): the first packets are then too far behind to check."""


def pair_device(installation: Installation) -> DeviceKey:
    clinic = open_clinic(installation.settings)
    try:
        patient = clinic.patients.register(SETUP_NURSE, make_patient("Rina Marlina", "F"))
        service = MonitoringService.for_clinic(clinic)
        device = DevicePairing(uuid.uuid4(), X25519PrivateKey.generate())
        paired = service.pair_device(
            SETUP_NURSE, patient.id, device.public_bytes(), "Sabuk", device_id=device.device_id
        )
        return device.derive(paired.gateway_public)
    finally:
        clinic.close()


def stored_sequence(installation: Installation, device_id: uuid.UUID) -> int | None:
    clinic = open_clinic(installation.settings)
    try:
        with clinic.database.transaction() as session:
            row = session.get(MonitorDevice, str(device_id))
            assert row is not None
            return row.accepted_sequence
    finally:
        clinic.close()


def counts(server: RunningServer) -> dict[str, int]:
    with server.client() as client:
        login(client, "nurse1")
        found: dict[str, int] = client.get("/api/v1/monitor/gateway").json()["packets"]
        return found


def send(server: RunningServer, packets: list[bytes], verdict: str, expected: int) -> None:
    """Send over the device WebSocket and wait until the server counted them as ``verdict``."""
    before = counts(server)[verdict]
    url = server.url.replace("https://", "wss://") + "/api/v1/monitor/devices"
    with connect(url, ssl=server.ssl_context(), open_timeout=30) as socket:
        for packet in packets:
            socket.send(packet)
        deadline = time.monotonic() + 15
        while (now := counts(server))[verdict] < before + expected:
            assert time.monotonic() < deadline, now
            time.sleep(0.1)


@pytest.mark.parametrize("analysis_process", ["true", "false"])
def test_packets_accepted_before_a_restart_are_refused_after_it(
    analysis_process: str, tmp_path: Path
) -> None:
    installation = fresh_installation(tmp_path, {"nurse1": Role.NURSE})
    env = {
        "REKAM_MONITOR_ANALYSIS_PROCESS": analysis_process,
        "REKAM_MONITOR_BURST_SECONDS": "30",  # the test sends 10 s of signal at once
    }
    key = pair_device(installation)
    t0 = int(time.time() * 1000) - 20_000
    samples = np.zeros(25, dtype=np.int16)

    def packet(sequence: int) -> bytes:
        return encode_packet(key, key.device_id, sequence, t0 + sequence * 100, 250, samples)

    with running_server(installation, env) as first:
        send(first, [packet(s) for s in range(1, SENT_BEFORE + 1)], "accepted", SENT_BEFORE)
    # stopped (SIGTERM, as systemd does): the highest accepted number was kept
    assert stored_sequence(installation, key.device_id) == SENT_BEFORE

    with running_server(installation, env) as second:
        before = counts(second)
        send(second, [packet(SENT_BEFORE), packet(SENT_BEFORE - 5)], "replayed", 2)
        send(second, [packet(1)], "stale", 1)  # more than the window behind
        send(second, [packet(SENT_BEFORE + 1)], "accepted", 1)  # the stream goes on
        after = counts(second)
    assert after["accepted"] - before["accepted"] == 1
    assert after["replayed"] - before["replayed"] == 2
    assert after["stale"] - before["stale"] == 1
