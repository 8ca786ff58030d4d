"""Stopping ``rekam serve`` while clinicians watch and a device streams loses no heart-rate
trend: the readings the storing sink still holds (it writes every few seconds) are written when
the server shuts down, and open event streams do not keep it from shutting down."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

from websockets.sync.client import connect

from rekam.config import Settings
from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Role
from rekam.store.types import utc_now
from support.attacks import fresh_installation
from support.live_monitor import SETUP_NURSE, EventCollector, device_socket_url, pair_new_patient
from support.sealed_stream import SealedStream, schedule_samples
from support.servers import running_server

FAST = {"REKAM_MONITOR_SPEED_LIMIT": "20", "REKAM_MONITOR_BURST_SECONDS": "30"}


def _readings(collector: EventCollector) -> int:
    return sum(1 for m in collector.of_type("heart_rate") if m["bpm"] is not None)


def _stored_readings(settings: Settings, patient_id: str) -> int:
    clinic = open_clinic(settings)
    try:
        service = MonitoringService.for_clinic(clinic)
        trend = service.trend(SETUP_NURSE, patient_id, utc_now() - timedelta(hours=1))
        return sum(point.readings for point in trend.points)
    finally:
        clinic.close()


def test_readings_waiting_to_be_written_are_stored_at_shutdown(tmp_path: Path) -> None:
    installation = fresh_installation(tmp_path, {"nurse1": Role.NURSE})
    key, patient_id = pair_new_patient(installation)
    stream = SealedStream(key, schedule_samples([(20.0, 72.0)]))
    with (
        running_server(installation, FAST) as server,
        EventCollector(server, "nurse1") as collector,
        connect(device_socket_url(server), ssl=server.ssl_context()) as socket,
    ):
        for index, packet in enumerate(stream.packets()):
            socket.send(packet)
            if index % 20 == 0:
                time.sleep(0.05)
        # every reading has reached the clinician, so it has reached the storing sink too
        assert collector.wait_for(lambda c: _readings(c) >= 15, 20)
        time.sleep(0.3)
        seen = _readings(collector)
        stopping = time.monotonic()
        os.killpg(server.process.pid, signal.SIGTERM)  # as `systemctl stop` or Ctrl+C would
        server.process.wait(timeout=30)
        stopped_after = time.monotonic() - stopping
    # uvicorn ends by re-raising the signal it stopped for: killed by SIGTERM, after shutting down
    assert server.process.returncode in (0, -signal.SIGTERM), server.log()[-2000:]
    assert "Finished server process" in server.log()
    assert stopped_after < 10, stopped_after  # open streams did not hold the shutdown up
    assert _stored_readings(installation.settings, patient_id) == seen
