"""Readers: WFDB, CSV, raw arrays, and their error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rekam.cli.ecg_cmd import app
from rekam.ecg import (
    EcgError,
    RecordFormatError,
    RecordNotFoundError,
    SamplingRateError,
    SignalValueError,
    read_csv,
    read_recording,
    read_wfdb,
    recording_from_samples,
)

from .conftest import MITDB_DIR, beats_at_rate, synthetic_ecg


def test_wfdb_record_with_annotations(mitdb_records: list[Path]) -> None:
    rec = read_wfdb(MITDB_DIR / "100")
    assert rec.fs == 360 and rec.n_leads == 2 and rec.lead_names[0] == "MLII"
    assert rec.samples.dtype == np.float64 and rec.n_samples == 650000
    assert rec.annotations is not None
    beats = rec.reference_beats()
    assert beats is not None
    # Record 100 has 2273 beats and one rhythm ("+") annotation that is not a beat.
    assert beats.size == 2273 and len(rec.annotations.symbols) == 2274
    assert read_recording(MITDB_DIR / "100.hea").n_samples == rec.n_samples


def test_csv_with_and_without_time_column(tmp_path: Path) -> None:
    fs = 250.0
    truth = beats_at_rate(60, 20)
    x = synthetic_ecg(truth, fs, 20)
    t = np.arange(x.size) / fs
    with_time = tmp_path / "with_time.csv"
    np.savetxt(
        with_time, np.column_stack([t, x, -x]), delimiter=",", header="time,II,III", comments=""
    )
    rec = read_csv(with_time)
    assert rec.fs == pytest.approx(fs) and rec.lead_names == ("II", "III")
    np.testing.assert_allclose(rec.lead("II"), x, atol=1e-6)
    bare = tmp_path / "bare.csv"
    np.savetxt(bare, x[:, None], delimiter=",", header="II", comments="")
    assert read_recording(bare, fs=fs).n_samples == x.size
    with pytest.raises(RecordFormatError, match="sampling rate"):
        read_csv(bare)
    result = CliRunner().invoke(app, ["analyze", str(with_time), "--json"])
    assert result.exit_code == 0, result.output
    assert f'"beats": {truth.size}' in result.stdout


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", SignalValueError),
        ("II\n", SignalValueError),
        ("1.0,2.0\n3.0,4.0\n", RecordFormatError),
        ("time,II\n0,abc\n", RecordFormatError),
        ("time,II\n0,1\n0.004,nan\n0.008,1\n", SignalValueError),
        ("time,II\n0,1\n0.1,1\n0.5,1\n", RecordFormatError),
        ("time,II\n0,1\n1,1\n2,1\n", SamplingRateError),
    ],
)
def test_bad_csv_files_raise_clear_errors(
    tmp_path: Path, content: str, error: type[EcgError]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(error):
        read_csv(path)
    result = CliRunner().invoke(app, ["analyze", str(path)])
    assert result.exit_code == 1
    assert "error" in result.stderr


def test_missing_and_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(RecordNotFoundError):
        read_recording(tmp_path / "nope")
    with pytest.raises(RecordNotFoundError):
        read_csv(tmp_path / "nope.csv")
    (tmp_path / "x.hea").write_text("this is not a header\n")
    with pytest.raises(RecordFormatError):
        read_wfdb(tmp_path / "x")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RecordFormatError):
        read_recording(tmp_path / "notes.txt")
    assert CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope")]).exit_code == 1
    assert CliRunner().invoke(app, ["analyze"]).exit_code == 2
    assert CliRunner().invoke(app, ["analyze", "x.csv", "--window", "0"]).exit_code == 2


def test_raw_arrays() -> None:
    rec = recording_from_samples(np.zeros(1000), 500)
    assert rec.samples.shape == (1000, 1) and rec.lead_names == ("lead 1",)
    with pytest.raises(SamplingRateError):
        recording_from_samples(np.zeros(1000), 50)
    with pytest.raises(SignalValueError):
        recording_from_samples(np.zeros(0), 250)
    with pytest.raises(SignalValueError):
        recording_from_samples(np.array([1.0, np.inf]), 250)
    with pytest.raises(SignalValueError):
        recording_from_samples(np.zeros((10, 2)), 250, lead_names=["I"])
