"""The live endpoints on a real ``rekam serve`` (TLS, the hardened server, every security
middleware): sealed packets over the device WebSocket become Server-Sent Events for logged-in
clinicians; the WebSocket outlives the server's header deadline; bad device input is refused
without harm; the event stream refuses those who may not watch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from rekam.his.rbac import Role
from rekam.monitor.packets import encode_packet
from rekam.web.server import HEADER_TIMEOUT_SECONDS
from support.attacks import private_server
from support.live_monitor import (
    EventCollector,
    device_socket_url,
    pair_new_patient,
    raised_alerts,
)
from support.sealed_stream import RATE, SealedStream, paired_key, schedule_samples
from support.servers import RunningServer, login

FAST = {"REKAM_MONITOR_SPEED_LIMIT": "20", "REKAM_MONITOR_BURST_SECONDS": "30"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    users = {"nurse1": Role.NURSE, "nurse2": Role.NURSE, "registration1": Role.REGISTRATION}
    with private_server(tmp_path_factory.mktemp("monitor-stream"), users, FAST) as running:
        yield running


def test_device_websocket_to_event_stream_with_alert_and_samples_on_request(
    server: RunningServer,
) -> None:
    key, patient_id = pair_new_patient(server.installation)
    stream = SealedStream(key, schedule_samples([(8.0, 72.0), (12.0, 150.0)]))
    packets = stream.packets()
    with (
        EventCollector(server, "nurse1", f"?devices={key.device_id}") as watching_strip,
        EventCollector(server, "nurse2") as watching_tiles,
        connect(device_socket_url(server), ssl=server.ssl_context()) as socket,
    ):
        opened = time.monotonic()
        half = len(packets) // 2
        for packet in packets[:half]:
            socket.send(packet)
        # keep the device connection idle past the server's header deadline: it must stay open
        time.sleep(max(0.0, HEADER_TIMEOUT_SECONDS + 1.0 - (time.monotonic() - opened)))
        for index, packet in enumerate(packets[half:]):
            socket.send(packet)
            if index % 20 == 0:
                time.sleep(0.1)  # 4× real time on average: inside the server's flood limit
        assert watching_strip.wait_for(lambda c: len(raised_alerts(c)) >= 1, 20)
        assert watching_tiles.wait_for(lambda c: len(raised_alerts(c)) >= 1, 10)
        assert watching_strip.wait_for(
            lambda c: (
                sum(len(m["samples_uv"]) for m in c.of_type("samples")) == stream.samples.size
            ),
            10,
        )

    assert watching_strip.status == 200
    assert watching_strip.headers["content-type"].startswith("text/event-stream")
    assert watching_strip.headers["cache-control"] == "no-store"
    assert "content-security-policy" in watching_strip.headers
    for collector in (watching_strip, watching_tiles):
        alerts = raised_alerts(collector)
        assert [a["kind"] for a in alerts] == ["tachycardia"]
        assert alerts[0]["device_id"] == str(key.device_id)
        started_s = (alerts[0]["started_ms"] - stream.t0_ms) / 1000
        assert 7.0 <= started_s <= 10.5, started_s
        assert len(alerts[0]["strip"]["samples_uv"]) > RATE  # the ECG that triggered it
        rates = [m["bpm"] for m in collector.of_type("heart_rate") if m["bpm"] is not None]
        assert any(65 <= r <= 80 for r in rates) and any(140 <= r <= 160 for r in rates)
    # the strip viewer got every sample, unchanged; the other stream got none
    received = [v for m in watching_strip.of_type("samples") for v in m["samples_uv"]]
    assert received == stream.samples.tolist()
    assert watching_tiles.of_type("samples") == []

    # the alert is stored with the patient's record
    with server.client() as client:
        login(client, "nurse1")
        stored = client.get("/api/v1/monitor/alerts", params={"patient_id": patient_id})
        assert stored.status_code == 200
        assert [a["kind"] for a in stored.json()] == ["tachycardia"]


def test_bad_device_input_is_refused_and_the_connection_and_server_survive(
    server: RunningServer,
) -> None:
    key, _patient = pair_new_patient(server.installation)
    stranger = paired_key()
    stream = SealedStream(key, schedule_samples([(6.0, 150.0)]))
    wrong = paired_key(key.device_id)  # same device id, another key: forged
    with (
        EventCollector(server, "nurse1", f"?devices={key.device_id}") as collector,
        connect(device_socket_url(server), ssl=server.ssl_context()) as socket,
    ):
        socket.send("not a packet")  # text frame
        socket.send(b"\x00" * 10)
        socket.send(b"RKD1" + bytes(200))
        socket.send(SealedStream(stranger, stream.samples).packet(0))  # unknown device
        socket.send(encode_packet(wrong, key.device_id, 1, stream.t0_ms, RATE, stream.samples[:25]))
        socket.send(stream.packet(0))  # genuine: accepted despite the forgery before it
        socket.send(stream.packet(0))  # replayed
        socket.send(stream.packet(1))
        assert collector.wait_for(lambda c: len(c.of_type("samples")) == 2, 10)
        time.sleep(0.5)
        samples = collector.of_type("samples")
        assert [len(m["samples_uv"]) for m in samples] == [25, 25]
        assert samples[0]["samples_uv"] == stream.samples[:25].tolist()
        assert all(m["device_id"] == str(key.device_id) for m in collector.messages)
        assert raised_alerts(collector) == []
        # a frame larger than any packet: the server closes this connection (1009)
        with pytest.raises(ConnectionClosed) as closed:
            socket.send(bytes(5000))
            socket.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with server.client() as client:
        assert client.get("/healthz").status_code == 200


def test_the_event_stream_refuses_those_who_may_not_watch(server: RunningServer) -> None:
    with server.client() as client:
        anonymous = client.get("/api/v1/monitor/events")
        assert anonymous.status_code == 401
        login(client, "registration1")
        assert client.get("/api/v1/monitor/events").status_code == 403
    with server.client(timeout=httpx.Timeout(5.0)) as client:
        login(client, "nurse1")
        bad = client.get("/api/v1/monitor/events", params={"devices": "not-a-device"})
        assert bad.status_code == 400
        assert "UUID" in bad.json()["error"]["message"]


def test_a_stream_only_carries_devices_of_patients_in_the_viewers_care(
    server: RunningServer,
) -> None:
    from rekam.his.installation import open_clinic
    from rekam.his.monitoring import MonitoringService
    from rekam.store.models import Patient

    key, patient_id = pair_new_patient(server.installation)
    # the patient was registered long ago and no consultation is open: nobody's care today
    clinic = open_clinic(server.installation.settings)
    try:
        with clinic.database.transaction(write=True) as session:
            row = session.get(Patient, patient_id)
            assert row is not None
            row.created_at = row.created_at.replace(year=row.created_at.year - 1)
        MonitoringService.for_clinic(clinic).close()
    finally:
        clinic.close()
    stream = SealedStream(key, schedule_samples([(3.0, 70.0)]))
    with (
        EventCollector(server, "nurse2", f"?devices={key.device_id}") as collector,
        connect(device_socket_url(server), ssl=server.ssl_context()) as socket,
    ):
        for packet in stream.packets():
            socket.send(packet)
        time.sleep(1.5)
        assert collector.messages == []


def test_an_acknowledgement_reaches_every_open_dashboard(server: RunningServer) -> None:
    key, _patient_id = pair_new_patient(server.installation)
    stream = SealedStream(key, schedule_samples([(8.0, 72.0), (12.0, 150.0)]))
    with (
        EventCollector(server, "nurse2") as other_dashboard,
        connect(device_socket_url(server), ssl=server.ssl_context()) as socket,
    ):
        for index, packet in enumerate(stream.packets()):
            socket.send(packet)
            if index % 20 == 0:
                time.sleep(0.1)
        assert other_dashboard.wait_for(lambda c: len(raised_alerts(c)) >= 1, 20)
        episode = raised_alerts(other_dashboard)[0]["episode_id"]
        assert other_dashboard.of_type("alert_acknowledged") == []
        with server.client() as client:
            csrf = login(client, "nurse1")
            url = f"/api/v1/monitor/alerts/{episode}/acknowledge"
            assert client.post(url).status_code == 403  # no CSRF token: nothing happens
            time.sleep(0.5)
            assert other_dashboard.of_type("alert_acknowledged") == []
            done = client.post(url, headers={"X-CSRF-Token": csrf})
            assert done.status_code == 200, done.text
        assert other_dashboard.wait_for(lambda c: bool(c.of_type("alert_acknowledged")), 10)
    [message] = other_dashboard.of_type("alert_acknowledged")
    assert message["episode_id"] == episode and message["device_id"] == str(key.device_id)
    assert message["acknowledged_by"] == "nurse1"
    stored_at = datetime.fromisoformat(done.json()["acknowledged_at"].replace("Z", "+00:00"))
    assert abs(message["acknowledged_ms"] - stored_at.timestamp() * 1000) < 1
