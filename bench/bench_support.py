"""Shared by Rekam's benchmarks: a throw-away installation and server processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rekam.his.rbac import Role

OUT = Path(__file__).with_name("out")
PASSWORD = "Bench-Mark-Sehat-2026"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_result(name: str, result: dict[str, object]) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


@dataclass
class BenchInstallation:
    data_dir: Path

    @property
    def root_pem(self) -> Path:
        return self.data_dir / "pki" / "root.pem"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REKAM_DATA_DIR": str(self.data_dir),
            # the benchmark logs in thousands of times from one address
            "REKAM_UNAUTHENTICATED_RATE_PER_SECOND": "1000000",
            "REKAM_UNAUTHENTICATED_BURST": "1000000",
        }


def make_installation(directory: Path, users: list[tuple[str, Role]]) -> BenchInstallation:
    data_dir = directory / "rekam-data"
    # Imported here, so a benchmark of small processes (cli_startup) stays small itself: a child's
    # peak memory, as the kernel reports it, includes the parent image it was started from.
    from rekam.config import Settings
    from rekam.his.installation import initialise, open_clinic
    from rekam.his.rbac import Actor

    settings = Settings(data_dir=data_dir)
    initialise(settings)
    clinic = open_clinic(settings)
    try:
        for username, role in users:
            clinic.accounts.create_user(Actor.system(), username, username, role, PASSWORD)
    finally:
        clinic.close()
    return BenchInstallation(data_dir)


SERVER_PIDS: dict[int, int] = {}
"""Port → process id of the servers :func:`server_process` started (for CPU accounting)."""


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, all cores (Linux /proc/stat).
    Stolen time is what the host gave to other machines while this one wanted to run."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def child_pids(pid: int) -> list[int]:
    """The running child processes of a process (e.g. the server's analysis process)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _over_children(pid: int, measure: Callable[[int], float]) -> float:
    """``measure`` of each of a process's running children, added up."""
    total = 0.0
    for child in child_pids(pid):
        with suppress(FileNotFoundError):
            total += measure(child)
    return total


def children_cpu_seconds(pid: int) -> float:
    """CPU time of a process's running children, together."""
    return _over_children(pid, process_cpu_seconds)


def peak_memory_mib(pid: int) -> float:
    """The most resident memory a process has held so far (VmHWM, Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_peak_memory_mib(pid: int) -> float:
    """The peak resident memory of a process's running children, added up."""
    return _over_children(pid, peak_memory_mib)


@contextmanager
def server_process(
    installation: BenchInstallation, tls: bool, extra_env: dict[str, str] | None = None
) -> Iterator[int]:
    """``rekam serve`` (TLS) or the same app and protocol without TLS, for comparison only."""
    port = free_port()
    env = {**installation.env(), "REKAM_PORT": str(port), **(extra_env or {})}
    if tls:
        command = [str(Path(sys.executable).with_name("rekam")), "serve"]
    else:
        command = [sys.executable, str(Path(__file__).with_name("plain_http_server.py"))]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(port, installation.root_pem if tls else None)
        SERVER_PIDS[port] = process.pid
        yield port
    finally:
        SERVER_PIDS.pop(port, None)
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _wait_for(port: int, root_pem: Path | None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if root_pem is not None:
                    context = ssl.create_default_context(cafile=str(root_pem))
                    with context.wrap_socket(sock, server_hostname="127.0.0.1"):
                        return
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")
