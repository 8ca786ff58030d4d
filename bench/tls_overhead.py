"""What does TLS cost Rekam's pages? Same app, same pages, with and without TLS, in one run.

Measures login (POST), a dashboard page (GET) and logout (POST): p50/p99 latency with keep-alive
and with a new connection — a full TLS handshake — per request, and requests/s of the dashboard
with 16 concurrent keep-alive clients. Modes alternate request by request so machine noise hits
both alike. Run: ``.venv/bin/python bench/tls_overhead.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import http.client
import re
import ssl
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench_support import (
    PASSWORD,
    BenchInstallation,
    machine,
    make_installation,
    percentile,
    server_process,
    write_result,
)
from rekam.his.rbac import Role

PAGES = ("login", "dashboard", "logout")
CONCURRENT_CLIENTS = 16


@dataclass
class Target:
    port: int
    tls: bool
    root_pem: Path

    def connect(self) -> http.client.HTTPConnection:
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.root_pem))
            # every new connection is a full handshake: no session resumption
            context.options |= ssl.OP_NO_TICKET
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


@dataclass
class Browser:
    """A minimal cookie-keeping client over one (or a new per request) connection."""

    target: Target
    keep_alive: bool
    cookies: dict[str, str] = field(default_factory=dict)
    connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        if self.connection is None or not self.keep_alive:
            if self.connection is not None:
                self.connection.close()
            self.connection = self.target.connect()
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookie_value = rest.split(";", 1)[0]
                if "Max-Age=0" in value or "expires=Thu, 01 Jan 1970" in value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = cookie_value
        return response.status, text

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def one_visit(browser: Browser, username: str) -> dict[str, float]:
    """login → dashboard → logout; returns the latency (ms) of each timed request."""
    status, page = browser.request("GET", "/login")
    assert status == 200
    form = f"username={username}&password={PASSWORD}&csrf_token={_token(page)}"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    status, _ = browser.request("POST", "/login", form)
    timings["login"] = (time.perf_counter() - start) * 1000
    assert status == 303, status
    start = time.perf_counter()
    status, page = browser.request("GET", "/")
    timings["dashboard"] = (time.perf_counter() - start) * 1000
    assert status == 200, status
    start = time.perf_counter()
    status, _ = browser.request("POST", "/logout", f"csrf_token={_token(page)}")
    timings["logout"] = (time.perf_counter() - start) * 1000
    assert status == 303, status
    return timings


def _throughput_worker(args: tuple[int, bool, str, str, float, int]) -> int:
    port, tls, root_pem, cookie, seconds, threads = args
    target = Target(port, tls, Path(root_pem))
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def run(slot: int) -> None:
        browser = Browser(target, keep_alive=True, cookies=dict([cookie.split("=", 1)]))
        while time.monotonic() < stop_at:
            status, _ = browser.request("GET", "/")
            if status == 200:
                counts[slot] += 1
        browser.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts)


def throughput(target: Target, username: str, seconds: float) -> float:
    browser = Browser(target, keep_alive=True)
    _, page = browser.request("GET", "/login")
    browser.request(
        "POST", "/login", f"username={username}&password={PASSWORD}&csrf_token={_token(page)}"
    )
    cookie = next(f"{k}={v}" for k, v in browser.cookies.items() if "session" in k)
    browser.close()
    # two client processes (this machine has two cores), 8 threads each = 16 clients
    jobs = [(target.port, target.tls, str(target.root_pem), cookie, seconds, 8)] * 2
    with ProcessPoolExecutor(max_workers=2) as pool:
        total = sum(pool.map(_throughput_worker, jobs))
    return total / seconds


def measure(rounds: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        installation: BenchInstallation = make_installation(
            Path(tmp), [("bench.doctor", Role.DOCTOR)]
        )
        with (
            server_process(installation, tls=True) as tls_port,
            server_process(installation, tls=False) as plain_port,
        ):
            targets = {
                "tls": Target(tls_port, True, installation.root_pem),
                "plain": Target(plain_port, False, installation.root_pem),
            }
            latencies: dict[str, dict[str, list[float]]] = {}
            for keep_alive in (True, False):
                browsers = {m: Browser(t, keep_alive) for m, t in targets.items()}
                for mode in targets:  # warm up
                    for _ in range(5):
                        one_visit(browsers[mode], "bench.doctor")
                for _ in range(rounds):
                    for mode in targets:
                        timings = one_visit(browsers[mode], "bench.doctor")
                        key = f"{mode}-{'keepalive' if keep_alive else 'handshake'}"
                        for page, ms in timings.items():
                            latencies.setdefault(key, {}).setdefault(page, []).append(ms)
                for b in browsers.values():
                    b.close()
            rates = {mode: throughput(t, "bench.doctor", seconds) for mode, t in targets.items()}
    summary: dict[str, object] = {"machine": machine(), "rounds": rounds}
    table = {}
    for key, pages in latencies.items():
        table[key] = {
            page: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
            for page, v in pages.items()
        }
    summary["latency"] = table
    summary["requests_per_second_16_clients"] = rates
    return summary


def report(summary: dict[str, object]) -> str:
    latency: dict[str, dict[str, dict[str, float]]] = summary["latency"]  # type: ignore[assignment]
    rates: dict[str, float] = summary["requests_per_second_16_clients"]  # type: ignore[assignment]
    lines = [
        f"machine: {summary['machine']}; {summary['rounds']} visits per mode",
        "",
        "| page | connection | plain p50 ms | TLS p50 ms | TLS/plain p50 "
        "| plain p99 ms | TLS p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for connection in ("keepalive", "handshake"):
        for page in PAGES:
            plain = latency[f"plain-{connection}"][page]
            tls = latency[f"tls-{connection}"][page]
            kind = "keep-alive" if connection == "keepalive" else "new connection"
            ratio = tls["p50_ms"] / plain["p50_ms"]
            lines.append(
                f"| {page} | {kind} | "
                f"{plain['p50_ms']:.2f} | {tls['p50_ms']:.2f} | {ratio:.3f} | "
                f"{plain['p99_ms']:.2f} | {tls['p99_ms']:.2f} |"
            )
    lines += [
        "",
        f"dashboard, {CONCURRENT_CLIENTS} concurrent keep-alive clients: plain "
        f"{rates['plain']:.0f} req/s, TLS {rates['tls']:.0f} req/s "
        f"(TLS/plain {rates['tls'] / rates['plain']:.3f})",
    ]
    overheads = [
        latency["tls-keepalive"][p]["p50_ms"] / latency["plain-keepalive"][p]["p50_ms"] - 1
        for p in PAGES
    ]
    worst = max(overheads)
    verdict = "met" if worst <= 0.15 else "NOT met"
    lines.append(
        f"goal (TLS adds at most 15% to p50 with keep-alive): {verdict}, worst +{worst:.1%}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rounds", type=int, default=200, help="visits per mode and connection type"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of each throughput run"
    )
    args = parser.parse_args(argv)
    summary = measure(args.rounds, args.seconds)
    text = report(summary)
    summary["report"] = text
    write_result("tls_overhead", summary)
    print(text)


if __name__ == "__main__":
    main()
