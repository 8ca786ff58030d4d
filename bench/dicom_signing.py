"""DICOM ECG signing and verification: Rekam in one process against DCMTK's dcmsign per file.

Run: .venv/bin/python bench/dicom_signing.py [--count 200] [--key rsa|ecdsa]

200 different 10 s 12-lead ECG objects are cut from the PTB record s0010_re (windows at
different offsets) and written to a temporary directory. Rekam reads, signs (SHA-256, Base RSA
profile for RSA keys) and writes each file in this process with ``sign_file`` (what ``rekam dicom
sign`` does), then reads and verifies each file from disk; ``dcmsign`` does the same with one
process per file, as a PACS hook or script would call it. Both sides sign with the same doctor
key and verify against the same CA certificates, in the same run, taking turns over blocks of 20
files. Every file each side signs is checked by the other side before timing ends. The
in-process milliseconds are ``sign_dataset`` and ``verify_dataset`` alone on objects already in
memory. Finally the RSA private-key operation is timed in one and in two threads (best of 3).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from rekam.dicom import (
    STANDARD_12_LEADS,
    PatientInfo,
    StudyInfo,
    read_dicom,
    recording_to_dicom,
    sign_dataset,
    sign_file,
    verify_dataset,
    write_dicom,
)
from rekam.ecg import Recording, read_recording
from rekam.pki import (
    Identity,
    KeyAlgorithm,
    certificates_to_pem,
    create_issuing_ca,
    create_root_ca,
    issue_doctor_certificate,
)

PTB = Path(__file__).resolve().parents[1].parent / "shared/data/ecg/ptbdb/s0010_re"
UID_ROOT = "1.2.826.0.1.3680043.10.1045"


@dataclass
class Timing:
    files: int
    seconds: float
    call_ms: list[float]

    def __add__(self, other: Timing) -> Timing:
        return Timing(
            self.files + other.files, self.seconds + other.seconds, self.call_ms + other.call_ms
        )

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds

    @property
    def ms_per_file(self) -> float:
        return 1000 * self.seconds / self.files

    @property
    def median_call_ms(self) -> float:
        ordered = sorted(self.call_ms)
        return ordered[len(ordered) // 2] if ordered else float("nan")


def blocks(paths: list[Path], size: int = 20) -> list[list[Path]]:
    return [paths[start : start + size] for start in range(0, len(paths), size)]


def make_objects(directory: Path, count: int) -> list[Path]:
    recording = read_recording(PTB)
    window = int(10 * recording.fs)
    step = max(1, (recording.n_samples - window) // max(1, count - 1))
    paths = []
    for index in range(count):
        first = min(index * step, recording.n_samples - window)
        piece = Recording(
            recording.samples[first : first + window], recording.fs, recording.lead_names
        )
        patient = PatientInfo(f"PTB-{index:04d}", "Muster^Hans", datetime.date(1951, 3, 4), "M")
        ds = recording_to_dicom(
            piece, patient, StudyInfo(accession_number=f"A{index}"), UID_ROOT,
            leads=STANDARD_12_LEADS,
        )  # fmt: skip
        path = directory / f"ecg-{index:04d}.dcm"
        write_dicom(ds, path)
        paths.append(path)
    return paths


def write_pki(directory: Path, algorithm: KeyAlgorithm) -> tuple[Identity, Identity, Identity]:
    root = create_root_ca("Bench Root", "Bench Clinic", KeyAlgorithm.ECDSA_P256)
    issuing = create_issuing_ca(root, "Bench Issuing", "Bench Clinic", KeyAlgorithm.ECDSA_P256)
    doctor = issue_doctor_certificate(issuing, "Dr Bench Mark", "LIC-9", None, algorithm)
    (directory / "root.pem").write_bytes(certificates_to_pem([root.certificate]))
    (directory / "issuing.pem").write_bytes(certificates_to_pem([issuing.certificate]))
    (directory / "doctor.pem").write_bytes(certificates_to_pem([doctor.certificate]))
    (directory / "doctor.key").write_bytes(
        doctor.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return root, issuing, doctor


def rekam_sign(paths: list[Path], out: Path, doctor: Identity, profile: str) -> Timing:
    """Each file read, signed and written with ``sign_file`` (what ``rekam dicom sign`` does)."""
    start = time.perf_counter()
    for path in paths:
        sign_file(path, out / path.name, doctor, mac_algorithm="SHA256", profile=profile)
    seconds = time.perf_counter() - start
    return Timing(len(paths), seconds, sign_calls(paths, doctor, profile))


def sign_calls(paths: list[Path], doctor: Identity, profile: str) -> list[float]:
    """Untimed pass: ``sign_dataset`` alone on objects already in memory, per call."""
    calls = []
    for path in paths:
        ds = read_dicom(path)
        t0 = time.perf_counter()
        sign_dataset(ds, doctor, mac_algorithm="SHA256", profile=profile)
        calls.append(1000 * (time.perf_counter() - t0))
    return calls


def rekam_verify(paths: list[Path], root: Identity, issuing: Identity) -> Timing:
    calls = []
    start = time.perf_counter()
    for path in paths:
        ds = read_dicom(path)
        t0 = time.perf_counter()
        verdicts = verify_dataset(ds, [root.certificate], [issuing.certificate])
        calls.append(1000 * (time.perf_counter() - t0))
        if not verdicts or not all(v.valid for v in verdicts):
            raise SystemExit(f"Rekam did not verify {path}: {verdicts}")
    return Timing(len(paths), time.perf_counter() - start, calls)


def rsa_threads(doctor: Identity, operations: int = 400) -> tuple[float, float]:
    """ms per RSA private-key operation in one thread and in two (does it release the GIL?)."""
    key = doctor.private_key
    if not isinstance(key, rsa.RSAPrivateKey):
        return float("nan"), float("nan")
    digest = hashlib.sha256(b"bench").digest()

    def one(_: int) -> None:
        key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))

    serial, threaded = [], []
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):  # alternate, keep the best: the cores are shared with others
            t0 = time.perf_counter()
            for index in range(operations):
                one(index)
            serial.append(1000 * (time.perf_counter() - t0) / operations)
            t0 = time.perf_counter()
            list(pool.map(one, range(operations)))
            threaded.append(1000 * (time.perf_counter() - t0) / operations)
    return min(serial), min(threaded)


def dcmsign_sign(paths: list[Path], out: Path, pki: Path, profile: str) -> Timing:
    start = time.perf_counter()
    for path in paths:
        subprocess.run(
            ["dcmsign", "--sign", str(pki / "doctor.key"), str(pki / "doctor.pem"),
             f"--profile-{profile}", "--mac-sha256", str(path), str(out / path.name)],
            check=True, capture_output=True,
        )  # fmt: skip
    return Timing(len(paths), time.perf_counter() - start, [])


def dcmsign_verify(paths: list[Path], pki: Path) -> Timing:
    start = time.perf_counter()
    for path in paths:
        result = subprocess.run(
            ["dcmsign", "--verify", "--add-cert-file", str(pki / "root.pem"),
             "--add-cert-file", str(pki / "issuing.pem"), str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0 or "Verification : OK" not in result.stderr:
            raise SystemExit(f"dcmsign did not verify {path}: {result.stderr}")
    return Timing(len(paths), time.perf_counter() - start, [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--key", choices=["rsa", "ecdsa"], default="rsa")
    args = parser.parse_args()
    if shutil.which("dcmsign") is None:
        raise SystemExit("dcmsign not found: install dcmtk (scripts/install-system-deps)")
    if not PTB.with_suffix(".hea").is_file():
        raise SystemExit(f"PTB record not found at {PTB}")
    algorithm = KeyAlgorithm.RSA3072 if args.key == "rsa" else KeyAlgorithm.ECDSA_P256
    profile = "base" if args.key == "rsa" else "none"
    with tempfile.TemporaryDirectory(prefix="rekam-dicom-bench-") as temp:
        work = Path(temp)
        for name in ("unsigned", "rekam", "dcmsign", "pki"):
            (work / name).mkdir()
        root, issuing, doctor = write_pki(work / "pki", algorithm)
        paths = make_objects(work / "unsigned", args.count)
        size_kb = paths[0].stat().st_size / 1024

        # The two sides take turns over blocks of files, so that a change in the machine's load
        # (the cores are shared) weighs on both alike.
        r_sign, d_sign = Timing(0, 0.0, []), Timing(0, 0.0, [])
        for block in blocks(paths):
            r_sign += rekam_sign(block, work / "rekam", doctor, profile)
            d_sign += dcmsign_sign(block, work / "dcmsign", work / "pki", profile)
        rekam_signed = sorted((work / "rekam").iterdir())
        dcmsign_signed = sorted((work / "dcmsign").iterdir())
        r_verify, d_verify = Timing(0, 0.0, []), Timing(0, 0.0, [])
        for r_block, d_block in zip(blocks(rekam_signed), blocks(dcmsign_signed), strict=True):
            r_verify += rekam_verify(r_block, root, issuing)
            d_verify += dcmsign_verify(d_block, work / "pki")
        # Cross-checks (not timed): each side verifies what the other signed.
        rekam_verify(dcmsign_signed, root, issuing)
        dcmsign_verify(rekam_signed, work / "pki")

    version = subprocess.run(["dcmsign", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v(\d+\.\d+\.\d+)", version)
    dcmtk = found.group(1) if found else "?"
    key = "RSA 3072, Base RSA profile" if args.key == "rsa" else "ECDSA P-256, no profile"
    print(f"## DICOM signing — {args.count} 12-lead ECG objects ({size_kb:.0f} KB each), "
          f"SHA-256, {key}")  # fmt: skip
    print(
        f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, dcmsign {dcmtk}; cross-verified both ways\n"
    )
    print("| operation | Rekam (1 process) files/s | dcmsign (process/file) files/s | ratio "
          "| Rekam ms/file | dcmsign ms/file | Rekam in-process call ms (median) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rekam, dcmtk_timing in (("sign", r_sign, d_sign), ("verify", r_verify, d_verify)):
        ratio = rekam.files_per_second / dcmtk_timing.files_per_second
        print(
            f"| {name} | {rekam.files_per_second:.0f} | {dcmtk_timing.files_per_second:.0f} | "
            f"{ratio:.1f}× | {rekam.ms_per_file:.1f} | {dcmtk_timing.ms_per_file:.1f} | "
            f"{rekam.median_call_ms:.2f} |"
        )
    serial, threaded = rsa_threads(doctor)
    if serial == serial:  # not NaN: an RSA key
        print(
            f"\nRSA 3072 private-key operation: {serial:.2f} ms in one thread, {threaded:.2f} ms "
            "per operation with two threads on two cores "
            f"({'it releases' if threaded < 0.75 * serial else 'it holds'} the GIL)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
