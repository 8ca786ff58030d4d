"""ECG studies in a real browser (headless Chromium) against a real server: a doctor opens the
worklist, then a tampered and a valid study; the verdict is visible above the 12-lead chart, the
chart has 13 traces on the grid, and the strict CSP holds (no violations)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect, sync_playwright

from rekam.his.installation import open_clinic
from rekam.his.pacs_archive import PacsArchiveService
from rekam.his.rbac import Actor, Role
from rekam.pki import KeyAlgorithm
from support.attacks import private_server, spki_sha256_base64, tool_available
from support.pacs_objects import ecg_object
from support.servers import PASSWORD, RunningServer

CHROMIUM = "/usr/bin/chromium"

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
SENDER = Actor(user_id=None, username="gp.puskesmas", role=Role.DOCTOR)


@dataclass
class Archive:
    server: RunningServer
    valid_study: str
    tampered_study: str


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    with private_server(tmp_path_factory.mktemp("ecg-browser"), {"doctor1": Role.DOCTOR}) as server:
        clinic = open_clinic(server.installation.settings)
        try:
            doctor = clinic.pki.issue_doctor(
                "Dr Rina Kardio", "LIC-9301", None, KeyAlgorithm.RSA3072
            )
            service = PacsArchiveService.for_clinic(clinic)
            valid = service.store(SENDER, ecg_object(41, doctor))
            signed = ecg_object(42, doctor)
            waveform = bytes(pydicom.dcmread(io.BytesIO(signed)).WaveformSequence[0].WaveformData)
            at = signed.index(waveform[3000:3032]) + 4
            tampered = service.store(
                SENDER, signed[:at] + bytes([signed[at] ^ 0x01]) + signed[at + 1 :]
            )
            yield Archive(server, valid.study_instance_uid, tampered.study_instance_uid)
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
    page.fill("#username", "doctor1")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{server.url}/")


def test_doctor_opens_studies_and_sees_the_verdict_above_the_chart(
    archive: Archive, tmp_path: Path
) -> None:
    server = archive.server
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
            page.click("nav >> text=Studi EKG")
            expect(page.locator("h1")).to_have_text("Studi EKG")
            tampered_row = page.locator(f'tr[data-study="{archive.tampered_study}"]')
            expect(tampered_row.locator(".badge")).to_have_text("tanda tangan tidak sah")
            expect(page.locator(f'tr[data-study="{archive.valid_study}"] .badge')).to_have_text(
                "tanda tangan sah"
            )
            tampered_row.locator("a").click()
            page.wait_for_url(f"**/ecg-studies/{archive.tampered_study}")
            verdict = page.locator("#verdict")
            expect(verdict).to_be_visible()
            expect(verdict.locator("h2")).to_have_text(
                "tanda tangan tidak sah: data diubah setelah ditandatangani"
            )
            expect(verdict.locator(".signer")).to_contain_text("Dr Rina Kardio")
            chart = page.locator("#chart svg.ecg-chart")
            expect(chart).to_be_visible()
            expect(chart.locator("polyline.trace")).to_have_count(13)
            verdict_box, chart_box = verdict.bounding_box(), chart.bounding_box()
            assert verdict_box is not None and chart_box is not None
            assert verdict_box["y"] + verdict_box["height"] <= chart_box["y"]  # verdict first
            # the verdict is on screen when the page opens, without scrolling
            assert verdict_box["y"] < 900
            # the browser laid the chart out in proportion: 260 mm wide, 150 mm high
            assert chart_box["width"] / chart_box["height"] == pytest.approx(260 / 150, rel=0.01)
            # the override form is offered to a doctor, with its reason field
            expect(page.locator("#override_reason")).to_be_visible()

            page.goto(f"{server.url}/ecg-studies/{archive.valid_study}")
            expect(page.locator("#verdict h2")).to_have_text(
                "Tanda tangan sah: data tidak berubah sejak ditandatangani"
            )
            expect(page.locator("#chart svg polyline.trace")).to_have_count(13)
            expect(page.locator("#override_reason")).to_have_count(0)
            assert csp_violations == []
        finally:
            context.close()
