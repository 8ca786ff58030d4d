"""PACS store/retrieve throughput: Rekam's embedded archive against a real Orthanc (DIMSE and
DICOMweb), in the same run.

Run (Orthanc listens on every interface, so run it in a loopback-only network namespace):

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/pacs_storage.py --count 200'

N different signed 10 s 12-lead ECG objects (synthetic signals, RSA-3072 doctor of the clinic's
CA, SHA-256) are made first. Each side then stores all N one by one and retrieves all N one by
one by SOP Instance UID. The embedded archive verifies each signature, encrypts under the
patient's data key and writes an audited index row; Orthanc stores as configured by default
(SQLite index, files on disk, no compression). Every retrieved object is checked to carry a
signature that verifies before timing ends (outside the timed loops).

Over DIMSE, Rekam keeps one association for the whole run (``OrthancDimse.session()``, as
``rekam pacs send`` does), just as the DICOMweb client keeps its HTTP connections alive; the
last side repeats DIMSE with one association per operation (after DICOMweb, so DICOMweb finds
Orthanc in the same state as before). Orthanc runs with ``TCP_NODELAY=1`` in its environment
so that DCMTK, which does its DICOM networking, turns Nagle's algorithm off as Orthanc's HTTP
server already does (``TcpNoDelay``, on by default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench_support import free_port, machine, write_result
from rekam.config import Settings
from rekam.dicom import (
    STANDARD_12_LEADS,
    PatientInfo,
    StudyInfo,
    dataset_to_bytes,
    recording_to_dicom,
    sign_dataset,
    verify_dataset,
)
from rekam.dicom.pacs import Pacs
from rekam.dicom.pacs.orthanc_dicomweb import OrthancDicomWeb
from rekam.dicom.pacs.orthanc_dimse import OrthancDimse
from rekam.ecg import Recording
from rekam.his.embedded_pacs import EmbeddedPacs
from rekam.his.installation import initialise, open_clinic
from rekam.his.pacs_archive import PacsArchiveService
from rekam.his.rbac import Actor, Role
from rekam.pki import KeyAlgorithm

UID_ROOT = "1.2.826.0.1.3680043.10.1045"
ORTHANC = "/usr/sbin/Orthanc"
PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
NURSE = Actor(user_id=None, username="bench", role=Role.NURSE, source_address="local")


def make_objects(count: int, signer: object) -> list[bytes]:
    t = np.arange(5000) / 500.0
    objects = []
    for n in range(count):
        samples = np.stack(
            [0.8 * np.sin(2 * np.pi * (1.0 + 0.003 * n) * t + lead) for lead in range(12)], axis=1
        )
        dataset = recording_to_dicom(
            Recording(samples, 500.0, STANDARD_12_LEADS),
            PatientInfo(f"BENCH-{n % 20:03d}", "Bench^Patient", datetime.date(1970, 1, 1), "F"),
            StudyInfo(accession_number=f"B{n}"),
            UID_ROOT,
            leads=STANDARD_12_LEADS,
        )
        sign_dataset(dataset, signer, mac_algorithm="SHA256")  # type: ignore[arg-type]
        objects.append(dataset_to_bytes(dataset))
    return objects


def start_orthanc(directory: Path) -> tuple[subprocess.Popen[bytes], int, int, tuple[str, str]]:
    http_port, dicom_port = free_port(), free_port()
    auth = ("bench", secrets.token_urlsafe(16))
    config = {
        "Name": "RekamBench", "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"), "StorageCompression": False,
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC",
        "DicomModalities": {"rekam": ["REKAM", "127.0.0.1", free_port()]},
        "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
        "DicomAlwaysAllowGet": True, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True, "RegisteredUsers": {auth[0]: auth[1]},
        "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
    }  # fmt: skip
    path = directory / "orthanc.json"
    path.write_text(json.dumps(config))
    log = (directory / "orthanc.log").open("wb")
    process = subprocess.Popen([ORTHANC, str(path)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "TCP_NODELAY": "1"},
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/system", auth=auth).status_code == 200:
                return process, http_port, dicom_port, auth
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("Orthanc did not start")


def timed(label: str, work: Callable[[], None], count: int) -> float:
    start = time.perf_counter()
    work()
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    print(f"  {label:<28} {rate:8.1f} files/s  ({elapsed:.2f} s)")
    return rate


def run_side(
    name: str, pacs: Pacs, objects: list[bytes], check: Callable[[bytes], bool]
) -> dict[str, float]:
    uids: list[str] = []
    back: list[bytes] = []
    print(name)
    store = timed("store", lambda: uids.extend(pacs.store(o).sop_instance_uid for o in objects),
                  len(objects))  # fmt: skip
    retrieve = timed("retrieve", lambda: back.extend(pacs.get(u) for u in uids), len(objects))
    if not all(check(data) for data in back):
        raise SystemExit(f"{name}: a retrieved object no longer verifies")
    return {"store_files_per_s": round(store, 1), "retrieve_files_per_s": round(retrieve, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        settings = Settings(data_dir=directory / "rekam-data")
        initialise(settings)
        clinic = open_clinic(settings)
        doctor = clinic.pki.issue_doctor("Dr Bench", "LIC-B1", None, KeyAlgorithm.RSA3072)
        roots = [clinic.pki.load_root_certificate()]

        def check(data: bytes) -> bool:
            return all(v.valid for v in verify_dataset(data, roots, doctor.chain)) and bool(data)

        print(f"making {args.count} signed 12-lead ECG objects ...")
        objects = make_objects(args.count, doctor)
        size = sum(len(o) for o in objects) / len(objects)
        (directory / "orthanc").mkdir()
        process, http_port, dicom_port, auth = start_orthanc(directory / "orthanc")
        try:
            dimse = OrthancDimse("127.0.0.1", dicom_port)
            results = {
                "embedded": run_side(
                    "embedded archive (verify + encrypt + index + audit)",
                    EmbeddedPacs(PacsArchiveService.for_clinic(clinic), NURSE), objects, check,
                ),
            }  # fmt: skip
            with dimse.session() as session:
                results["orthanc_dimse"] = run_side(
                    "Orthanc over DIMSE, one association (C-STORE / C-FIND + C-GET)",
                    session, objects, check,
                )  # fmt: skip
                opened = session.associations_opened
            results["orthanc_dicomweb"] = run_side(
                "Orthanc over DICOMweb (STOW-RS / QIDO-RS + WADO-RS)",
                OrthancDicomWeb(f"http://127.0.0.1:{http_port}/dicom-web", auth=auth),
                [o for o in make_objects(args.count, doctor)], check,
            )  # fmt: skip
            results["orthanc_dimse_per_operation"] = run_side(
                "Orthanc over DIMSE, one association per operation",
                dimse, make_objects(args.count, doctor), check,
            )  # fmt: skip
            print(f"  (the DIMSE session opened {opened} association(s) for {args.count} stores "
                  f"and {args.count} retrievals)")  # fmt: skip
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
            clinic.close()
    ratios = {
        f"embedded/{side}_{op}": round(
            results["embedded"][f"{op}_files_per_s"] / results[side][f"{op}_files_per_s"], 2
        )
        for side in ("orthanc_dimse", "orthanc_dicomweb", "orthanc_dimse_per_operation")
        for op in ("store", "retrieve")
    }
    print("ratios (embedded / Orthanc, files/s):")
    for key, value in ratios.items():
        print(f"  {key:<40} {value:.2f}")
    result = {
        "date": datetime.date.today().isoformat(), "machine": machine(), "count": args.count,
        "mean_object_bytes": round(size), "results": results, "ratios": ratios,
    }  # fmt: skip
    print(f"wrote {write_result('pacs_storage', result)}")


if __name__ == "__main__":
    main()
