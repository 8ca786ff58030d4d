"""A real browser (headless Chromium) against a real server: the certificate is accepted only
because its key is pinned, the login form works, the language switch works, logout works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Error, Page, Playwright, expect, sync_playwright

from rekam.his.rbac import Role
from support.attacks import private_server, spki_sha256_base64, tool_available
from support.servers import PASSWORD, RunningServer

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not tool_available(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]

BASE_ARGS = [
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
    with private_server(tmp_path_factory.mktemp("browser"), {"doctor1": Role.DOCTOR}) as running:
        yield running


def _pin(server: RunningServer) -> str:
    chain = (server.installation.data_dir / "pki" / "server.pem").read_bytes()
    return spki_sha256_base64(chain)


def _launch(playwright: Playwright, profile: Path, args: list[str]) -> BrowserContext:
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=args,
        ignore_https_errors=False,
        locale="id-ID",
        timeout=30_000,
    )


def _page(context: BrowserContext) -> Page:
    return context.pages[0] if context.pages else context.new_page()


def test_unpinned_certificate_is_refused_by_chromium(server: RunningServer, tmp_path: Path) -> None:
    """Control: without the pin Chromium does not trust Rekam's private CA."""
    with sync_playwright() as playwright:
        context = _launch(playwright, tmp_path / "profile", BASE_ARGS)
        try:
            page = _page(context)
            with pytest.raises(Error) as refused:
                page.goto(f"{server.url}/login", timeout=15_000)
            assert "ERR_CERT" in str(refused.value), str(refused.value)
        finally:
            context.close()


def test_login_language_logout_in_chromium(server: RunningServer, tmp_path: Path) -> None:
    args = [*BASE_ARGS, f"--ignore-certificate-errors-spki-list={_pin(server)}"]
    with sync_playwright() as playwright:
        context = _launch(playwright, tmp_path / "profile", args)
        context.set_default_timeout(15_000)
        page = _page(context)
        try:
            response = page.goto(f"{server.url}/login")
            assert response is not None and response.status == 200
            expect(page.locator("h1")).to_have_text("Masuk")  # Indonesian by default

            page.fill("#username", "doctor1")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url(f"{server.url}/")
            expect(page.locator("#welcome")).to_have_text("Selamat datang, Doctor1")
            expect(page.locator("#logout")).to_have_text("Keluar")
            expect(page.locator("#tls")).to_contain_text("TLSv1.3")
            cookies = {c["name"]: c for c in context.cookies()}
            session = cookies["__Host-rekam-session"]
            assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
            # the page's scripts cannot read the session cookie
            assert "__Host-rekam-session" not in page.evaluate("document.cookie")

            page.select_option("#language", "en")
            page.click("#language-switch")
            expect(page.locator("#logout")).to_have_text("Log out")
            expect(page.locator("#welcome")).to_have_text("Welcome, Doctor1")
            assert page.locator("html").get_attribute("lang") == "en"

            page.select_option("#language", "id")
            page.click("#language-switch")
            expect(page.locator("#logout")).to_have_text("Keluar")
            page.screenshot(path=str(tmp_path / "dashboard.png"))

            page.click("#logout")
            page.wait_for_url(f"{server.url}/login?bye=1")
            expect(page.locator("#login-submit")).to_be_visible()
            expect(page.locator("#logout")).to_have_count(0)
            remaining = {c["name"] for c in context.cookies()}
            assert "__Host-rekam-session" not in remaining

            # the dashboard is gone for this browser: straight back to the login form
            page.goto(f"{server.url}/")
            assert page.url == f"{server.url}/login"
            expect(page.locator("#login-submit")).to_be_visible()
        finally:
            page.screenshot(path=str(tmp_path / "last.png"))
            context.close()
