"""Real TLS handshakes over 127.0.0.1 between server_tls_context and client_tls_context."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from rekam.pki import (
    TLS12_CIPHERS,
    CertificateNotFound,
    KeyAlgorithm,
    PkiStore,
    WrongPassphrase,
    client_tls_context,
    create_root_ca,
    server_tls_context,
)

from .conftest import PASSPHRASE, write_pem

TIMEOUT = 10.0


@dataclass
class Outcome:
    server_error: BaseException | None = None
    client_error: BaseException | None = None
    version: str | None = None
    cipher: str | None = None
    server_version: str | None = None
    server_cipher: str | None = None
    echoed: bytes = b""
    session_ticket: bool = False

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def handshake(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    server_hostname: str = "localhost",
) -> Outcome:
    """Accept one connection in a thread, connect to it, exchange a few bytes."""
    outcome = Outcome()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(TIMEOUT)
            with server_context.wrap_socket(raw, server_side=True) as tls:
                outcome.server_version = tls.version()
                cipher = tls.cipher()
                outcome.server_cipher = cipher[0] if cipher else None
                tls.sendall(tls.recv(64))
        except BaseException as error:  # recorded for the assertions
            outcome.server_error = error

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
            client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            outcome.version = tls.version()
            cipher = tls.cipher()
            outcome.cipher = cipher[0] if cipher else None
            tls.sendall(b"ping")
            outcome.echoed = tls.recv(64)  # a TLS 1.3 ticket, sent before the echo, is in
            session = tls.session
            outcome.session_ticket = session is not None and session.has_ticket
    except (ssl.SSLError, OSError) as error:
        outcome.client_error = error
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert not thread.is_alive()
    return outcome


@pytest.fixture(scope="module")
def server_context(initialised_store: PkiStore) -> ssl.SSLContext:
    return server_tls_context(
        initialised_store.server_certificate_chain_path,
        initialised_store.server_key_path,
        PASSPHRASE,
    )


def _legacy_client(store: PkiStore) -> ssl.SSLContext:
    """A client that is willing to do more than Rekam's server allows."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=store.root_certificate_path)
    return context


def test_tls13_is_negotiated_with_aes_256_gcm(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    outcome = handshake(server_context, client_tls_context(initialised_store.root_certificate_path))
    assert outcome.ok, (outcome.server_error, outcome.client_error)
    assert outcome.version == "TLSv1.3"
    assert outcome.cipher == "TLS_AES_256_GCM_SHA384"
    assert outcome.echoed == b"ping"


def test_ip_address_host_is_verified(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    outcome = handshake(
        server_context,
        client_tls_context(initialised_store.root_certificate_path),
        server_hostname="127.0.0.1",
    )
    assert outcome.ok, (outcome.server_error, outcome.client_error)


def test_tls12_uses_aes_256_gcm(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    client = client_tls_context(initialised_store.root_certificate_path)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = handshake(server_context, client)
    assert outcome.ok, (outcome.server_error, outcome.client_error)
    assert outcome.version == "TLSv1.2"
    assert outcome.cipher is not None
    assert outcome.cipher.startswith("ECDHE-")
    assert outcome.cipher.endswith("AES256-GCM-SHA384")


def test_server_preference_wins_over_client_order(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    client = _legacy_client(initialised_store)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    # The client prefers ChaCha20 and AES-128; the server's order must still pick AES-256-GCM.
    client.set_ciphers(
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
    )
    outcome = handshake(server_context, client)
    assert outcome.ok, (outcome.server_error, outcome.client_error)
    assert outcome.cipher is not None and "AES256-GCM" in outcome.cipher


def test_chacha20_is_the_fallback(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    client = _legacy_client(initialised_store)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
    outcome = handshake(server_context, client)
    assert outcome.ok, (outcome.server_error, outcome.client_error)
    assert outcome.cipher is not None and "CHACHA20-POLY1305" in outcome.cipher


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_client_is_refused(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    client = _legacy_client(initialised_store)
    # Let this client really offer TLS 1.1, so the refusal has to come from the server.
    client.set_ciphers("ALL:@SECLEVEL=0")
    client.minimum_version = ssl.TLSVersion.TLSv1_1
    client.maximum_version = ssl.TLSVersion.TLSv1_1
    outcome = handshake(server_context, client)
    assert outcome.client_error is not None
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert "UNSUPPORTED_PROTOCOL" in str(outcome.server_error).upper()
    assert outcome.server_version is None


@pytest.mark.parametrize(
    "ciphers",
    [
        "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        "AES256-GCM-SHA384:AES256-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
    ],
    ids=["cbc", "aes128-gcm", "static-rsa", "finite-field-dhe"],
)
def test_tls12_client_with_weak_suites_is_refused(
    initialised_store: PkiStore, server_context: ssl.SSLContext, ciphers: str
) -> None:
    client = _legacy_client(initialised_store)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers(ciphers + ":@SECLEVEL=0")
    outcome = handshake(server_context, client)
    assert outcome.client_error is not None
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert "NO_SHARED_CIPHER" in str(outcome.server_error).upper()


def test_client_refuses_another_host_name(
    initialised_store: PkiStore, server_context: ssl.SSLContext
) -> None:
    outcome = handshake(
        server_context,
        client_tls_context(initialised_store.root_certificate_path),
        server_hostname="evil.example",
    )
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "hostname mismatch" in str(outcome.client_error).lower() or "match" in str(
        outcome.client_error
    )


def test_client_trusts_only_its_root(server_context: ssl.SSLContext, tmp_path: Path) -> None:
    other_root = create_root_ca("Test Root CA", "Test Clinic", KeyAlgorithm.ECDSA_P256)
    client = client_tls_context(write_pem(tmp_path / "other-root.pem", other_root))
    outcome = handshake(server_context, client)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    # And the system trust store is not consulted either.
    assert client.cert_store_stats()["x509_ca"] == 1


def test_context_settings(server_context: ssl.SSLContext, initialised_store: PkiStore) -> None:
    client = client_tls_context(initialised_store.root_certificate_path)
    for context in (server_context, client):
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
        assert context.maximum_version is ssl.TLSVersion.TLSv1_3
        assert context.options & ssl.OP_NO_COMPRESSION
        assert context.options & ssl.OP_NO_RENEGOTIATION
        tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
        assert tls12 == TLS12_CIPHERS.split(":")
    assert server_context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert client.check_hostname and client.verify_mode is ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"]
)
def test_the_server_hands_out_no_session_tickets(
    server_context: ssl.SSLContext, initialised_store: PkiStore, version: ssl.TLSVersion
) -> None:
    client = client_tls_context(initialised_store.root_certificate_path)
    client.maximum_version = client.minimum_version = version
    outcome = handshake(server_context, client)
    assert outcome.ok and outcome.version == version.name.replace("v1_", "v1.")
    assert not outcome.session_ticket
    # control: a stock server context with the same certificate and key does send one
    stock = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    stock.load_cert_chain(
        initialised_store.server_certificate_chain_path,
        initialised_store.server_key_path,
        password=PASSPHRASE,
    )
    assert handshake(stock, client).session_ticket


def test_server_context_errors(initialised_store: PkiStore, tmp_path: Path) -> None:
    with pytest.raises(WrongPassphrase):
        server_tls_context(
            initialised_store.server_certificate_chain_path,
            initialised_store.server_key_path,
            b"wrong",
        )
    with pytest.raises(CertificateNotFound):
        server_tls_context(tmp_path / "none.pem", initialised_store.server_key_path, PASSPHRASE)
