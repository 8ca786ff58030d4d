"""What a passive eavesdropper on the wire sees: a tshark capture of a whole session holds no
secret, while the same search finds a canary sent over plain HTTP (the check can fail)."""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from rekam.his.rbac import Role
from rekam.web.cookies import SESSION_COOKIE
from support.attacks import (
    TSHARK,
    capture_contains,
    private_server,
    tool_available,
    tshark_capture,
    tshark_fields,
)
from support.servers import PASSWORD, RunningServer, free_port, login

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not tool_available(TSHARK), reason="tshark is not installed"),
]

#: ServerHello cipher suites Rekam may choose (RFC 8446 / RFC 5289 / RFC 7905 numbers)
TLS13_AES_256_GCM = 0x1302
TLS12_ECDHE_RSA_AES_256_GCM = 0xC030
ALLOWED_SERVER_SUITES = {
    TLS13_AES_256_GCM,
    TLS12_ECDHE_RSA_AES_256_GCM,
    0xC02C,  # ECDHE-ECDSA-AES256-GCM-SHA384
    0xCCA8,  # ECDHE-RSA-CHACHA20-POLY1305
    0xCCA9,  # ECDHE-ECDSA-CHACHA20-POLY1305
}


def _ssl_object(response: httpx.Response) -> ssl.SSLObject:
    stream = response.extensions["network_stream"]
    ssl_object = stream.get_extra_info("ssl_object")
    assert ssl_object is not None, "the response did not come over TLS"
    return ssl_object


def _suite_number(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with private_server(tmp_path_factory.mktemp("sniff"), {"admin1": Role.ADMIN}) as running:
        yield running


def test_capture_of_a_whole_session_holds_no_secret(server: RunningServer, tmp_path: Path) -> None:
    canary = f"CANARY-{uuid.uuid4()}"
    pcap = tmp_path / "session.pcapng"
    with tshark_capture(pcap, server.port) as capture:
        with server.client() as client:
            csrf = login(client, "admin1")
            session_token = client.cookies.get(SESSION_COOKIE)
            assert session_token, "no session cookie after login"
            created = client.post(
                "/admin/users",
                data={
                    "username": f"canary-{uuid.uuid4().hex[:8]}",
                    "display_name": canary,
                    "role": Role.NURSE.value,
                    "csrf_token": csrf,
                },
            )
            assert created.status_code == 201, created.text
            listing = client.get("/admin/users")
            assert listing.status_code == 200 and canary in listing.text
            tls13 = _ssl_object(listing)
            tls13_version, tls13_cipher = tls13.version(), tls13.cipher()
            out = client.post("/logout", data={"csrf_token": csrf})
            assert out.status_code == 303
        # A second connection that may not use TLS 1.3: the ServerHello then names the suite
        # in the clear, for tshark to read.
        tls12_context = server.ssl_context()
        tls12_context.maximum_version = ssl.TLSVersion.TLSv1_2
        with httpx.Client(base_url=server.url, verify=tls12_context) as client12:
            health = client12.get("/healthz")
            assert health.status_code == 200
            tls12 = _ssl_object(health)
            tls12_version, tls12_cipher = tls12.version(), tls12.cipher()

    # The client's view of what was negotiated.
    assert tls13_version == "TLSv1.3"
    assert tls13_cipher is not None and tls13_cipher[0] == "TLS_AES_256_GCM_SHA384"
    assert tls12_version == "TLSv1.2"
    assert tls12_cipher is not None and tls12_cipher[0] == "ECDHE-RSA-AES256-GCM-SHA384"

    # The capture is real: packets, TLS handshakes, encrypted application data.
    data = pcap.read_bytes()
    assert len(data) > 10_000, f"capture suspiciously small ({len(data)} bytes)"
    reported = capture.packets_reported()
    assert reported is None or reported > 20, capture.stderr
    handshake_types = {
        value
        for row in tshark_fields(pcap, "tls.handshake", "tls.handshake.type")
        for value in row[0].split(",")
        if value
    }
    assert {"1", "2"} <= handshake_types, handshake_types  # ClientHello, ServerHello
    assert tshark_fields(pcap, "tls.app_data", "frame.number"), "no TLS application data seen"
    assert not tshark_fields(pcap, "http", "frame.number"), "tshark decoded plaintext HTTP"

    # tshark's reading of the ServerHellos: TLS 1.2 forced → ECDHE-RSA-AES256-GCM-SHA384.
    suites = [
        _suite_number(row[0])
        for row in tshark_fields(pcap, "tls.handshake.type == 2", "tls.handshake.ciphersuite")
        if row and row[0]
    ]
    assert TLS12_ECDHE_RSA_AES_256_GCM in suites, [hex(s) for s in suites]
    assert TLS13_AES_256_GCM in suites, [hex(s) for s in suites]
    assert set(suites) <= ALLOWED_SERVER_SUITES, [hex(s) for s in suites]

    # Nothing secret in the raw capture bytes, in any encoding a form or cookie would use.
    for secret in (canary, PASSWORD, session_token):
        for form in {secret, quote_plus(secret)}:
            assert not capture_contains(pcap, form.encode()), f"{secret[:12]}… is on the wire"
    assert not capture_contains(pcap, canary.encode("utf-16-le"))


def test_control_plain_http_canary_is_found(tmp_path: Path) -> None:
    """The same capture and search do find a canary sent without TLS."""
    canary = f"CANARY-{uuid.uuid4()}"
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:  # answers every request; the capture's probe connections just close
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(5)
                received = bytearray()
                try:
                    while b"\r\n\r\n" not in received:
                        chunk = connection.recv(4096)
                        if not chunk:
                            break
                        received.extend(chunk)
                    if b"\r\n\r\n" in received:
                        body = f"<p>{canary}</p>".encode()
                        connection.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(body), body)
                        )
                except OSError:
                    pass

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    pcap = tmp_path / "plain.pcapng"
    try:
        with tshark_capture(pcap, port):
            response = httpx.get(f"http://127.0.0.1:{port}/?q={canary}", timeout=10)
            assert canary in response.text
    finally:
        stop.set()
        worker.join(timeout=5)
        listener.close()
    assert capture_contains(pcap, canary.encode())
    assert tshark_fields(pcap, "http", "frame.number"), "tshark did not see the plain HTTP"
