"""End to end, both transports: ``rekam monitor simulate`` pairs simulated wearables through the
pairing API and streams their sealed ECG (scenario ``tachy``: normal stretches alternating with
tachycardia) over the device WebSocket, or through a real Mosquitto (TLS) that the server's MQTT
bridge reads; a clinician's event stream (HTTPS, Server-Sent Events) must receive one tachycardia
alert for every injected episode, starting where the ground truth says, and none for the normal
stretches.

The signal is sent 15× faster than real time (the test server's flood limit allows 20×) with a
3-second minimum duration from the patient's alarm limits, so ~130 s of ECG take ~10 s."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.sync.client import connect

from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Role
from rekam.monitor.packets import encode_packet
from rekam.monitor.pairing import DeviceKey, DevicePairing
from support.attacks import private_server
from support.live_monitor import SETUP_NURSE, EventCollector, raised_alerts
from support.mosquitto import (
    DEVICE_USER,
    GATEWAY_USER,
    PASSWORDS,
    MosquittoBroker,
    mosquitto_available,
    mosquitto_broker,
)
from support.people import make_patient
from support.servers import PASSWORD, REKAM, RunningServer, login

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed"),
]

DURATION_S = 130.0
SPEED = 15.0
MIN_DURATION_S = 3.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    with mosquitto_broker(tmp_path_factory.mktemp("e2e-broker")) as running:
        yield running


@pytest.fixture(scope="module")
def server(
    broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    env = {
        "REKAM_MONITOR_SPEED_LIMIT": "20",
        "REKAM_MONITOR_BURST_SECONDS": "30",
        "REKAM_MONITOR_ANALYSIS_PROCESS": "true",  # what 'rekam serve' picks on 2+ CPUs
        "REKAM_MQTT_URL": broker.url,
        "REKAM_MQTT_CA": str(broker.ca_file),
        "REKAM_MQTT_USERNAME": GATEWAY_USER,
        "REKAM_MQTT_PASSWORD": PASSWORDS[GATEWAY_USER],
    }
    users = {"nurse1": Role.NURSE, "nurse2": Role.NURSE}
    with private_server(tmp_path_factory.mktemp("e2e"), users, env) as running:
        deadline = time.monotonic() + 15
        while f"u'{GATEWAY_USER}'" not in broker.log() and time.monotonic() < deadline:
            time.sleep(0.1)  # the server's bridge has logged in to the broker
        assert f"u'{GATEWAY_USER}'" in broker.log(), broker.log()
        yield running


def new_patient(server: RunningServer) -> str:
    clinic = open_clinic(server.installation.settings)
    try:
        patient = clinic.patients.register(SETUP_NURSE, make_patient("Wulan Sari", "F"))
        service = MonitoringService.for_clinic(clinic)
        service.set_thresholds(
            SETUP_NURSE, patient.id, service.thresholds_from(50, 100, 5, MIN_DURATION_S)
        )
        return patient.id
    finally:
        clinic.close()


def run_simulator(
    server: RunningServer, patient_id: str, truth: Path, extra: list[str], seed: int
) -> subprocess.CompletedProcess[str]:
    command = [
        REKAM, "monitor", "simulate",
        "--server", server.url,
        "--ca", str(server.installation.root_pem),
        "--user", "nurse1",
        "--patient", patient_id,
        "--devices", "2",
        "--rate", "250",
        "--scenario", "tachy",
        "--duration", str(DURATION_S),
        "--speed", str(SPEED),
        "--seed", str(seed),
        "--ground-truth", str(truth),
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "REKAM_MONITOR_PASSWORD": PASSWORD, "COLUMNS": "120"}
    env.update({"REKAM_MQTT_PASSWORD": PASSWORDS[DEVICE_USER]})
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def check_alerts_against_ground_truth(
    alerts: list[dict[str, Any]], truth: list[dict[str, Any]]
) -> None:
    by_device: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_device.setdefault(alert["device_id"], []).append(alert)
    devices = {e["device_id"] for e in truth}
    assert len(devices) == 2
    matched = 0
    for device_id in devices:
        episodes = [e for e in truth if e["device_id"] == device_id and e["kind"] == "tachycardia"]
        start_ms = next(e["device_start_ms"] for e in truth if e["device_id"] == device_id)
        # episodes long enough to be confirmed within the signal sent
        expected = [e for e in episodes if min(e["end_s"], DURATION_S) - e["start_s"] > 6.0]
        got = sorted(by_device.get(device_id, []), key=lambda a: a["started_ms"])
        assert len(got) == len(expected), (device_id, got, expected)
        for alert, episode in zip(got, sorted(expected, key=lambda e: e["start_s"]), strict=True):
            assert alert["kind"] == "tachycardia"
            started_s = (alert["started_ms"] - start_ms) / 1000
            confirmed_s = (alert["confirmed_ms"] - start_ms) / 1000
            assert episode["start_s"] - 1.5 <= started_s <= episode["start_s"] + 3.0
            assert started_s + MIN_DURATION_S - 0.5 <= confirmed_s <= episode["end_s"]
            assert alert["bpm"] > 100
            matched += 1
    assert matched >= 2  # at least one episode per device was sent


@pytest.mark.parametrize("transport", ["websocket", "mqtt"])
def test_simulator_to_clinician_one_alert_per_injected_episode(
    transport: str, server: RunningServer, broker: MosquittoBroker, tmp_path: Path
) -> None:
    patient_id = new_patient(server)
    truth_path = tmp_path / "truth.jsonl"
    extra = ["--transport", transport]
    if transport == "mqtt":
        extra += [
            "--mqtt-url", broker.url,
            "--mqtt-ca", str(broker.ca_file),
            "--mqtt-user", DEVICE_USER,
        ]  # fmt: skip
    with EventCollector(server, "nurse2") as collector:
        before = len(collector.messages)
        result = run_simulator(
            server, patient_id, truth_path, extra, seed=3 if transport == "mqtt" else 5
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 failed" in result.stdout
        time.sleep(2.0)  # the last packets' events
        messages = collector.messages[before:]
    truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
    assert truth and all(e["kind"] in ("tachycardia", "normal") or e["start_s"] for e in truth)
    devices = {e["device_id"] for e in truth}
    alerts = [
        m
        for m in messages
        if m.get("type") == "alert" and m["phase"] == "raised" and m["device_id"] in devices
    ]
    with server.client() as client:  # nothing was refused on the way
        login(client, "nurse1")
        counters = client.get("/api/v1/monitor/gateway").json()
    assert counters["packets"]["accepted"] >= 2 * round(DURATION_S * 250 / 25)
    refused = {k: v for k, v in counters["packets"].items() if k != "accepted" and v}
    assert refused == {}
    if transport == "mqtt":
        assert counters["mqtt"]["messages"] == 2 * round(DURATION_S * 250 / 25)
    check_alerts_against_ground_truth(alerts, truth)
    readings = [m for m in messages if m.get("type") == "heart_rate" and m["device_id"] in devices]
    assert {m["device_id"] for m in readings} == devices
    assert raised_alerts(collector, "bradycardia") == []
    assert raised_alerts(collector, "irregular") == []


def analysis_children(pid: int) -> list[str]:
    """Command lines of the server's child processes that run the device analysis."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "multiprocessing" in cmdline and "pipe_handle" in cmdline:
                found.append(cmdline)
    return found


def gateway_counts(server: RunningServer) -> dict[str, int]:
    with server.client() as client:
        login(client, "nurse1")
        counts: dict[str, int] = client.get("/api/v1/monitor/gateway").json()["packets"]
        return counts


def wait_for_count(server: RunningServer, verdict: str, at_least: int) -> None:
    deadline = time.monotonic() + 10
    while (counts := gateway_counts(server))[verdict] < at_least:
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)


def test_unpairing_through_the_api_stops_the_device_at_once(server: RunningServer) -> None:
    """The analysis runs in a process of its own, with its own cache of device keys; unpairing
    in the server must reach it at once, not when that cache expires (30 s)."""
    assert len(analysis_children(server.process.pid)) == 1
    patient_id = new_patient(server)
    device = DevicePairing(uuid.uuid4(), X25519PrivateKey.generate())
    with server.client() as client:
        csrf = login(client, "nurse1")
        paired = client.post(
            "/api/v1/monitor/devices",
            json={
                "patient_id": patient_id,
                "device_public": base64.b64encode(device.public_bytes()).decode(),
                "label": "chest strap 7",
                "device_id": str(device.device_id),
            },
            headers={"X-CSRF-Token": csrf},
        )
        assert paired.status_code == 201, paired.text
        key: DeviceKey = device.derive(base64.b64decode(paired.json()["gateway_public"]))
        samples = np.zeros(25, dtype=np.int16)
        t0 = int(time.time() * 1000)

        def packet(sequence: int) -> bytes:
            timestamp = t0 + sequence * 100
            return encode_packet(key, key.device_id, sequence, timestamp, 250, samples)

        before = gateway_counts(server)
        url = server.url.replace("https://", "wss://") + "/api/v1/monitor/devices"
        with connect(url, ssl=server.ssl_context()) as socket:
            for sequence in range(1, 6):
                socket.send(packet(sequence))
            wait_for_count(server, "accepted", before["accepted"] + 5)
            gone = client.delete(
                f"/api/v1/monitor/devices/{key.device_id}", headers={"X-CSRF-Token": csrf}
            )
            assert gone.status_code == 204, gone.text
            for sequence in range(6, 11):
                socket.send(packet(sequence))
            wait_for_count(server, "unknown_device", before["unknown_device"] + 5)
    after = gateway_counts(server)
    assert after["accepted"] == before["accepted"] + 5
    assert after["unknown_device"] == before["unknown_device"] + 5
