"""A real Mosquitto broker on 127.0.0.1 for the tests: TLS with a certificate from a CA made by
rekam.pki, no anonymous access, a password file and an access list (devices may only publish
ECG topics, the gateway may only read them, an ``observer`` account may read everything — the
outsider the tests use to look at what the broker carries)."""

from __future__ import annotations

import getpass
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from rekam.pki import KeyAlgorithm, create_root_ca, issue_server_certificate
from support.servers import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

GATEWAY_USER = "rekam-gateway"
DEVICE_USER = "rekam-device"
OBSERVER_USER = "observer"
PASSWORDS = {
    GATEWAY_USER: "Gerbang-Jantung-2026",
    DEVICE_USER: "Alat-Sabuk-2026",
    OBSERVER_USER: "Pengamat-Luar-2026",
}

ACL = f"""\
user {GATEWAY_USER}
topic read rekam/v1/devices/+/ecg

user {DEVICE_USER}
topic write rekam/v1/devices/+/ecg

user {OBSERVER_USER}
topic read #
"""


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).is_file() and Path(MOSQUITTO_PASSWD).is_file()


@dataclass
class MosquittoBroker:
    port: int
    ca_file: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def mosquitto_broker(directory: Path, timeout: float = 10.0) -> Iterator[MosquittoBroker]:
    directory.mkdir(parents=True, exist_ok=True)
    root = create_root_ca("Broker Test Root", "Rekam Clinic", KeyAlgorithm.ECDSA_P256)
    server = issue_server_certificate(root, ["127.0.0.1", "localhost"], KeyAlgorithm.ECDSA_P256)
    ca_file = directory / "broker-ca.pem"
    ca_file.write_bytes(root.certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "broker.pem").write_bytes(server.certificate_chain_pem())
    # Mosquitto cannot open an encrypted key without a prompt; this throw-away key of a test
    # broker lives in the test's temporary directory only.
    (directory / "broker.key").write_bytes(
        server.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    password_file = directory / "passwords"
    password_file.touch(mode=0o600)
    for user, password in PASSWORDS.items():
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", str(password_file), user, password],
            check=True,
            capture_output=True,
        )
    (directory / "acl").write_text(ACL)
    port = free_port()
    log_path = directory / "mosquitto.log"
    config = directory / "mosquitto.conf"
    config.write_text(
        f"""\
user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
password_file {password_file}
acl_file {directory / "acl"}
persistence false
log_dest file {log_path}
log_type error
log_type warning
log_type notice
connection_messages true
listener {port} 127.0.0.1
cafile {ca_file}
certfile {directory / "broker.pem"}
keyfile {directory / "broker.key"}
tls_version tlsv1.2
"""
    )
    process = subprocess.Popen(
        [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_tls(port, ca_file, process, timeout)
        yield MosquittoBroker(port, ca_file, process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_for_tls(
    port: int, ca_file: Path, process: subprocess.Popen[bytes], timeout: float
) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"mosquitto exited early: {stderr}")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")
