"""What an open TLS connection costs the real server (``rekam serve``) in resident memory.

Wearables keep one TLS connection each open all day, so the server's memory grows with every
device. asyncio gives each TLS connection a 256 KiB receive buffer, filled with zeros as the
connection opens (about 125 MiB for 500 devices); the server sets it to
``TLS_READ_BUFFER_BYTES``. The check is the server process's own resident size (Linux /proc)
before and after opening a few hundred connections, so it holds whatever makes up the cost.
Bodies far larger than the buffer still arrive whole: ``test_encrypted_files.py`` uploads and
downloads 3 MiB files over TLS and compares them byte for byte."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest

from support.attacks import private_server, tls_socket

pytestmark = pytest.mark.slow

CONNECTIONS = 200
MAX_KIB_PER_CONNECTION = 160  # 64 KiB buffer and the rest; a 256 KiB buffer alone exceeds it


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_connections(port: int, context: ssl.SSLContext, count: int) -> list[ssl.SSLSocket]:
    return [tls_socket(port, context) for _ in range(count)]


def test_an_open_tls_connection_costs_the_server_little_memory(tmp_path: Path) -> None:
    with private_server(tmp_path, {}) as server:
        pid = server.process.pid
        context = server.ssl_context()
        # a first round lets the allocator and the server's lazily built state settle
        for sock in open_connections(server.port, context, 20):
            sock.close()
        time.sleep(0.5)
        before = resident_kib(pid)
        held = open_connections(server.port, context, CONNECTIONS)
        try:
            time.sleep(0.5)  # the server has accepted them all (the handshakes are done)
            after = resident_kib(pid)
        finally:
            for sock in held:
                sock.close()
    per_connection = (after - before) / CONNECTIONS
    print(f"server resident memory: {per_connection:.0f} KiB per open TLS connection")
    assert per_connection < MAX_KIB_PER_CONNECTION
