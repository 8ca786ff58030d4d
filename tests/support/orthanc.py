"""Start a real Orthanc (Debian ``orthanc``, DICOMweb plugin) for a test run, and stop it.

Orthanc 1.10 listens on every interface; the tests run inside the private network namespace
``scripts/run-tests`` creates (loopback only), so nothing outside can reach it. Its REST API and
DICOMweb need HTTP basic authentication with a password made for this run; DICOM accepts only
the registered AE title ``REKAM`` (``DicomCheckCalledAet``, known modalities only).

Orthanc runs with ``TCP_NODELAY=1`` in its environment, as a deployment should: DCMTK, which
does Orthanc's DICOM networking, otherwise leaves Nagle's algorithm on for its DICOM sockets and
every DIMSE answer waits about 40 ms for the client's delayed acknowledgement (Orthanc's HTTP
server turns Nagle off by itself, ``TcpNoDelay``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.servers import free_port

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
CALLING_AET = "REKAM"
ORTHANC_AET = "ORTHANC"


@dataclass
class OrthancServer:
    http_port: int
    dicom_port: int
    username: str
    password: str
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def rest(self) -> httpx.Client:
        """A client of Orthanc's own REST API (to check results independently)."""
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30)

    def log(self) -> str:
        return (self.directory / "orthanc.log").read_text(errors="replace")


def orthanc_available() -> bool:
    return ORTHANC.is_file() and DICOMWEB_PLUGIN.is_file()


@contextmanager
def orthanc_server(directory: Path, timeout: float = 30.0) -> Iterator[OrthancServer]:
    http_port, dicom_port = free_port(), free_port()
    username, password = "rekam", secrets.token_urlsafe(18)
    config = {
        "Name": "RekamTestPACS",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"),
        "StorageCompression": False,
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomCheckModalityHost": True,
        "DicomModalities": {
            "rekam": {
                "AET": CALLING_AET,
                "Host": "127.0.0.1",
                "Port": free_port(),
                "AllowEcho": True,
                "AllowFind": True,
                "AllowGet": True,
                "AllowMove": False,
                "AllowStore": True,
            }
        },
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {username: password},
        "HttpDescribeErrors": True,
        "ExecuteLuaEnabled": False,
        "RestApiWriteToFileSystemEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        "SaveJobs": False,
        "ConcurrentJobs": 1,
    }
    config_path = directory / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    os.chmod(config_path, 0o600)
    log_path = directory / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(ORTHANC), str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env={**os.environ, "TCP_NODELAY": "1"},
            start_new_session=True,
        )
    server = OrthancServer(http_port, dicom_port, username, password, directory, process)
    try:
        _wait_until_ready(server, timeout)
        yield server
    finally:
        _stop(process)


def _wait_until_ready(server: OrthancServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"Orthanc exited early:\n{server.log()[-3000:]}")
        try:
            with server.rest() as client:
                if client.get("/system").status_code == 200:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"Orthanc did not start in {timeout} s:\n{server.log()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def have_dcmsign() -> bool:
    return shutil.which("dcmsign") is not None
