"""Password guessing against a real server: wrong passwords are first refused, then slowed, then
blocked for that account and address, while other users still get in; unknown user names cost
the server as much time as known ones (no enumeration by timing)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rekam.his.rbac import Role
from support.attacks import hidden_value, private_server
from support.servers import PASSWORD, RunningServer

DELAY_AFTER = 3
BLOCK_AFTER = 6
WRONG = "Salah-Tebak-0000"

TIMING_USERS = [f"known{i}" for i in range(5)]

Attempt = Callable[[httpx.Client, str, str], httpx.Response]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    users = {
        "doctor1": Role.DOCTOR,  # guessed through the form
        "lab1": Role.LAB,  # guessed through the API
        "nurse1": Role.NURSE,
        "pharmacist1": Role.PHARMACIST,
        **dict.fromkeys(TIMING_USERS, Role.PATIENT),
    }
    env = {
        "REKAM_LOGIN_DELAY_AFTER_FAILURES": str(DELAY_AFTER),
        "REKAM_LOGIN_BLOCK_AFTER_FAILURES": str(BLOCK_AFTER),
        "REKAM_LOGIN_BLOCK_MINUTES": "15",
        # this module's tests share 127.0.0.1: keep the per-address block and the flood limiter
        # out of the way so each test sees only the per-account back-off it provokes
        "REKAM_SOURCE_BLOCK_AFTER_FAILURES": "500",
        "REKAM_UNAUTHENTICATED_BURST": "1000",
        "REKAM_UNAUTHENTICATED_RATE_PER_SECOND": "500",
    }
    directory: Path = tmp_path_factory.mktemp("brute")
    with private_server(directory, users, env) as running:
        yield running


def form_attempt(client: httpx.Client, username: str, password: str) -> httpx.Response:
    client.cookies.clear()
    page = client.get("/login")
    assert page.status_code == 200, page.status_code
    token = hidden_value(page.text)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def api_attempt(client: httpx.Client, username: str, password: str) -> httpx.Response:
    client.cookies.clear()
    return client.post("/api/v1/session", json={"username": username, "password": password})


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after")
    assert value is not None and value.isdigit(), dict(response.headers)
    return int(value)


def _guess_until_blocked(client: httpx.Client, attempt: Attempt, username: str) -> list[int]:
    """Wrong passwords, each retried at once (expecting the back-off) and then after waiting the
    Retry-After it announced, until BLOCK_AFTER failures have been counted. Returns statuses."""
    statuses: list[int] = []
    deadline = time.monotonic() + 40
    failures = 0
    while failures < BLOCK_AFTER:
        assert time.monotonic() < deadline, f"back-off took too long: {statuses}"
        response = attempt(client, username, WRONG)
        statuses.append(response.status_code)
        if response.status_code == 401:
            failures += 1
            if failures >= DELAY_AFTER and failures < BLOCK_AFTER:
                slowed = attempt(client, username, WRONG)  # straight away: must be slowed
                statuses.append(slowed.status_code)
                assert slowed.status_code == 429, (statuses, slowed.text[:300])
                wait = _retry_after(slowed)
                assert 1 <= wait <= 2 ** (failures - DELAY_AFTER) + 1, (wait, failures)
                time.sleep(wait + 0.2)
        else:
            raise AssertionError(f"unexpected {response.status_code} after {statuses}")
    return statuses


def _expected_statuses() -> list[int]:
    expected: list[int] = []
    for failure in range(1, BLOCK_AFTER + 1):
        expected.append(401)
        if DELAY_AFTER <= failure < BLOCK_AFTER:
            expected.append(429)
    return expected


@pytest.mark.slow
def test_form_guessing_is_slowed_then_blocked(server: RunningServer) -> None:
    with server.client() as client:
        statuses = _guess_until_blocked(client, form_attempt, "doctor1")
        assert statuses == _expected_statuses()

        # blocked now: even the right password is refused, for a long time
        right = form_attempt(client, "doctor1", PASSWORD)
        assert right.status_code == 429, right.text[:300]
        assert _retry_after(right) > 60
        assert "__Host-rekam-session" not in right.headers.get("set-cookie", "")
        assert "Terlalu banyak percobaan gagal" in right.text  # the page explains (Indonesian)
        assert form_attempt(client, "doctor1", WRONG).status_code == 429
        # and the dashboard stays out of reach
        assert client.get("/", follow_redirects=False).headers.get("location") == "/login"

    with server.client() as colleague:  # same address, another account: not affected
        response = form_attempt(colleague, "nurse1", PASSWORD)
        assert response.status_code == 303 and response.headers["location"] == "/"
        assert colleague.get("/").status_code == 200


@pytest.mark.slow
def test_api_guessing_is_slowed_then_blocked(server: RunningServer) -> None:
    with server.client() as client:
        statuses = _guess_until_blocked(client, api_attempt, "lab1")
        assert statuses == _expected_statuses()

        right = api_attempt(client, "lab1", PASSWORD)
        assert right.status_code == 429, right.text
        assert right.json()["error"]["code"] == "login_throttled"
        assert _retry_after(right) > 60
        assert "set-cookie" not in right.headers
        assert client.get("/api/v1/me").status_code == 401

    with server.client() as colleague:
        response = api_attempt(colleague, "pharmacist1", PASSWORD)
        assert response.status_code == 200, response.text
        assert colleague.get("/api/v1/me").json()["username"] == "pharmacist1"


def test_unknown_user_is_not_answered_faster(server: RunningServer) -> None:
    """Each account is tried once (no back-off in play); medians are compared generously."""
    known: list[float] = []
    unknown: list[float] = []
    bodies: set[str] = set()
    with server.client() as client:
        api_attempt(client, "warm-up-nobody", WRONG)  # first request pays for connection setup
        for index, username in enumerate(TIMING_USERS):
            for name, times in ((username, known), (f"ghost-{index}-nobody", unknown)):
                started = time.perf_counter()
                response = api_attempt(client, name, WRONG)
                times.append(time.perf_counter() - started)
                assert response.status_code == 401, response.text
                bodies.add(response.text)
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    print(
        f"wrong password: known {known_median * 1000:.1f} ms, unknown {unknown_median * 1000:.1f}"
    )
    assert unknown_median > known_median / 3, (known, unknown)
    assert known_median > unknown_median / 3, (known, unknown)
    assert len(bodies) == 1, bodies  # the same words for both cases
