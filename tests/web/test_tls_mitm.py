"""An active attacker in the middle: foreign certificates and wrong host names are refused by a
client that trusts only Rekam's root, and the server accepts only strong TLS (checked with
openssl s_client, not with the server's own word). The plain-HTTP listener only redirects."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from rekam.his.rbac import Role
from support.attacks import (
    OPENSSL,
    fresh_installation,
    s_client,
    status_of,
    tls12_cipher_names,
    tls_socket,
    tool_available,
)
from support.servers import RunningServer, free_port, running_server

pytestmark = pytest.mark.interop

needs_openssl = pytest.mark.skipif(not tool_available(OPENSSL), reason="openssl is not installed")

ALLOWED_TLS12 = {
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
}


@dataclass
class ForeignServer:
    server: RunningServer
    redirect_port: int


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForeignServer]:
    """A second installation: its own CA, its own server, plus the optional redirect listener."""
    installation = fresh_installation(tmp_path_factory.mktemp("foreign"), {"admin1": Role.ADMIN})
    redirect_port = free_port()
    with running_server(installation, {"REKAM_REDIRECT_PORT": str(redirect_port)}) as server:
        yield ForeignServer(server, redirect_port)


# Certificates -----------------------------------------------------------------------------------


def test_certificate_from_another_ca_is_refused(
    live_server: RunningServer, foreign: ForeignServer
) -> None:
    trusts_rekam_only = ssl.create_default_context(cafile=str(live_server.installation.root_pem))
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        tls_socket(foreign.server.port, trusts_rekam_only).close()
    assert "unable to get local issuer certificate" in str(refused.value) or (
        "certificate verify failed" in str(refused.value)
    )
    # control: the very same server is fine for a client trusting its own root
    with tls_socket(foreign.server.port, foreign.server.ssl_context()) as accepted:
        assert accepted.version() in ("TLSv1.2", "TLSv1.3")


def test_right_ca_but_wrong_host_name_is_refused(live_server: RunningServer) -> None:
    context = ssl.create_default_context(cafile=str(live_server.installation.root_pem))
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        tls_socket(live_server.port, context, server_hostname="evil.example").close()
    assert "evil.example" in str(refused.value) or "mismatch" in str(refused.value).lower()
    for name in ("127.0.0.1", "localhost"):  # control: the names in the certificate pass
        with tls_socket(live_server.port, context, server_hostname=name) as accepted:
            assert accepted.version() == "TLSv1.3"


@needs_openssl
def test_openssl_verifies_the_chain_against_rekam_root(live_server: RunningServer) -> None:
    root = str(live_server.installation.root_pem)
    good = s_client(
        live_server.port, "-CAfile", root, "-verify_return_error", "-verify_ip", "127.0.0.1"
    )
    assert good.handshake_completed, good.output
    assert "Verify return code: 0 (ok)" in good.output
    wrong_name = s_client(
        live_server.port,
        "-CAfile",
        root,
        "-verify_return_error",
        "-verify_hostname",
        "evil.example",
    )
    # (with TLS 1.3 s_client prints the suite before it aborts; the exit status tells)
    assert wrong_name.returncode != 0, wrong_name.output
    assert "Verify return code: 62 (hostname mismatch)" in wrong_name.output


# Protocol versions and suites -----------------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize(("version", "label"), [("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")])
def test_old_protocol_versions_are_refused(
    live_server: RunningServer, version: str, label: str
) -> None:
    # SECLEVEL=0 so that this OpenSSL really offers the old version (Debian's default forbids it)
    result = s_client(live_server.port, version, "-cipher", "DEFAULT:@SECLEVEL=0", "-msg")
    # the old hello was really sent
    assert f">>> {label}, Handshake [length" in result.output, result.output
    assert "ClientHello" in result.output, result.output
    assert result.returncode != 0, result.output
    assert not result.handshake_completed, result.output


@needs_openssl
@pytest.mark.parametrize("cipher", ["AES256-SHA", "ECDHE-RSA-AES128-SHA", "AES256-GCM-SHA384"])
def test_weak_or_static_tls12_suites_are_refused(live_server: RunningServer, cipher: str) -> None:
    result = s_client(live_server.port, "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0")
    assert result.returncode != 0, result.output
    assert not result.handshake_completed, result.output


@needs_openssl
def test_tls12_default_offer_gets_ecdhe_aead(live_server: RunningServer) -> None:
    result = s_client(live_server.port, "-tls1_2")
    assert result.protocol == "TLSv1.2", result.output
    assert result.cipher == "ECDHE-RSA-AES256-GCM-SHA384", result.output
    assert "Compression: NONE" in result.output
    assert "Secure Renegotiation IS supported" in result.output  # RFC 5746 extension


@needs_openssl
def test_tls13_default_offer_gets_aes256_gcm(live_server: RunningServer) -> None:
    result = s_client(live_server.port, "-tls1_3")
    assert result.protocol == "TLSv1.3", result.output
    assert result.cipher == "TLS_AES_256_GCM_SHA384", result.output
    assert "Compression: NONE" in result.output


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_no_session_tickets_are_handed_out(live_server: RunningServer, version: str) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    result = s_client(live_server.port, version, feed_delays=[(0.5, request), (1.0, b"")])
    assert "HTTP/1.1 200" in result.output, result.output  # the exchange did happen
    assert "New Session Ticket" not in result.output, result.output  # TLS 1.3, after handshake
    assert "TLS session ticket:" not in result.output, result.output  # either version


@needs_openssl
def test_client_initiated_renegotiation_is_refused(live_server: RunningServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    # control: the same connection without "R" gets its answer
    control = s_client(live_server.port, "-tls1_2", feed_delays=[(0.5, request), (1.5, b"")])
    assert "RENEGOTIATING" not in control.output
    assert "HTTP/1.1 200" in control.output, control.output
    # "R" on a line of its own makes s_client renegotiate; the server must refuse, after which
    # the request is never answered on that connection
    attempt = s_client(
        live_server.port, "-tls1_2", feed_delays=[(0.5, b"R\n"), (1.0, request), (1.5, b"")]
    )
    assert "RENEGOTIATING" in attempt.output, attempt.output
    assert "no renegotiation" in attempt.output, attempt.output
    assert "HTTP/1.1 200" not in attempt.output, attempt.output


@needs_openssl
@pytest.mark.slow
def test_enumerated_tls12_suites_are_only_ecdhe_aead(live_server: RunningServer) -> None:
    names = tls12_cipher_names()
    assert len(names) > 50, names  # the enumeration really covers the weak ones
    assert "AES256-SHA" in names and "ECDHE-RSA-AES256-GCM-SHA384" in names

    def accepted(name: str) -> str | None:
        result = s_client(live_server.port, "-tls1_2", "-cipher", f"{name}:@SECLEVEL=0", timeout=10)
        return result.cipher if result.handshake_completed else None

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(names, pool.map(accepted, names), strict=True))
    accepted_names = {name for name, cipher in results.items() if cipher is not None}
    for name in accepted_names:
        assert results[name] == name, (name, results[name])
    assert accepted_names <= ALLOWED_TLS12, sorted(accepted_names - ALLOWED_TLS12)
    assert "ECDHE-RSA-AES256-GCM-SHA384" in accepted_names


# The plain-HTTP redirect listener --------------------------------------------------------------


def _plain_http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET / HTTP/1.1",
        b"GET /login HTTP/1.1",
        b"GET /healthz HTTP/1.1",
        b"GET /admin/users HTTP/1.1",
        b"GET /api/v1/users HTTP/1.1",
        b"HEAD /static/rekam.css HTTP/1.1",
    ],
)
def test_redirect_listener_only_redirects(foreign: ForeignServer, request_line: bytes) -> None:
    request = request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    response = _plain_http(foreign.redirect_port, request)
    head, _, body = response.partition(b"\r\n\r\n")
    assert status_of(response) == 301, response[:300]
    path = request_line.split(b" ")[1].decode()
    headers = {
        line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")[1:]
        if b":" in line
    }
    assert headers[b"location"].decode() == f"https://127.0.0.1:{foreign.server.port}{path}"
    assert b"set-cookie" not in headers
    assert body == b""


def test_redirect_listener_never_serves_a_form_post(foreign: ForeignServer) -> None:
    form = b"username=admin1&password=x&csrf_token=y"
    request = (
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
        % (len(form), form)
    )
    response = _plain_http(foreign.redirect_port, request)
    assert status_of(response) == 301, response[:300]
    assert b"csrf_token" not in response and b"<html" not in response.lower()


def test_https_port_does_not_speak_plain_http(foreign: ForeignServer) -> None:
    response = _plain_http(
        foreign.server.port, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    assert b"<html" not in response.lower() and b"csrf_token" not in response
    assert status_of(response) in (None, 400), response[:300]
