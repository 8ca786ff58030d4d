"""Shared fixtures for the DICOM tests: a CA per session, doctors, the PTB 12-lead record.

The CAs use ECDSA P-256 (fast); the RSA 3072 doctor keys are generated once per session.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from pydicom.dataset import Dataset

from rekam.dicom import STANDARD_12_LEADS, PatientInfo, StudyInfo, recording_to_dicom
from rekam.ecg import Recording, read_recording
from rekam.pki import (
    CertificateRevocationList,
    Identity,
    KeyAlgorithm,
    certificates_to_pem,
    create_issuing_ca,
    create_root_ca,
    issue_doctor_certificate,
)

PTB_RECORD = Path(__file__).resolve().parents[2].parent / "shared/data/ecg/ptbdb/s0010_re"
UID_ROOT = "1.2.826.0.1.3680043.10.1045"


@dataclass(frozen=True)
class Pki:
    root: Identity
    issuing: Identity
    rsa_doctor: Identity
    rsa_doctor_2: Identity
    ec_doctor: Identity
    revoked_doctor: Identity
    short_lived_doctor: Identity
    foreign_root: Identity
    foreign_doctor: Identity
    crl: CertificateRevocationList
    files: Path

    @property
    def roots(self) -> list:  # type: ignore[type-arg]
        return [self.root.certificate]

    @property
    def intermediates(self) -> list:  # type: ignore[type-arg]
        return [self.issuing.certificate]

    def path(self, name: str) -> Path:
        return self.files / name


def write_identity(directory: Path, name: str, identity: Identity) -> tuple[Path, Path]:
    """Write ``name.key`` (PKCS#8, unencrypted, as dcmsign reads it) and ``name.pem``."""
    key = directory / f"{name}.key"
    key.write_bytes(
        identity.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert = directory / f"{name}.pem"
    cert.write_bytes(certificates_to_pem([identity.certificate]))
    return key, cert


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    files = tmp_path_factory.mktemp("dicom-pki")
    root = create_root_ca("Rekam Test Root", "Rekam Test Clinic", KeyAlgorithm.ECDSA_P256)
    issuing = create_issuing_ca(root, "Rekam Test Issuing", "Rekam Test Clinic",
                                KeyAlgorithm.ECDSA_P256)  # fmt: skip
    rsa_doctor = issue_doctor_certificate(
        issuing, "Dr Ana Cardio", "LIC-1001", "ana@clinic.example", KeyAlgorithm.RSA3072
    )
    rsa_doctor_2 = issue_doctor_certificate(
        issuing, "Dr Ben Other", "LIC-1002", None, KeyAlgorithm.RSA3072
    )
    ec_doctor = issue_doctor_certificate(
        issuing, "Dr Eva Curve", "LIC-1003", None, KeyAlgorithm.ECDSA_P256
    )
    revoked_doctor = issue_doctor_certificate(
        issuing, "Dr Rex Revoked", "LIC-1004", None, KeyAlgorithm.ECDSA_P256
    )
    short_lived_doctor = issue_doctor_certificate(
        issuing, "Dr Sam Short", "LIC-1005", None, KeyAlgorithm.ECDSA_P256, valid_days=1
    )
    foreign_root = create_root_ca("Elsewhere Root", "Elsewhere", KeyAlgorithm.ECDSA_P256)
    foreign_doctor = issue_doctor_certificate(
        foreign_root, "Dr Ana Cardio", "LIC-1001", None, KeyAlgorithm.ECDSA_P256
    )
    crl = CertificateRevocationList.create(issuing)
    crl.revoke(
        revoked_doctor.certificate,
        revoked_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1),
    )
    (files / "root.pem").write_bytes(certificates_to_pem([root.certificate]))
    (files / "issuing.pem").write_bytes(certificates_to_pem([issuing.certificate]))
    (files / "foreign-root.pem").write_bytes(certificates_to_pem([foreign_root.certificate]))
    (files / "crl.pem").write_bytes(crl.to_pem())
    for name, identity in (
        ("rsa-doctor", rsa_doctor),
        ("ec-doctor", ec_doctor),
        ("revoked-doctor", revoked_doctor),
        ("foreign-doctor", foreign_doctor),
    ):
        write_identity(files, name, identity)
    return Pki(
        root, issuing, rsa_doctor, rsa_doctor_2, ec_doctor, revoked_doctor, short_lived_doctor,
        foreign_root, foreign_doctor, crl, files,
    )  # fmt: skip


@pytest.fixture(scope="session")
def ptb_recording() -> Recording:
    if not PTB_RECORD.with_suffix(".hea").is_file():
        pytest.skip(f"PTB record not found at {PTB_RECORD}")
    return read_recording(PTB_RECORD)


def ten_seconds(recording: Recording, start_s: float = 0.0) -> Recording:
    first = int(start_s * recording.fs)
    last = first + int(10 * recording.fs)
    return Recording(recording.samples[first:last], recording.fs, recording.lead_names)


PATIENT = PatientInfo("PTB-0010", "Muster^Hans", datetime.date(1951, 3, 4), "M")
STUDY = StudyInfo(
    accession_number="ACC-42",
    study_description="Resting 12-lead ECG",
    referring_physician="Gp^Greta",
    study_id="1",
)


@pytest.fixture
def ecg_dataset(ptb_recording: Recording) -> Dataset:
    """A fresh, unsigned 10 s 12-lead ECG object from the PTB record."""
    return recording_to_dicom(
        ten_seconds(ptb_recording), PATIENT, STUDY, UID_ROOT, leads=STANDARD_12_LEADS
    )


def peer(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a peer tool (dcmsign, dcmodify, dciodvfy, dcmconv) and capture its output."""
    program = str(args[0])
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (scripts/install-system-deps installs it)")
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, check=False, timeout=timeout
    )


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for a file (warnings ignored), plus the IOD name it printed."""
    result = peer("dciodvfy", path)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]
