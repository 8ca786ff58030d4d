"""The dashboard live, end to end in headless Chromium: a simulated wearable streams sealed
packets to the server's device WebSocket; the page's EventSource receives the events; the tile's
heart rate updates, the ECG strip scrolls, and a tachycardia alert appears — and none during the
normal stretch before it. Runs once the server has the live event stream."""

from __future__ import annotations

import importlib.util
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import expect, sync_playwright
from websockets.sync.client import ClientConnection, connect

from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Actor, Role
from rekam.monitor.packets import encode_packet
from rekam.monitor.pairing import DeviceKey, DevicePairing
from support.attacks import private_server, spki_sha256_base64, tool_available
from support.live_monitor import device_socket_url
from support.people import make_patient
from support.servers import PASSWORD, RunningServer

CHROMIUM = "/usr/bin/chromium"
RATE = 250
PER_PACKET = 25
NORMAL_S, TACHY_S = 8.0, 14.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not tool_available(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("rekam.web.monitor_stream") is None,
        reason="this build has no live event stream (rekam.web.monitor_stream)",
    ),
]

NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)


def synthetic_ecg(schedule: list[tuple[float, float]], seed: int = 7) -> npt.NDArray[np.int16]:
    """Microvolts at RATE Hz: for each (seconds, bpm) a stretch of beats at that rate, each beat
    a narrow R wave (1.2 mV), small Q and S and a T wave, with 10 µV of noise."""
    total = sum(seconds for seconds, _ in schedule)
    t = np.arange(int(total * RATE)) / RATE
    signal = np.random.default_rng(seed).normal(0.0, 10.0, t.size)
    beat, stretch_end = 0.4, 0.0
    for seconds, bpm in schedule:
        stretch_end += seconds
        while beat < stretch_end - 0.3:
            for offset, amplitude, width in (
                (-0.03, -120.0, 0.008),
                (0.0, 1200.0, 0.012),
                (0.03, -200.0, 0.008),
                (0.25, 250.0, 0.04),
            ):
                signal += amplitude * np.exp(-0.5 * ((t - beat - offset) / width) ** 2)
            beat += 60.0 / bpm
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def open_device_socket(server: RunningServer) -> ClientConnection:
    """The device WebSocket, opened before the test's clock starts."""
    return connect(device_socket_url(server), ssl=server.ssl_context())


def stream(socket: ClientConnection, key: DeviceKey, samples: npt.NDArray[np.int16]) -> None:
    """Send the samples in real time, one sealed packet per 100 ms, over the device WebSocket."""
    start_ms = int(time.time() * 1000)
    started = time.monotonic()
    with socket:
        for sequence, first in enumerate(range(0, samples.size, PER_PACKET), start=1):
            due = started + first / RATE
            time.sleep(max(0.0, due - time.monotonic()))
            chunk = samples[first : first + PER_PACKET]
            timestamp = start_ms + first * 1000 // RATE
            socket.send(encode_packet(key, key.device_id, sequence, timestamp, RATE, chunk))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with private_server(tmp_path_factory.mktemp("monitor-live"), {"nurse1": Role.NURSE}) as running:
        yield running


def test_live_tile_strip_and_tachycardia_alert(server: RunningServer, tmp_path: Path) -> None:
    clinic = open_clinic(server.installation.settings)
    try:
        name = f"Larasati {uuid.uuid4().hex[:4]}"
        patient = clinic.patients.register(NURSE, make_patient(name, "F"))
        service = MonitoringService.for_clinic(clinic)
        private = X25519PrivateKey.generate()
        paired = service.pair_device(
            NURSE, patient.id, private.public_key().public_bytes_raw(), "Sabuk dada"
        )
        # a short minimum duration keeps the test short; the limits are the patient's own
        service.set_thresholds(NURSE, patient.id, service.thresholds_from(50, 100, 5, 3))
        key = DevicePairing(paired.device_id, private).derive(paired.gateway_public)
    finally:
        clinic.close()
    samples = synthetic_ecg([(NORMAL_S, 72.0), (TACHY_S, 150.0)])

    pin = spki_sha256_base64((server.installation.data_dir / "pki" / "server.pem").read_bytes())
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--ignore-certificate-errors-spki-list={pin}",
            ],
            locale="id-ID",
            timeout=30_000,
        )
        context.set_default_timeout(15_000)
        page = context.pages[0] if context.pages else context.new_page()
        sender: threading.Thread | None = None
        try:
            page.goto(f"{server.url}/login")
            page.fill("#username", "nurse1")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url(f"{server.url}/")
            page.goto(f"{server.url}/monitor")
            tile = page.locator(f"#tile-{patient.id}")
            expect(tile).to_be_visible()
            tile.locator("button.show-strip").click()  # samples of this device, too
            expect(page.locator("#live-status")).to_have_attribute("data-state", "live")

            socket = open_device_socket(server)
            sender = threading.Thread(target=stream, args=(socket, key, samples), daemon=True)
            sender.start()
            started = time.monotonic()
            expect(tile.locator('[data-field="bpm"]')).to_have_text(
                re.compile(r"^(6[5-9]|7\d|80)$"), timeout=NORMAL_S * 1000
            )
            expect(page.locator("#ecg-strip")).to_have_attribute(
                "data-samples-drawn", re.compile(r"^[1-9]\d*$")
            )
            rows = page.locator("#alert-list tbody tr")
            assert rows.count() == 0  # nothing during the normal stretch
            assert time.monotonic() - started < NORMAL_S

            alert = page.locator("#alert-list tbody tr", has_text="Takikardia")
            expect(alert).to_be_visible(timeout=(TACHY_S + 5) * 1000)
            expect(tile).to_have_class("monitor-tile alerting")
            expect(tile.locator('[data-field="bpm"]')).to_have_text(re.compile(r"^1[2-6]\d$"))
            expect(tile.locator('[data-field="last-alert"]')).to_contain_text("Takikardia")
            assert rows.count() == 1  # one episode, one row (updates merge into it)
        finally:
            if sender is not None:
                sender.join(timeout=TACHY_S + NORMAL_S + 10)
            context.close()
