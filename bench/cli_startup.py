"""How long does a ``rekam`` command take to start, and how much memory does it take?

Each command runs as a real process, in rounds that alternate the commands so machine noise hits
all of them alike. Two references run in the same rounds:

* the bare interpreter (``python -c pass``): what no command can go below;
* ``rekam --help``, which lists every group and so imports every group's libraries. Before the
  groups were loaded lazily, every command paid that.

``rekam serve`` is timed from its start until it accepts TLS connections (the app, and with it
the analysis process, is started by then); its peak memory is the server process's own.

Run: ``.venv/bin/python bench/cli_startup.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_support import (
    SERVER_PIDS,
    BenchInstallation,
    machine,
    peak_memory_mib,
    server_process,
    write_result,
)

REKAM = str(Path(sys.executable).with_name("rekam"))

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "rekam version": [REKAM, "version"],
    "rekam user --help": [REKAM, "user", "--help"],
    "rekam ecg analyze --help": [REKAM, "ecg", "analyze", "--help"],
    "rekam monitor --help": [REKAM, "monitor", "--help"],
    "rekam --help (every group)": [REKAM, "--help"],
}
EVERY_GROUP = "rekam --help (every group)"
SERVE = "rekam serve (accepts TLS)"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one run."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def serve_once(installation: BenchInstallation) -> tuple[float, float]:
    """Seconds until a new ``rekam serve`` accepts TLS connections, and its peak resident MiB."""
    start = time.perf_counter()
    with server_process(installation, tls=True) as port:
        elapsed = time.perf_counter() - start
        return elapsed, peak_memory_mib(SERVER_PIDS[port])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        installation = BenchInstallation(Path(tmp) / "rekam-data")
        env = {**installation.env(), "COLUMNS": "100"}
        subprocess.run([REKAM, "init"], env=env, capture_output=True, check=True)
        names = [*COMMANDS, SERVE]
        times: dict[str, list[float]] = {name: [] for name in names}
        memory: dict[str, list[float]] = {name: [] for name in names}
        for round_number in range(args.rounds + 1):  # round 0 warms file caches and byte code
            for name in names:
                if name == SERVE:
                    elapsed, peak = serve_once(installation)
                else:
                    elapsed, peak = run_once(COMMANDS[name], env)
                if round_number:
                    times[name].append(elapsed)
                    memory[name].append(peak)
    every = statistics.median(times[EVERY_GROUP])
    bare = statistics.median(times["python -c pass"])
    print(f"{machine()}; {args.rounds} alternating rounds, median of each")
    print(
        f"{'command':28} {'start s':>8} {'× every group':>14} {'× bare python':>14} {'peak MiB':>9}"
    )
    rows = {}
    for name in names:
        median = statistics.median(times[name])
        peak = max(memory[name])
        rows[name] = {
            "median_s": round(median, 3),
            "ratio_to_every_group": round(median / every, 3),
            "ratio_to_bare_python": round(median / bare, 2),
            "peak_memory_mib": round(peak, 1),
        }
        print(f"{name:28} {median:8.3f} {median / every:14.2f} {median / bare:14.1f} {peak:9.0f}")
    path = write_result(
        "cli_startup", {"machine": machine(), "rounds": args.rounds, "commands": rows}
    )
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
