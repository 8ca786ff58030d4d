"""Availability under a bounded flood from 127.0.0.1: idle and slow (slowloris) connections plus
a burst of anonymous requests, while a member of staff who logged in beforehand keeps working.

The flood runs in separate processes so the measuring client does not share their interpreter;
it stops by itself (watch window below, hard timeouts on every step). Latencies are printed and
written to bench/out/availability.json."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import pytest

from rekam.his.rbac import Role
from support.attacks import (
    hold_slow_connections,
    out_dir,
    percentile,
    private_server,
    unauthenticated_burst,
)
from support.servers import login

pytestmark = pytest.mark.slow

RAW_IDLE = 100  # TCP connections that never start TLS
SLOW_HEADERS = 100  # TLS connections trickling an endless request header, 1 byte/s
BURST_REQUESTS = 4_000
BURST_THREADS = 8
BURST = 60
RATE_PER_SECOND = 20.0
WATCH_SECONDS = 16.0  # the server's header deadline is 10 s; allow 15 s, watch a little longer
CLOSE_WITHIN_SECONDS = 15.0
P95_LIMIT_SECONDS = 2.0


@dataclass
class FloodReport:
    baseline: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() of each latency
    failures: list[str] = field(default_factory=list)
    burst: dict[str, Any] = field(default_factory=dict)

    @property
    def statuses(self) -> dict[str, int]:
        statuses: dict[str, int] = self.burst.get("statuses", {})
        return statuses

    @property
    def burst_seconds(self) -> float:
        return float(self.burst["ended"] - self.burst["started"])

    @property
    def during_burst(self) -> list[float]:
        start, end = self.burst.get("started", 0.0), self.burst.get("ended", 0.0)
        return [
            latency
            for latency, sent in zip(self.latencies, self.sent_at, strict=True)
            if start <= sent <= end
        ]

    slow: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float | int]:
            if not values:
                return {"count": 0}
            return {
                "count": len(values),
                "p50_ms": round(percentile(values, 0.50) * 1000, 1),
                "p95_ms": round(percentile(values, 0.95) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
            }

        def closes(values: list[float | None]) -> dict[str, float | int | None]:
            closed = [v for v in values if v is not None]
            return {
                "connections": len(values),
                "closed": len(closed),
                "still_open": len(values) - len(closed),
                "closed_after_max_s": round(max(closed), 2) if closed else None,
            }

        return {
            "baseline_before_flood": stats(self.baseline),
            "logged_in_during_flood": {**stats(self.latencies), "failures": len(self.failures)},
            "logged_in_during_anonymous_burst": stats(self.during_burst),
            "anonymous_burst": {
                "requests": BURST_REQUESTS,
                "threads": BURST_THREADS,
                "seconds": round(self.burst_seconds, 2) if self.burst else None,
                "statuses": self.statuses,
            },
            "slow_header_tls_connections": closes(self.slow.get("tls_closed_after", [])),
            "idle_connections_without_tls": closes(self.slow.get("raw_closed_after", [])),
            "tls_handshake_failures": self.slow.get("tls_handshake_failures"),
        }


def _timed_get(
    client: httpx.Client, report: FloodReport, into: list[float], at: list[float] | None = None
) -> None:
    sent = time.monotonic()
    started = time.perf_counter()
    try:
        response = client.get("/", follow_redirects=False)
    except httpx.HTTPError as exc:
        report.failures.append(f"{type(exc).__name__}: {exc}")
        return
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        report.failures.append(f"status {response.status_code}")
        return
    into.append(elapsed)
    if at is not None:
        at.append(sent)


@pytest.fixture(scope="module")
def flood(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FloodReport]:
    env = {
        "REKAM_UNAUTHENTICATED_BURST": str(BURST),
        "REKAM_UNAUTHENTICATED_RATE_PER_SECOND": str(RATE_PER_SECOND),
    }
    report = FloodReport()
    directory = tmp_path_factory.mktemp("availability")
    with private_server(directory, {"doctor1": Role.DOCTOR}, env) as server:
        root = str(server.installation.root_pem)
        with server.client(timeout=10) as staff:
            login(staff, "doctor1")  # before the flood
            for _ in range(10):
                _timed_get(staff, report, report.baseline)
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
                slow = pool.submit(
                    hold_slow_connections, server.port, root, RAW_IDLE, SLOW_HEADERS, WATCH_SECONDS
                )
                time.sleep(1.0)  # let the idle connections pile up first
                burst = pool.submit(
                    unauthenticated_burst, server.url, root, BURST_REQUESTS, BURST_THREADS
                )
                deadline = time.monotonic() + WATCH_SECONDS + 20
                while not (slow.done() and burst.done()) and time.monotonic() < deadline:
                    _timed_get(staff, report, report.latencies, report.sent_at)
                    time.sleep(0.1)
                report.burst = burst.result(timeout=30)
                report.slow = slow.result(timeout=30)
        summary = report.summary()
        (out_dir() / "availability.json").write_text(json.dumps(summary, indent=2) + "\n")
        print("\navailability:", json.dumps(summary, indent=2))
        yield report


def test_logged_in_client_keeps_working(flood: FloodReport) -> None:
    assert not flood.failures, flood.failures[:10]
    assert len(flood.latencies) >= 30, flood.summary()
    p95 = percentile(flood.latencies, 0.95)
    assert p95 < P95_LIMIT_SECONDS, flood.summary()
    assert max(flood.latencies) < 5.0, flood.summary()
    during_burst = flood.during_burst
    assert len(during_burst) >= 5, flood.summary()  # the burst really overlapped the fetches
    assert percentile(during_burst, 0.95) < P95_LIMIT_SECONDS, flood.summary()


def test_anonymous_burst_is_rate_limited(flood: FloodReport) -> None:
    statuses = flood.statuses
    assert sum(statuses.values()) == BURST_REQUESTS, flood.burst
    assert set(statuses) <= {"200", "429"}, flood.burst  # no errors, no 5xx
    admitted_at_most = BURST + RATE_PER_SECOND * flood.burst_seconds + 10
    assert statuses.get("200", 0) <= admitted_at_most, (flood.burst, admitted_at_most)
    assert statuses.get("429", 0) >= BURST_REQUESTS - admitted_at_most, flood.burst


def test_slow_header_connections_are_closed(flood: FloodReport) -> None:
    closed_after = flood.slow["tls_closed_after"]
    assert flood.slow["tls_handshake_failures"] == 0, flood.slow
    assert len(closed_after) == SLOW_HEADERS
    still_open = sum(1 for c in closed_after if c is None)
    assert still_open == 0, flood.summary()
    assert max(c for c in closed_after if c is not None) <= CLOSE_WITHIN_SECONDS
    # they were really kept busy (several bytes each) rather than closed at once
    assert min(c for c in closed_after if c is not None) >= 5.0, flood.summary()
    assert flood.slow["header_bytes_sent_max"] >= 5


def test_connections_that_never_start_tls_are_closed(flood: FloodReport) -> None:
    """A connection that never sends a ClientHello holds a socket as surely as a slow header;
    it should be dropped on the same kind of deadline, not kept for a minute."""
    closed_after = flood.slow["raw_closed_after"]
    assert len(closed_after) == RAW_IDLE
    still_open = sum(1 for c in closed_after if c is None)
    assert still_open == 0, (
        f"{still_open} of {RAW_IDLE} connections that never started TLS were still open after "
        f"{WATCH_SECONDS:.0f} s",
        flood.summary(),
    )
    assert max(c for c in closed_after if c is not None) <= CLOSE_WITHIN_SECONDS


def test_report_was_written(flood: FloodReport) -> None:
    written = json.loads((out_dir() / "availability.json").read_text())
    assert written["logged_in_during_flood"]["count"] == len(flood.latencies)
    assert asdict(flood)["latencies"] == flood.latencies
