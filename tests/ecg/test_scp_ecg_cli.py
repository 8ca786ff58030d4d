"""``rekam ecg to-scp`` and ``rekam ecg to-dicom FILE.scp``: real files, checked by dciodvfy."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from rekam.cli.main import app
from rekam.ecg import read_recording, read_scp_ecg

from .conftest import DATA_DIR

PTB = DATA_DIR / "ptbdb/s0010_re"
runner = CliRunner()


@pytest.fixture(scope="module")
def scp_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PTB.with_suffix(".hea").is_file():
        pytest.skip(f"PTB record not found at {PTB}")
    out = tmp_path_factory.mktemp("scp") / "ptb.scp"
    result = runner.invoke(app, [
        "ecg", "to-scp", str(PTB), str(out), "--patient-id", "PTB-0010",
        "--last-name", "Muster", "--first-name", "Hans", "--birth-date", "1951-03-04",
        "--sex", "M", "--acquired-at", "2024-05-06T07:08:09", "--institution", "Klinik Rekam",
        "--duration", "10", "--encoding", "second-difference", "--huffman",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "15 leads × 10000 samples" in " ".join(result.output.split())
    return out


def _dciodvfy(path: Path) -> tuple[list[str], str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (scripts/install-system-deps installs it)")
    done = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    output = done.stdout + done.stderr
    return [line for line in output.splitlines() if line.startswith("Error")], output


def test_to_scp_writes_what_the_record_holds(scp_file: Path) -> None:
    back = read_scp_ecg(scp_file)
    original = read_recording(PTB)
    np.testing.assert_array_equal(
        np.rint(back.recording.samples * 2000), np.rint(original.samples[:10000] * 2000)
    )
    d = back.demographics
    assert (d.patient_id, d.last_name, d.first_name, d.sex) == ("PTB-0010", "Muster", "Hans", "M")
    assert d.birth_date == datetime.date(1951, 3, 4)
    assert d.acquired_at == datetime.datetime(2024, 5, 6, 7, 8, 9)
    assert back.huffman and back.encoding == "second-difference"


@pytest.mark.parametrize(
    ("leads", "iod"),
    [(None, "GeneralECG"), ("I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6", "TwelveLeadECG")],
)
def test_scp_to_dicom_passes_dciodvfy(
    scp_file: Path, tmp_path: Path, leads: str | None, iod: str
) -> None:
    out = tmp_path / "ecg.dcm"
    args = ["ecg", "to-dicom", str(scp_file), str(out), "--uid-root", "1.2.826.0.1.3680043.10.1045"]
    if leads:
        args += ["--leads", leads]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    errors, output = _dciodvfy(out)
    assert errors == [], output
    assert iod in output
    ds = pydicom.dcmread(out)
    # the patient comes from the SCP-ECG header, not from options
    assert (str(ds.PatientID), str(ds.PatientName)) == ("PTB-0010", "Muster^Hans")
    assert (ds.PatientBirthDate, ds.PatientSex) == ("19510304", "M")
    assert ds.AcquisitionDateTime.startswith("20240506070809")
    assert ds.InstitutionName == "Klinik Rekam"
    group = ds.WaveformSequence[0]
    assert int(group.NumberOfWaveformSamples) == 10000


def test_options_override_the_scp_header(scp_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ecg.dcm"
    result = runner.invoke(
        app,
        ["ecg", "to-dicom", str(scp_file), str(out), "--patient-id", "OTHER-1",
         "--patient-name", "Lain^Nama"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(out)
    assert (str(ds.PatientID), str(ds.PatientName)) == ("OTHER-1", "Lain^Nama")


def test_bad_scp_file_exits_1_and_no_patient_id_exits_2(scp_file: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.scp"
    data = bytearray(scp_file.read_bytes())
    data[-3] ^= 0xFF
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.dcm"
    result = runner.invoke(app, ["ecg", "to-dicom", str(damaged), str(out)])
    assert result.exit_code == 1
    assert "damaged" in " ".join(result.output.split())
    assert not out.exists()
    result = runner.invoke(app, ["ecg", "to-dicom", str(PTB), str(out)])
    assert result.exit_code == 2
    assert not out.exists()


def test_to_scp_refuses_a_too_long_uncompressed_record(tmp_path: Path) -> None:
    if not PTB.with_suffix(".hea").is_file():
        pytest.skip(f"PTB record not found at {PTB}")
    out = tmp_path / "long.scp"
    result = runner.invoke(app, ["ecg", "to-scp", str(PTB), str(out), "--patient-id", "P-1"])
    assert result.exit_code == 1
    assert "at most 65535" in " ".join(result.output.split())
    assert not out.exists()
