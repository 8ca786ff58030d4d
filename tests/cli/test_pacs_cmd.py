"""``rekam pacs send|find|get`` on the embedded archive and on a real Orthanc (both protocols):
what is sent is found and comes back byte for byte; bad files and bad options get exit 1 / 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rekam.cli.main import app
from rekam.dicom import verify_dataset
from rekam.his.installation import Clinic
from rekam.pki import Identity, KeyAlgorithm
from support.orthanc import CALLING_AET, ORTHANC_AET, OrthancServer
from support.pacs_objects import ecg_object
from support.servers import Installation
from support.tcp_relay import tcp_relay

runner = CliRunner()


@pytest.fixture(scope="module")
def doctor(clinic: Clinic) -> Identity:
    return clinic.pki.issue_doctor("Dr Cli Cardio", "LIC-7101", None, KeyAlgorithm.RSA3072)


def _env(installation: Installation, target: str, orthanc: OrthancServer | None) -> dict[str, str]:
    env = dict(installation.env)
    if target == "embedded":
        env["REKAM_PACS"] = "embedded"
        return env
    assert orthanc is not None
    env.update(
        REKAM_PACS="orthanc",
        REKAM_PACS_PROTOCOL=target,
        REKAM_ORTHANC_HOST="127.0.0.1",
        REKAM_ORTHANC_DICOM_PORT=str(orthanc.dicom_port),
        REKAM_ORTHANC_AET=ORTHANC_AET,
        REKAM_PACS_CALLING_AET=CALLING_AET,
        REKAM_ORTHANC_DICOMWEB_URL=orthanc.dicomweb_url,
        REKAM_ORTHANC_USERNAME=orthanc.username,
        REKAM_ORTHANC_PASSWORD=orthanc.password,
    )
    return env


@pytest.mark.parametrize("target", ["embedded", "dimse", "dicomweb"])
def test_send_find_get(
    request: pytest.FixtureRequest,
    installation: Installation,
    clinic: Clinic,
    doctor: Identity,
    tmp_path: Path,
    target: str,
) -> None:
    orthanc = request.getfixturevalue("orthanc") if target != "embedded" else None
    env = _env(installation, target, orthanc)
    patient_id = f"CLI-{target}"
    files = []
    for n in range(3):
        path = tmp_path / f"ecg{n}.dcm"
        path.write_bytes(ecg_object(300 + n + 10 * len(target), doctor, patient_id=patient_id,
                                    accession=f"CLI{n}"))  # fmt: skip
        files.append(path)
    sent = runner.invoke(app, ["pacs", "send", *map(str, files), "--json"], env=env)
    assert sent.exit_code == 0, sent.output
    results = json.loads(sent.stdout)
    assert [r["status"] for r in results] == ["stored"] * 3

    found = runner.invoke(
        app, ["pacs", "find", "--patient-id", patient_id, "--instances", "--json"], env=env
    )
    assert found.exit_code == 0, found.output
    studies = json.loads(found.stdout)
    assert {s["study_instance_uid"] for s in studies} == {r["study_instance_uid"] for r in results}
    assert all(s["patient_id"] == patient_id for s in studies)
    table = runner.invoke(app, ["pacs", "find", "--patient-id", patient_id], env=env)
    assert table.exit_code == 0 and "3 studies" in table.stdout

    out = tmp_path / "back.dcm"
    got = runner.invoke(app, ["pacs", "get", results[1]["sop_instance_uid"], str(out)], env=env)
    assert got.exit_code == 0, got.output
    if target == "embedded":  # the archive keeps the very bytes; Orthanc may rewrite them
        assert out.read_bytes() == files[1].read_bytes()
    verdicts = verify_dataset(out.read_bytes(), [clinic.pki.load_root_certificate()], doctor.chain)
    assert [v.valid for v in verdicts] == [True]


def test_bad_files_and_options(installation: Installation, tmp_path: Path) -> None:
    env = _env(installation, "embedded", None)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all" * 10)
    good = tmp_path / "good.dcm"
    good.write_bytes(ecg_object(399, None, patient_id="CLI-BAD"))
    result = runner.invoke(
        app, ["pacs", "send", str(junk), str(tmp_path / "missing.dcm"), str(good), "--json"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r["status"] for r in rows] == ["failed", "failed", "stored"]
    assert "not a DICOM file" in rows[0]["error"] and "No file found" in rows[1]["error"]
    assert runner.invoke(app, ["pacs", "find"], env=env).exit_code == 2
    assert (
        runner.invoke(app, ["pacs", "find", "--study-date", "2024-13-01"], env=env).exit_code == 2
    )
    missing = runner.invoke(app, ["pacs", "get", "1.2.3.4.99", str(tmp_path / "x.dcm")], env=env)
    assert missing.exit_code == 1 and "no" in missing.output.lower()
    assert not (tmp_path / "x.dcm").exists()


def test_send_many_files_over_dimse_uses_one_association(
    installation: Installation, orthanc: OrthancServer, tmp_path: Path
) -> None:
    """``rekam pacs send`` keeps one association for the whole batch, and a bad file in the
    middle neither ends it nor stops the files after it (counted on a relay in between)."""
    files = []
    for n in range(4):
        path = tmp_path / f"batch{n}.dcm"
        path.write_bytes(ecg_object(380 + n, None, patient_id="CLI-BATCH"))
        files.append(path)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file" * 20)
    with tcp_relay(orthanc.dicom_port) as relay:
        env = _env(installation, "dimse", orthanc)
        env["REKAM_ORTHANC_DICOM_PORT"] = str(relay.port)
        sent = runner.invoke(
            app, ["pacs", "send", *map(str, files[:2]), str(junk), *map(str, files[2:]), "--json"],
            env=env,
        )  # fmt: skip
        assert relay.connections == 1
    assert sent.exit_code == 1, sent.output
    rows = json.loads(sent.stdout)
    assert [r["status"] for r in rows] == ["stored", "stored", "failed", "stored", "stored"]
    with orthanc.rest() as client:
        found = client.post(
            "/tools/find", json={"Level": "Instance", "Query": {"PatientID": "CLI-BATCH"}}
        ).json()
    assert len(found) == 4
