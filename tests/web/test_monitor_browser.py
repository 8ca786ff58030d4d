"""The heart-monitoring dashboard in a real browser (headless Chromium) against a real server:
a nurse sees the tiles and the alert list from stored data, the ECG of an alert is drawn on the
standard grid (25 mm/s, 10 mm/mV — checked on the canvas pixels), acknowledging works through
the page's script with its CSRF token, and the strict CSP holds (no violations)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Actor, Role
from rekam.monitor.events import (
    AlertEvent,
    AlertKind,
    AlertPhase,
    EcgStrip,
    HeartRateReading,
    SignalQualityLevel,
)
from rekam.monitor.pairing import DeviceKey, DevicePairing
from support.attacks import private_server, spki_sha256_base64, tool_available
from support.people import make_patient
from support.servers import PASSWORD, RunningServer

CHROMIUM = "/usr/bin/chromium"
PX_PER_MM = 96 / 25.4  # CSS: 96 px = 1 in = 25.4 mm

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not tool_available(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--force-device-scale-factor=1",
]

NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)


def calibration_strip(start_ms: int) -> EcgStrip:
    """6 s at 250 Hz: flat, a +1 mV plateau from 1.0 s to 1.4 s, a -0.5 mV dip from 3.0 s to
    3.1 s. On the standard grid: the plateau is 10 mm high from 25 to 35 mm; the dip 5 mm deep."""
    samples = [0] * 1500
    for i in range(250, 350):
        samples[i] = 1000
    for i in range(750, 775):
        samples[i] = -500
    return EcgStrip(250, start_ms, tuple(samples))


@dataclass
class Ward:
    server: RunningServer
    patient_id: str
    patient_name: str
    device_id: UUID
    device_key: DeviceKey
    episode_id: UUID


@pytest.fixture(scope="module")
def ward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ward]:
    with private_server(
        tmp_path_factory.mktemp("monitor-browser"), {"nurse1": Role.NURSE}
    ) as server:
        clinic = open_clinic(server.installation.settings)
        try:
            name = f"Kartini {uuid.uuid4().hex[:4]}"
            patient = clinic.patients.register(NURSE, make_patient(name, "F"))
            service = MonitoringService.for_clinic(clinic)
            private = X25519PrivateKey.generate()
            paired = service.pair_device(
                NURSE, patient.id, private.public_key().public_bytes_raw(), "Sabuk dada"
            )
            device_key = DevicePairing(paired.device_id, private).derive(paired.gateway_public)
            sink = service.event_sink()
            now = datetime.now(UTC)
            start = now.replace(second=0, microsecond=0) - timedelta(minutes=3)
            for minute, bpm in enumerate((86.0, 90.0)):
                for beat in range(4):
                    at = start + timedelta(minutes=minute, seconds=beat * 5)
                    sink.publish(
                        HeartRateReading(
                            paired.device_id,
                            int(at.timestamp() * 1000),
                            bpm,
                            "normal",
                            SignalQualityLevel.GOOD,
                            False,
                        )
                    )
            episode = uuid.uuid4()
            t0 = int((now - timedelta(seconds=30)).timestamp() * 1000)
            sink.publish(
                AlertEvent(
                    episode,
                    paired.device_id,
                    AlertKind.TACHYCARDIA,
                    AlertPhase.RAISED,
                    137.0,
                    t0,
                    t0 + 10_000,
                    None,
                    calibration_strip(t0 + 4000),
                )
            )
            assert sink.flush()
            service.close()
            yield Ward(server, patient.id, name, paired.device_id, device_key, episode)
        finally:
            clinic.close()


def _launch(playwright: Playwright, profile: Path, server: RunningServer) -> BrowserContext:
    pin = spki_sha256_base64((server.installation.data_dir / "pki" / "server.pem").read_bytes())
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=[*ARGS, f"--ignore-certificate-errors-spki-list={pin}"],
        locale="id-ID",
        viewport={"width": 1280, "height": 900},
        timeout=30_000,
    )
    context.set_default_timeout(15_000)
    return context


def _login(page: Page, server: RunningServer) -> None:
    page.goto(f"{server.url}/login")
    page.fill("#username", "nurse1")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{server.url}/")


CANVAS_PIXELS = """(canvas) => {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const data = ctx.getImageData(0, 0, width, height).data;
  const px = (x, y) => {
    const i = (y * width + x) * 4;
    return [data[i], data[i + 1], data[i + 2]];
  };
  const dark = (x, y) => px(x, y).every((v) => v < 90);
  let top = height, bottom = -1;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (dark(x, y)) { top = Math.min(top, y); bottom = Math.max(bottom, y); }
    }
  }
  const topRow = [];
  for (let x = 0; x < width; x += 1) {
    for (let y = top; y <= top + 2; y += 1) { if (dark(x, y)) { topRow.push(x); break; } }
  }
  // grid, 1 mm = mm px: a large-square line (5 mm) is pink, mid-square (2.5 mm) near white
  const mm = parseFloat(canvas.dataset.pxPerMm) * window.devicePixelRatio;
  // the row inside the 2..3 mm band (counted from the bottom) that is furthest from a line
  let y = Math.round(height - 2.5 * mm), best = -1;
  for (let r = Math.ceil(height - 3 * mm); r <= Math.floor(height - 2 * mm); r += 1) {
    const sum = px(Math.round(2.5 * mm), r).reduce((a, b) => a + b, 0);
    if (sum > best) { best = sum; y = r; }
  }
  return {
    width, height, top, bottom, ratio: window.devicePixelRatio,
    plateauStart: Math.min(...topRow), plateauEnd: Math.max(...topRow),
    cssHeight: parseFloat(canvas.style.height),
    pxPerMm: parseFloat(canvas.dataset.pxPerMm),
    gridLine: px(Math.round(5 * mm), y), gridGap: px(Math.round(2.5 * mm), y),
  };
}"""


def test_nurse_sees_tiles_alerts_ecg_grid_and_acknowledges(ward: Ward, tmp_path: Path) -> None:
    server = ward.server
    with sync_playwright() as playwright:
        context = _launch(playwright, tmp_path / "profile", server)
        page = context.pages[0] if context.pages else context.new_page()
        csp_violations: list[str] = []
        page.on(
            "console",
            lambda m: (
                csp_violations.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )
        try:
            _login(page, server)
            page.goto(f"{server.url}/monitor")
            expect(page.locator("h1")).to_have_text("Pemantauan jantung")
            expect(page.locator("#monitor")).to_have_attribute("data-ready", "1")

            tile = page.locator(f"#tile-{ward.patient_id}")
            expect(tile).to_be_visible()
            expect(tile.locator("h3")).to_contain_text(ward.patient_name)
            expect(tile).to_have_class("monitor-tile alerting")
            expect(tile.locator('[data-field="bpm"]')).to_have_text("90")  # the last minute's mean
            expect(tile.locator('[data-field="last-alert"]')).to_contain_text("Takikardia")

            row = page.locator(f"#alert-{ward.episode_id}")
            expect(row).to_contain_text("137 bpm")
            expect(row.locator('[data-field="status"]')).to_have_text("Berlangsung")

            # the alert's ECG on the standard grid
            row.locator("button.show-alert-strip").click()
            canvas = page.locator("#alert-strip")
            expect(canvas).to_be_visible()
            expect(canvas).to_have_attribute("data-samples-drawn", "1500")
            drawn: dict[str, Any] = canvas.evaluate(CANVAS_PIXELS)
            ratio = drawn["ratio"]
            scale = PX_PER_MM * ratio  # canvas pixels per mm
            assert drawn["pxPerMm"] == pytest.approx(PX_PER_MM)
            assert drawn["cssHeight"] == round(40 * PX_PER_MM)  # 40 mm = ±2 mV
            baseline = round(drawn["height"] / 2)
            # +1 mV = 10 mm above the baseline; -0.5 mV = 5 mm below (line width allowed)
            assert abs((baseline - drawn["top"]) - 10 * scale) <= 3 * ratio, drawn
            assert abs((drawn["bottom"] - baseline) - 5 * scale) <= 3 * ratio, drawn
            # the plateau from 1.0 s to 1.4 s = 25 mm to 35 mm at 25 mm/s
            assert abs(drawn["plateauStart"] - 25 * scale) <= 3 * ratio, drawn
            assert abs(drawn["plateauEnd"] - 35 * scale) <= 3 * ratio, drawn
            # grid: a large-square line is pink, the space between lines is (near) white
            line, gap = drawn["gridLine"], drawn["gridGap"]
            assert line[0] > 200 and line[1] < 200, drawn
            assert min(gap) > 240, drawn
            # the live strip has the same paper
            live = page.locator("#ecg-strip")
            assert live.get_attribute("data-mm-per-s") == "25"
            assert live.get_attribute("data-mm-per-mv") == "10"

            # a second dashboard (another tab) is open on the same alert
            other = context.new_page()
            other.goto(f"{server.url}/monitor")
            expect(other.locator("#monitor")).to_have_attribute("data-ready", "1")
            other_row = other.locator(f"#alert-{ward.episode_id}")
            expect(other_row).to_have_class("unacknowledged")
            expect(other.locator("#live-status")).to_have_attribute("data-state", "live")

            # acknowledge through the script (no page load): the row says who
            with page.expect_response(
                lambda r: r.url.endswith(f"/api/v1/monitor/alerts/{ward.episode_id}/acknowledge")
            ) as answer:
                row.locator("button.ack").click()
            assert answer.value.status == 200
            expect(row.locator('[data-field="acknowledged"]')).to_contain_text("nurse1")
            expect(tile).to_have_class("monitor-tile")
            assert page.url == f"{server.url}/monitor"
            # the other dashboard learns it live, without a reload
            expect(other_row.locator('[data-field="acknowledged"]')).to_contain_text("nurse1")
            expect(other_row).not_to_have_class("unacknowledged")
            expect(other.locator(f"#tile-{ward.patient_id}")).to_have_class("monitor-tile")
            other.close()

            # after a reload the acknowledgement is stored
            page.reload()
            expect(
                page.locator(f"#alert-{ward.episode_id} [data-field='acknowledged']")
            ).to_contain_text("nurse1")
            assert csp_violations == []
        finally:
            context.close()
