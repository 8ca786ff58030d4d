"""Run every benchmark in turn (each prints its own table and writes bench/out/<name>.json)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    "tls_overhead.py",
    "his_response_time.py",
    "crypto_throughput.py",
    "ecg_detection.py",
    "dicom_signing.py",
    "pacs_storage.py",
    "device_analysis.py",
    "device_registry.py",
    "monitor.py",
    "cli_startup.py",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        script = HERE / name
        if not script.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
