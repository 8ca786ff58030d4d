"""Start a real ``rekam serve`` process on 127.0.0.1 for a test, and stop it afterwards."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from rekam.config import Settings
from rekam.his.installation import initialise, open_clinic
from rekam.his.rbac import Actor, Role

REKAM = str(Path(sys.executable).with_name("rekam"))
PASSWORD = "Pagi-Cerah-Sehat-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Installation:
    """An initialised data directory with known users (all with password PASSWORD)."""

    data_dir: Path
    env: dict[str, str]
    users: dict[str, Role] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, **self.overrides)  # type: ignore[arg-type]

    @property
    def root_pem(self) -> Path:
        return self.data_dir / "pki" / "root.pem"

    def add_user(self, username: str, role: Role, password: str = PASSWORD) -> None:
        clinic = open_clinic(self.settings)
        try:
            clinic.accounts.create_user(Actor.system(), username, username.title(), role, password)
        finally:
            clinic.close()
        self.users[username] = role


def make_installation(
    directory: Path, key_algorithm: str = "rsa3072", **settings: str
) -> Installation:
    data_dir = directory / "rekam-data"
    overrides = {"key_algorithm": key_algorithm, **settings}
    env = {"REKAM_DATA_DIR": str(data_dir)}
    env.update({f"REKAM_{k.upper()}": v for k, v in overrides.items()})
    installation = Installation(data_dir=data_dir, env=env, overrides=overrides)
    initialise(installation.settings)
    return installation


@dataclass
class RunningServer:
    installation: Installation
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.installation.root_pem))

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(
    installation: Installation, extra_env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[RunningServer]:
    port = free_port()
    env = {**os.environ, **installation.env, "REKAM_PORT": str(port), "REKAM_HOST": "127.0.0.1"}
    env.update(extra_env or {})
    log_path = installation.data_dir.parent / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [REKAM, "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=installation.data_dir.parent,
            start_new_session=True,
        )
    server = RunningServer(installation, port, process, log_path)
    try:
        _wait_until_healthy(server, timeout)
        yield server
    finally:
        _stop(process)


def _wait_until_healthy(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    context = server.ssl_context()
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"rekam serve exited early:\n{server.log()}")
        try:
            response = httpx.get(f"{server.url}/healthz", verify=context, timeout=2)
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"rekam serve did not become healthy:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> str:
    """Log in through the HTML form like a browser; returns the session's CSRF token."""
    page = client.get("/login")
    page.raise_for_status()
    token = _hidden_value(page.text, "csrf_token")
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/", response.headers["location"]
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    return _hidden_value(dashboard.text, "csrf_token")


def _hidden_value(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
