"""Hardened ``ssl.SSLContext`` objects for Rekam's servers and clients.

What Python's :mod:`ssl` cannot restrict: the TLS 1.3 cipher suite list. ``set_ciphers`` only
governs TLS 1.2 and below, and Python exposes no ``SSL_CTX_set_ciphersuites``, so TLS 1.3 keeps
OpenSSL's default suites (TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,
TLS_AES_128_GCM_SHA256). All three are AEAD suites with forward secrecy, and
``OP_CIPHER_SERVER_PREFERENCE`` makes the server's order win, in which AES-256-GCM comes first; a
client that offers it therefore gets it, and AES-128-GCM is only used by a client that offers
nothing stronger.

The server hands out no session tickets, in TLS 1.2 or 1.3 (``OP_NO_TICKET``,
``num_tickets = 0``). OpenSSL encrypts tickets under a key it makes once per context and keeps
for the life of the process; a TLS 1.2 session resumed from a ticket reuses its master secret, so
that one key, if it ever leaked from a long-running server, would open every such recorded
session. (Python's server keeps no session cache either: no connection is resumed, each does one
full handshake, ECDHE and one signature.) Tickets also trip clients that read and write one TLS
socket from two threads, as Python's threaded WebSocket client does: with TLS 1.3 tickets,
between one connection in 400 and one in 2,000 never delivered its opening request (the server
waited for it until its header deadline closed the connection); none of 8,000 without tickets.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from rekam.pki.errors import CertificateNotFound, InvalidCertificate, PkiError
from rekam.pki.identity import load_certificates_pem
from rekam.pki.keys import load_private_key_pem

#: TLS 1.2 suites: ECDHE key exchange with AEAD only, AES-256-GCM first, then ChaCha20-Poly1305.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as error:
        raise CertificateNotFound(f"The {what} file {path} does not exist.") from error
    except OSError as error:
        raise PkiError(f"The {what} file {path} cannot be read: {error.strerror}.") from error


def _harden(context: ssl.SSLContext) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def server_tls_context(
    chain_path: Path,
    key_path: Path,
    passphrase: bytes,
    *,
    client_ca_path: Path | None = None,
) -> ssl.SSLContext:
    """A TLS server context: TLS 1.2-1.3, ECDHE + AEAD suites, server cipher preference, no
    session tickets.

    ``chain_path`` holds the server certificate followed by its issuing CA; ``key_path`` the
    encrypted PKCS#8 key, opened with ``passphrase`` (it is never written out in plaintext).
    With ``client_ca_path`` the server also requires a client certificate issued under that root.
    Raises :class:`WrongPassphrase`, :class:`CertificateNotFound` or :class:`PkiError`.
    """
    chain = load_certificates_pem(_read(chain_path, "certificate chain"))
    key = load_private_key_pem(_read(key_path, "private key"), passphrase)
    if chain[0].public_key() != key.public_key():
        raise PkiError(
            f"The private key in {key_path} does not belong to the certificate in {chain_path}."
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(context)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_TICKET
    context.num_tickets = 0  # TLS 1.3: no NewSessionTicket at all (see the module)
    try:
        context.load_cert_chain(certfile=chain_path, keyfile=key_path, password=passphrase)
    except ssl.SSLError as error:
        raise PkiError(f"The server certificate and key cannot be used: {error.reason}.") from error
    if client_ca_path is not None:
        _trust_only(context, client_ca_path)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls_context(root_pem_path: Path) -> ssl.SSLContext:
    """A TLS client context that trusts only the root in ``root_pem_path`` and checks host names."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(context)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    _trust_only(context, root_pem_path)
    return context


def _trust_only(context: ssl.SSLContext, root_pem_path: Path) -> None:
    data = _read(root_pem_path, "root certificate")
    load_certificates_pem(data)
    try:
        context.load_verify_locations(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError) as error:
        raise InvalidCertificate(f"{root_pem_path} is not a usable root certificate.") from error
