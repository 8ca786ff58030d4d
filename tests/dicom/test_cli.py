"""``rekam dicom`` sub-app: to-dicom, sign (PEM/encrypted/PKCS#12), verify with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from typer.testing import CliRunner

from rekam.cli.dicom_cmd import app
from rekam.cli.main import app as rekam
from rekam.dicom import read_dicom, sign_dataset, write_dicom
from rekam.pki import encrypt_private_key_pem

from .conftest import PTB_RECORD, Pki

runner = CliRunner()


@pytest.fixture
def ecg_file(ptb_recording, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "ecg.dcm"
    result = runner.invoke(app, [
        "to-dicom", str(PTB_RECORD), str(out), "--patient-id", "PTB-0010",
        "--patient-name", "Muster^Hans", "--birth-date", "1951-03-04", "--sex", "M",
        "--duration", "10", "--leads", "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6",
        "--uid-root", "1.2.826.0.1.3680043.10.1045",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _trust(pki: Pki) -> list[str]:
    return ["--trust", str(pki.path("root.pem")), "--intermediate", str(pki.path("issuing.pem"))]


def test_to_dicom_writes_a_twelve_lead_object(ecg_file: Path) -> None:
    ds = read_dicom(ecg_file)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.9.1.1"
    assert ds.PatientID == "PTB-0010" and ds.PatientSex == "M"
    assert ds.SOPInstanceUID.startswith("1.2.826.0.1.3680043.10.1045.")
    assert ds.WaveformSequence[0].NumberOfWaveformSamples == 10000


def test_sign_then_verify_exit_zero(pki: Pki, ecg_file: Path, tmp_path: Path) -> None:
    signed = tmp_path / "signed.dcm"
    result = runner.invoke(app, [
        "sign", str(ecg_file), str(signed), "--key", str(pki.path("rsa-doctor.key")),
        "--cert", str(pki.path("rsa-doctor.pem")), "--mac", "sha384",
        "--chain", str(pki.path("issuing.pem")),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Dr Ana Cardio" in result.output
    result = runner.invoke(app, ["verify", str(signed), *_trust(pki)])
    assert result.exit_code == 0, result.output
    assert "VALID" in result.output and "sha256" in result.output
    as_json = runner.invoke(app, ["verify", str(signed), *_trust(pki), "--json"])
    report = json.loads(as_json.output)
    assert report["valid"] is True
    [file_report] = report["files"]
    assert len(file_report["sha256"]) == 64
    assert file_report["signatures"][0]["mac_algorithm"] == "SHA384"
    assert file_report["signatures"][0]["licence_number"] == "LIC-1001"


def test_encrypted_pem_key_with_passphrase_file(pki: Pki, ecg_file: Path, tmp_path: Path) -> None:
    key = tmp_path / "doctor.key"
    key.write_bytes(encrypt_private_key_pem(pki.ec_doctor.private_key, b"s3cret phrase"))
    phrase = tmp_path / "phrase.txt"
    phrase.write_text("s3cret phrase\n")
    signed = tmp_path / "signed.dcm"
    args = ["sign", str(ecg_file), str(signed), "--key", str(key),
            "--cert", str(pki.path("ec-doctor.pem")), "--profile", "none"]  # fmt: skip
    result = runner.invoke(app, [*args, "--passphrase-file", str(phrase)])
    assert result.exit_code == 0, result.output
    phrase.write_text("wrong")
    result = runner.invoke(app, [*args, "--passphrase-file", str(phrase)])
    assert result.exit_code == 1
    assert "passphrase" in result.output
    result = runner.invoke(app, args)  # no passphrase, not a terminal
    assert result.exit_code == 1
    assert "passphrase" in result.output


def test_pkcs12_signer(pki: Pki, ecg_file: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "doctor.p12"
    bundle.write_bytes(pkcs12.serialize_key_and_certificates(
        b"doctor", pki.rsa_doctor.private_key, pki.rsa_doctor.certificate,
        [pki.issuing.certificate, pki.root.certificate],
        serialization.BestAvailableEncryption(b"p12 phrase"),
    ))  # fmt: skip
    phrase = tmp_path / "phrase.txt"
    phrase.write_text("p12 phrase")
    signed = tmp_path / "signed.dcm"
    result = runner.invoke(app, [
        "sign", str(ecg_file), str(signed), "--pkcs12", str(bundle),
        "--passphrase-file", str(phrase), "--profile", "creator",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["verify", str(signed), *_trust(pki)]).exit_code == 0


def test_verify_fails_on_tampered_unsigned_untrusted_and_revoked(
    pki: Pki, ecg_file: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.dcm"
    ds = read_dicom(ecg_file)
    sign_dataset(ds, pki.rsa_doctor)
    write_dicom(ds, good)
    tampered = tmp_path / "tampered.dcm"
    ds.PatientName = "Changed^Name"
    write_dicom(ds, tampered)
    revoked = tmp_path / "revoked.dcm"
    ds = read_dicom(ecg_file)
    sign_dataset(ds, pki.revoked_doctor, profile="none")
    write_dicom(ds, revoked)

    result = runner.invoke(app, ["verify", str(good), str(tampered), *_trust(pki), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [f["valid"] for f in report["files"]] == [True, False]
    assert report["files"][1]["signatures"][0]["status"] == "INVALID_DATA_CHANGED"

    result = runner.invoke(app, ["verify", str(ecg_file), *_trust(pki)])
    assert result.exit_code == 1 and "no digital signature" in result.output

    def statuses(*args: str) -> tuple[int, list[str]]:
        result = runner.invoke(app, ["verify", *args, "--json"])
        report = json.loads(result.output)
        return result.exit_code, [s["status"] for s in report["files"][0]["signatures"]]

    assert statuses(str(good), "--trust", str(pki.path("foreign-root.pem"))) == (
        1, ["CERTIFICATE_UNTRUSTED"],
    )  # fmt: skip

    assert statuses(str(revoked), *_trust(pki)) == (0, ["VALID"])
    assert statuses(str(revoked), *_trust(pki), "--crl", str(pki.path("crl.pem"))) == (
        1, ["CERTIFICATE_REVOKED"],
    )  # fmt: skip


def test_verify_refuses_non_dicom(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all")
    result = runner.invoke(app, ["verify", str(junk), *_trust(pki), "--json"])
    assert result.exit_code == 1
    assert "not a DICOM file" in json.loads(result.output)["files"][0]["error"]


@pytest.mark.parametrize(
    "args",
    [
        ["sign", "in.dcm", "out.dcm", "--key", "k.pem"],  # no --cert
        ["sign", "in.dcm", "out.dcm", "--pkcs12", "a.p12", "--key", "k.pem"],
        ["sign", "in.dcm", "out.dcm", "--pkcs12", "a.p12", "--mac", "md5"],
        ["verify"],
        ["to-dicom", "record"],
    ],
)
def test_usage_errors_exit_two(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_signing_with_an_untrusted_chain_is_refused(
    pki: Pki, ecg_file: Path, tmp_path: Path
) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.path("foreign-root.pem").read_bytes())
    result = runner.invoke(app, [
        "sign", str(ecg_file), str(tmp_path / "out.dcm"), "--key", str(pki.path("rsa-doctor.key")),
        "--cert", str(pki.path("rsa-doctor.pem")), "--chain", str(chain),
    ])  # fmt: skip
    assert result.exit_code == 1
    assert not (tmp_path / "out.dcm").exists()


def test_to_dicom_is_also_offered_in_the_ecg_group(ptb_recording, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "from-ecg-group.dcm"
    result = runner.invoke(rekam, ["ecg", "to-dicom", str(PTB_RECORD), str(out),
                                   "--patient-id", "P-9", "--duration", "5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_dicom(out).SOPClassUID == "1.2.840.10008.5.1.4.1.1.9.1.2"  # 15 leads: General
