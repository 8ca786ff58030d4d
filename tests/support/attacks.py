"""Helpers for tests that attack a running Rekam server from outside: packet capture, openssl
s_client, raw TLS sockets, private servers and small statistics. Everything targets 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rekam.his.rbac import Role
from support.servers import Installation, RunningServer, make_installation, running_server

TSHARK = "/usr/bin/tshark"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def hidden_value(html: str, name: str = "csrf_token") -> str:
    """The value of a hidden form field in a page."""
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    if match is None:
        raise AssertionError(f"no hidden field {name!r} in the page")
    return match.group(1)


# Private servers -------------------------------------------------------------------------------


@contextmanager
def private_server(
    directory: Path,
    users: dict[str, Role],
    extra_env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """A fresh installation with ``users`` (password PASSWORD) and its own ``rekam serve``: its
    login back-off and rate limits are shared with no other test."""
    installation = make_installation(directory)
    for username, role in users.items():
        installation.add_user(username, role)
    with running_server(installation, extra_env) as server:
        yield server


def fresh_installation(directory: Path, users: dict[str, Role]) -> Installation:
    installation = make_installation(directory)
    for username, role in users.items():
        installation.add_user(username, role)
    return installation


# Packet capture --------------------------------------------------------------------------------


@dataclass
class Capture:
    path: Path
    process: subprocess.Popen[bytes]
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def packets_reported(self) -> int | None:
        """The packet count tshark printed when it stopped."""
        match = re.search(r"(\d+) packets? captured", self.stderr)
        return int(match.group(1)) if match else None


@contextmanager
def tshark_capture(
    path: Path, port: int, interface: str = "lo", timeout: float = 20.0
) -> Iterator[Capture]:
    """Capture ``tcp port <port>`` on ``interface`` into ``path`` until the block ends.

    Yields only once tshark says it is capturing and a probe connection to the port has been
    written to the file, and stops only once a second probe after the block has been written,
    so nothing the block sends can slip past the capture."""
    process = subprocess.Popen(
        [TSHARK, "-i", interface, "-f", f"tcp port {port}", "-w", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    capture = Capture(path, process)
    capturing = threading.Event()

    def read_stderr() -> None:
        assert process.stderr is not None
        for raw in iter(process.stderr.readline, b""):
            line = raw.decode(errors="replace")
            capture.stderr_lines.append(line)
            if "Capturing on" in line:
                capturing.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        if not capturing.wait(timeout):
            raise RuntimeError(f"tshark did not start capturing:\n{capture.stderr}")
        _wait_for_probe(path, port, timeout)
        yield capture
        _wait_for_probe(path, port, timeout)  # the block's last packets are in the file
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        reader.join(timeout=5)


def _wait_for_probe(path: Path, port: int, timeout: float) -> None:
    """Connect to ``port`` from a known source port until tshark has written that connection to
    the file: then everything sent before the probe has been written too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            source_port = probe.getsockname()[1]
            probe.settimeout(2)
            with suppress(OSError):
                probe.connect(("127.0.0.1", port))
        for _ in range(10):
            time.sleep(0.1)
            if path.exists() and _has_packet_from(path, source_port):
                return
    raise RuntimeError(f"tshark wrote no packets of a probe connection to port {port}")


def _has_packet_from(path: Path, source_port: int) -> bool:
    result = subprocess.run(
        [
            TSHARK,
            "-r",
            str(path),
            "-Y",
            f"tcp.srcport == {source_port}",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        timeout=30,
    )
    return bool(result.stdout.strip())


def tshark_fields(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    """Rows of ``fields`` for the packets of a capture file matching ``display_filter``."""
    command = [TSHARK, "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for name in fields:
        command += ["-e", name]
    result = subprocess.run(command, capture_output=True, timeout=60, check=True)
    rows = result.stdout.decode(errors="replace").splitlines()
    return [row.split("\t") for row in rows if row.strip()]


def capture_contains(path: Path, needle: bytes) -> bool:
    """Whether ``needle`` occurs anywhere in the raw bytes of the capture file."""
    return needle in path.read_bytes()


# openssl s_client ------------------------------------------------------------------------------


@dataclass
class SClientResult:
    returncode: int
    output: str

    @property
    def protocol(self) -> str | None:
        match = re.search(r"^New, (\S+), Cipher is", self.output, re.MULTILINE)
        return match.group(1) if match else None

    @property
    def cipher(self) -> str | None:
        match = re.search(r"^New, \S+, Cipher is (\S+)", self.output, re.MULTILINE)
        return match.group(1) if match else None

    @property
    def handshake_completed(self) -> bool:
        return self.cipher not in (None, "(NONE)")


def s_client(
    port: int,
    *options: str,
    stdin: bytes = b"",
    timeout: float = 15.0,
    feed_delays: Sequence[tuple[float, bytes]] = (),
) -> SClientResult:
    """Run ``openssl s_client -connect 127.0.0.1:<port> <options>``.

    Without ``feed_delays`` stdin is ``stdin`` then end-of-file (s_client then closes). With
    ``feed_delays`` each (seconds, bytes) pair is written after waiting that long, and stdin is
    closed only afterwards, so s_client's interactive commands (such as "R") are processed."""
    command = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", *options]
    if not feed_delays:
        try:
            completed = subprocess.run(command, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            text = (exc.stdout or b"").decode(errors="replace")
            return SClientResult(-1, text + (exc.stderr or b"").decode(errors="replace"))
        output = completed.stdout.decode(errors="replace") + completed.stderr.decode(
            errors="replace"
        )
        return SClientResult(completed.returncode, output)
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdin is not None and process.stdout is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(process.stdout.readline, b"")))
    reader.start()
    try:
        for delay, data in feed_delays:
            time.sleep(delay)
            if process.poll() is not None:
                break
            process.stdin.write(data)
            process.stdin.flush()
    except (BrokenPipeError, OSError):
        pass
    finally:
        with suppress(BrokenPipeError, OSError):
            process.stdin.close()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        reader.join(timeout=5)
    return SClientResult(process.returncode, b"".join(chunks).decode(errors="replace"))


def tls12_cipher_names() -> list[str]:
    """Every TLS 1.2-and-below suite this OpenSSL knows, at every security level."""
    listing = subprocess.run(
        [OPENSSL, "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout.decode()
    return [name for name in listing.strip().split(":") if name and not name.startswith("TLS_")]


# TLS sockets -----------------------------------------------------------------------------------


def spki_sha256_base64(certificate_pem: bytes) -> str:
    """Base64 SHA-256 of the first certificate's SubjectPublicKeyInfo (as Chromium pins it)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


def tls_socket(
    port: int,
    context: ssl.SSLContext,
    server_hostname: str = "127.0.0.1",
    timeout: float = 10.0,
) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def raw_exchange(
    port: int,
    context: ssl.SSLContext,
    request: bytes,
    timeout: float = 10.0,
    first_response_only: bool = True,
) -> bytes:
    """Send ``request`` as-is over TLS; read until the server closes, ``timeout`` passes or (with
    ``first_response_only``) a first complete response with Content-Length has arrived.

    Returns what arrived (possibly nothing if the server just closed the connection)."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    with tls_socket(port, context, timeout=timeout) as sock:
        # the server may answer and close before it has read everything
        with suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            sock.sendall(request)
        while time.monotonic() < deadline:
            if first_response_only and _complete_response(received):
                break
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError, ssl.SSLError, OSError):
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)


def _complete_response(data: bytes | bytearray) -> bool:
    head, separator, body = bytes(data).partition(b"\r\n\r\n")
    if not separator:
        return False
    match = re.search(rb"^content-length:\s*(\d+)\s*$", head, re.IGNORECASE | re.MULTILINE)
    return match is not None and len(body) >= int(match.group(1))


def status_of(response: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    return int(match.group(1)) if match else None


# Statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile by the nearest-rank method (values must not be empty)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def out_dir() -> Path:
    """bench/out in the repository, created if missing."""
    directory = Path(__file__).resolve().parents[2] / "bench" / "out"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def tool_available(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.X_OK)


# Floods (run in their own processes, so they do not share the measuring client's GIL) ----------


def unauthenticated_burst(
    url: str, root_pem: str, total: int, threads: int, path: str = "/login"
) -> dict[str, Any]:
    """``total`` anonymous GETs of ``path`` from ``threads`` keep-alive clients, as fast as they
    go. Returns how many got each status ("error" for transport failures) under "statuses", and
    the ``time.monotonic()`` (system-wide on Linux) at "started" and "ended"."""
    import httpx

    counts: dict[str, int] = {}
    lock = threading.Lock()
    context = ssl.create_default_context(cafile=root_pem)
    share, extra = divmod(total, threads)

    def worker(count: int) -> None:
        local: dict[str, int] = {}
        with httpx.Client(base_url=url, verify=context, timeout=10) as client:
            for _ in range(count):
                try:
                    key = str(client.get(path).status_code)
                except httpx.HTTPError:
                    key = "error"
                local[key] = local.get(key, 0) + 1
        with lock:
            for key, value in local.items():
                counts[key] = counts.get(key, 0) + value

    started = time.monotonic()
    pool = [
        threading.Thread(target=worker, args=(share + (1 if i < extra else 0),))
        for i in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    return {"statuses": counts, "started": started, "ended": time.monotonic()}


def hold_slow_connections(
    port: int, root_pem: str, raw_count: int, tls_count: int, watch_seconds: float
) -> dict[str, list[float | None] | int]:
    """Open ``raw_count`` TCP connections that never start TLS and ``tls_count`` TLS connections
    that then send an endless request header one byte per second; watch for ``watch_seconds``.

    Returns, per connection, the seconds after which the server closed it (None: still open at
    the end), measured from connect (raw) or from the completed handshake (TLS)."""
    context = ssl.create_default_context(cafile=root_pem)
    header = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    raw: list[tuple[socket.socket, float]] = []
    tls: list[tuple[ssl.SSLSocket, float]] = []
    handshake_failures = 0
    for _ in range(raw_count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        raw.append((sock, time.monotonic()))
    for _ in range(tls_count):
        try:
            secure = tls_socket(port, context, timeout=10)
        except (OSError, ssl.SSLError):
            handshake_failures += 1
            continue
        secure.setblocking(False)
        tls.append((secure, time.monotonic()))
    raw_closed: list[float | None] = [None] * len(raw)
    tls_closed: list[float | None] = [None] * len(tls)
    sent = [0] * len(tls)
    deadline = time.monotonic() + watch_seconds
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            for index, (sock, opened) in enumerate(raw):
                if raw_closed[index] is None and _peer_closed(sock):
                    raw_closed[index] = now - opened
            for index, (secure, opened) in enumerate(tls):
                if tls_closed[index] is not None:
                    continue
                if _peer_closed(secure):
                    tls_closed[index] = now - opened
                    continue
                try:
                    secure.send(header[sent[index] : sent[index] + 1])
                    sent[index] += 1
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    pass
                except OSError:
                    tls_closed[index] = now - opened
            if all(c is not None for c in raw_closed + tls_closed):
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    finally:
        for sock, _ in raw:
            sock.close()
        for secure, _ in tls:
            secure.close()
    return {
        "raw_closed_after": raw_closed,
        "tls_closed_after": tls_closed,
        "tls_handshake_failures": handshake_failures,
        "header_bytes_sent_max": max(sent, default=0),
    }


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the peer has closed a non-blocking socket (reading drains any data sent)."""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except (ssl.SSLError, OSError):
        return True
