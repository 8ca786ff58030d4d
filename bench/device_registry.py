"""Devices that connect together: their keys loaded one query each vs one query per batch.

Run: .venv/bin/python bench/device_registry.py [--devices 500] [--rounds 6]

After a server restart (or a ward's network coming back) hundreds of devices send their first
packets within a second, and the analysis process needs each one's key, alarm limits and replay
floor. Each case builds a fresh ``MonitoringService`` (an empty cache, as in a just-started
analysis process) over an installation with ``--devices`` paired devices and times, in the same
run, alternating:

* **one by one** — a key lookup per device, each loading its device (what the gateway did before
  it named a batch's new devices to ``prefetch``, and still does for a device it meets alone);
* **together** — ``prefetch_devices`` for all of them, then the same lookups (from memory).

Then, with every device held, a patient's alarm limits change (``forget_device(None)``, what
setting limits tells every process): the lookup of every device right after. The cache used to
drop all its entries, so that round cost what "one by one" costs; it now answers them as they
were and reloads them in the background, in batches.

On SQLite (the embedded default) and on a real PostgreSQL server started for the run, when one
is installed. Wall-clock time; the median of the rounds and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_support import machine, write_result
from monitor import NURSE, PATIENTS, _bench_patient
from rekam.config import Settings
from rekam.his.installation import initialise, open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.store.models import MonitorDevice
from support.postgres import postgres_bin, postgres_server


def look_up_all(service: MonitoringService, ids: list[uuid.UUID]) -> None:
    """Every device's key, as the gateway asks for it (each must have one)."""
    for device_id in ids:
        if service.key_lookup(device_id) is None:
            raise RuntimeError(f"device {device_id} has no key")


def measure(settings: Settings, rounds: int) -> dict[str, float]:
    clinic = open_clinic(settings)
    try:
        with clinic.database.transaction() as session:
            ids = [uuid.UUID(row) for row in session.scalars(select(MonitorDevice.id))]
        one_by_one: list[float] = []
        together: list[float] = []
        after_limits: list[float] = []
        for _ in range(rounds):
            service = MonitoringService(clinic.database, clinic.fields)
            started = time.perf_counter()
            look_up_all(service, ids)
            one_by_one.append(time.perf_counter() - started)
            service.close()
            service = MonitoringService(clinic.database, clinic.fields)
            started = time.perf_counter()
            service.prefetch_devices(ids)
            look_up_all(service, ids)
            together.append(time.perf_counter() - started)
            if service._registry.loads != 1:
                raise RuntimeError("the devices were not loaded in one go")
            service.forget_device(None)  # alarm limits changed
            started = time.perf_counter()
            look_up_all(service, ids)
            after_limits.append(time.perf_counter() - started)
            service.close()
        each = statistics.median(one_by_one)
        batch = statistics.median(together)
        return {
            "devices": len(ids),
            "one_by_one_ms": round(each * 1e3, 1),
            "one_by_one_per_device_ms": round(each / len(ids) * 1e3, 2),
            "together_ms": round(batch * 1e3, 1),
            "ratio": round(each / batch, 1),
            "after_limits_change_ms": round(statistics.median(after_limits) * 1e3, 2),
        }
    finally:
        clinic.close()


def installation(directory: Path, database_url: str | None, devices: int) -> Settings:
    """A fresh installation with ``devices`` paired devices, spread over patients with alarm
    limits set (so the load reads limits too, as in a clinic)."""
    settings = Settings(data_dir=directory / "rekam-data", database_url=database_url)
    initialise(settings)
    clinic = open_clinic(settings)
    try:
        service = MonitoringService.for_clinic(clinic)
        patients = [clinic.patients.register(NURSE, _bench_patient(n)).id for n in range(PATIENTS)]
        for patient_id in patients:
            service.set_thresholds(NURSE, patient_id, service.thresholds_from(50, 100, 5, 3))
        for n in range(devices):
            public = X25519PrivateKey.generate().public_key().public_bytes_raw()
            service.pair_device(NURSE, patients[n % PATIENTS], public, f"bench {n}")
    finally:
        MonitoringService.for_clinic(clinic).close()
        clinic.close()
    return settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    print(f"# Devices connecting together — {machine()}\n")
    rows = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rekam-bench-reg-")))
        databases: list[tuple[str, str | None]] = [("SQLite", None)]
        if postgres_bin() is not None:
            server = stack.enter_context(postgres_server())
            databases.append(("PostgreSQL", server.create_database()))
        for name, url in databases:
            settings = installation(tmp / name, url, args.devices)
            row = {"database": name, **measure(settings, args.rounds)}
            rows.append(row)
            print(row, flush=True)
    print(
        "\n| database | devices | one by one ms (per device) | together ms | ratio | "
        "all lookups after a limits change ms |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['database']} | {r['devices']} | {r['one_by_one_ms']} "
            f"({r['one_by_one_per_device_ms']}) | {r['together_ms']} | {r['ratio']}× | "
            f"{r['after_limits_change_ms']} |"
        )
    print(f"\nwritten to {write_result('device_registry', {'machine': machine(), 'rows': rows})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
