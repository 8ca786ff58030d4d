"""A whole visit in a real browser (headless Chromium), each step by the role that does it:
registration → consultation with vital signs and an ICD-10 diagnosis → lab order → lab result →
prescription → sign-off → dispensing → the medical record timeline shows all of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, expect, sync_playwright

from rekam.his.installation import open_clinic
from rekam.his.pharmacy import MedicineInput, PharmacyService
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.rbac import Actor, Role
from support.attacks import spki_sha256_base64, tool_available
from support.servers import PASSWORD, RunningServer, make_installation, running_server

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
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    inst = make_installation(tmp_path_factory.mktemp("visit"))
    for user, role in (
        ("daftar", Role.REGISTRATION),
        ("dokter", Role.DOCTOR),
        ("analis", Role.LAB),
        ("apoteker", Role.PHARMACIST),
    ):
        inst.add_user(user, role)
    clinic = open_clinic(inst.settings)
    try:
        doctor = next(
            u for u in clinic.accounts.list_users(Actor.system()) if u.username == "dokter"
        )
        PractitionerService.for_clinic(clinic).create(
            Actor.system(),
            PractitionerInput(name="dr. Hana Pertiwi", profession="doctor", user_id=doctor.id),
        )
        PharmacyService.for_clinic(clinic).create_medicine(
            Actor.system(),
            MedicineInput(name="Amlodipin", form="tablet", strength="5 mg"),
            stock=100,
        )
    finally:
        clinic.close()
    with running_server(inst) as running:
        yield running


@contextmanager
def browser_as(
    playwright: Playwright, server: RunningServer, username: str, profile: Path
) -> Iterator[Page]:
    pin = spki_sha256_base64((server.installation.data_dir / "pki" / "server.pem").read_bytes())
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        locale="id-ID",
        args=[*ARGS, f"--ignore-certificate-errors-spki-list={pin}"],
    )
    context.set_default_timeout(15_000)
    page = context.pages[0] if context.pages else context.new_page()
    try:
        page.goto(f"{server.url}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        expect(page.locator("#welcome")).to_be_visible()
        yield page
    finally:
        context.close()


def test_a_whole_visit(server: RunningServer, tmp_path: Path) -> None:
    url = server.url
    with sync_playwright() as playwright:
        with browser_as(playwright, server, "daftar", tmp_path / "reg") as page:
            page.goto(f"{url}/patients/new")
            page.fill("#name", "Wayan Sudarsana")
            page.fill("#birth_date", "1968-02-14")
            page.select_option("#sex", "M")
            page.fill("#nik", "5171011402680003")
            page.fill("#address", "Jl. Teuku Umar 5, Denpasar")
            page.fill("#allergies", "udang")
            page.click("#patient-save")
            expect(page.locator(".message.ok")).to_contain_text("Pasien terdaftar")
            patient_id = page.url.split("/patients/")[1].split("?")[0]

        with browser_as(playwright, server, "dokter", tmp_path / "doc") as page:
            page.goto(f"{url}/patients/{patient_id}")
            page.click("#new-consultation")
            page.fill("#complaint", "pusing dan tengkuk berat sejak 3 hari")
            page.fill("#examination", "kesadaran baik, jantung dan paru normal")
            page.fill("#systolic", "168")
            page.fill("#diastolic", "98")
            page.fill("#heart_rate", "88")
            page.fill("#temperature", "36.7")
            page.fill("#diag_code_1", "I10")
            page.fill("#diag_text_1", "hipertensi esensial")
            page.fill("#plan", "amlodipin 5 mg, kontrol 2 minggu")
            page.click("#consultation-save")
            expect(page.locator("#status")).to_be_visible()
            consultation_url = page.url.split("?")[0]

            page.click("#order-lab")
            page.locator("input[name=tests]").first.check()
            page.click("#lab-order-save")
            page.goto(consultation_url)
            page.click("#prescribe")
            page.select_option("#medicine", index=0)  # the formulary has one medicine
            page.fill("#dose", "5 mg")
            page.fill("#frequency", "1x sehari")
            page.fill("#duration", "14 hari")
            page.fill("#quantity", "14")
            page.locator("#prescription-form button[type=submit]").click()
            page.goto(consultation_url)
            page.click("#consultation-sign")
            expect(page.locator("#status")).to_contain_text("itandatangan")  # ditandatangani

        with browser_as(playwright, server, "analis", tmp_path / "lab") as page:
            page.goto(f"{url}/lab")
            order = page.locator("article", has_text="Wayan Sudarsana").first
            order.locator("input[name=value]").fill("13.5")
            order.locator("button[type=submit]").first.click()
            expect(page.locator("article", has_text="Wayan Sudarsana")).to_have_count(0)

        with browser_as(playwright, server, "apoteker", tmp_path / "apt") as page:
            page.goto(f"{url}/pharmacy")
            row = page.locator("tr", has_text="Wayan Sudarsana").first
            row.locator("button[type=submit]").click()
            expect(page.locator("tr", has_text="Wayan Sudarsana").locator("button")).to_have_count(
                0
            )

        with browser_as(playwright, server, "dokter", tmp_path / "doc2") as page:
            page.goto(f"{url}/patients/{patient_id}/record")
            timeline = page.locator("#timeline")
            for text in (
                "I10",
                "hipertensi esensial",
                "168",
                "13.5",
                "Amlodipin",
                "diserahkan",
                "ditandatangani",
                "udang",
            ):
                expect(page.locator("main")).to_contain_text(text)
            expect(timeline.locator("li.event")).to_have_count(3)  # consultation, lab, prescription
            page.screenshot(path=str(tmp_path / "record.png"), full_page=True)

    # the JSON twin of the record says the same
    from support.servers import login

    with server.client() as http:
        login(http, "dokter")
        record = http.get(f"/api/v1/patients/{patient_id}/record").json()
    kinds = sorted(event["kind"] for event in record["events"])
    assert kinds == ["consultation", "lab", "prescription"]
    consultation = next(e["consultation"] for e in record["events"] if e["kind"] == "consultation")
    assert consultation["diagnoses"][0]["code"] == "I10"
    assert consultation["vital_signs"]["systolic"] == 168
