"""``rekam ca doctor-cert`` and ``rekam ca revoke``: certificates checked by openssl and dcmsign,
signatures made with them, and revocation seen by ``rekam dicom verify``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from rekam.cli.main import app
from rekam.dicom import (
    STANDARD_12_LEADS,
    PatientInfo,
    StudyInfo,
    recording_to_dicom,
    write_dicom,
)
from rekam.ecg import Recording, read_recording
from support.servers import Installation, make_installation
from support.softhsm import missing_reason, shared_softhsm

PTB_RECORD = Path(__file__).resolve().parents[2].parent / "shared/data/ecg/ptbdb/s0010_re"
PASSPHRASE = "correct horse battery staple"

runner = CliRunner()


def tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if shutil.which(str(args[0])) is None:
        pytest.skip(f"{args[0]} is not installed")
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    return make_installation(tmp_path_factory.mktemp("ca-doctor"), "ecdsa-p256")


@pytest.fixture(scope="module")
def ecg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PTB_RECORD.with_suffix(".hea").is_file():
        pytest.skip(f"PTB record not found at {PTB_RECORD}")
    recording = read_recording(PTB_RECORD)
    piece = Recording(recording.samples[:10000], recording.fs, recording.lead_names)
    ds = recording_to_dicom(
        piece, PatientInfo("P-77", "Test^Pasien"), StudyInfo(), "1.2.826.0.1.3680043.10.1045",
        leads=STANDARD_12_LEADS,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("ecg") / "ecg.dcm"
    write_dicom(ds, path)
    return path


def rekam(installation: Installation, *args: str | Path, **env: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [str(a) for a in args], env={**installation.env, "COLUMNS": "200", **env}
    )
    return result.exit_code, result.output


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def pki_file(installation: Installation, name: str) -> Path:
    return Path(installation.data_dir) / "pki" / name


def openssl_verify(installation: Installation, certificate: Path) -> str:
    result = tool(
        "openssl", "verify", "-CAfile", pki_file(installation, "root.pem"),
        "-untrusted", pki_file(installation, "issuing.pem"), certificate,
    )  # fmt: skip
    return result.stdout + result.stderr


def dcmsign_verify(installation: Installation, path: Path, *extra: str | Path) -> str:
    result = tool(
        "dcmsign", "--verify", "--add-cert-file", pki_file(installation, "root.pem"),
        "--add-cert-file", pki_file(installation, "issuing.pem"), *extra, path,
    )  # fmt: skip
    return f"exit {result.returncode}: {result.stdout}{result.stderr}"


def serial_of(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("serial "))


def statuses(installation: Installation, path: Path) -> tuple[int, list[str]]:
    code, output = rekam(installation, "dicom", "verify", path, "--json")
    report = json.loads(output)
    return code, [s["status"] for s in report["files"][0]["signatures"]]


def test_pkcs12_doctor_signs_then_revocation_is_reported(
    installation: Installation, ecg_file: Path, tmp_path: Path
) -> None:
    phrase = secret_file(tmp_path / "phrase", PASSPHRASE)
    bundle, cert = tmp_path / "sari.p12", tmp_path / "sari.pem"
    code, output = rekam(installation, "ca", "doctor-cert", "--name", "Dr Sari Jantung",
                         "--licence", "STR-0101", "--email", "sari@klinik.example",
                         "--p12", bundle, "--cert-out", cert,
                         "--passphrase-file", phrase)  # fmt: skip
    assert code == 0, output
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert f"{cert}: OK" in openssl_verify(installation, cert)
    listed = tool("openssl", "pkcs12", "-in", bundle, "-passin", f"file:{phrase}", "-nokeys")
    assert listed.returncode == 0, listed.stderr
    assert "CN = Dr Sari Jantung" in listed.stdout
    assert listed.stdout.count("BEGIN CERTIFICATE") == 3  # with the issuing CA and the root
    wrong = secret_file(tmp_path / "wrong", "not the passphrase at all")
    refused = tool("openssl", "pkcs12", "-in", bundle, "-passin", f"file:{wrong}", "-nokeys")
    assert refused.returncode != 0
    issued = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    assert f"{issued.serial_number:x}" == serial_of(output)

    signed = tmp_path / "signed.dcm"
    code, output = rekam(installation, "dicom", "sign", ecg_file, signed, "--pkcs12", bundle,
                         "--passphrase-file", phrase, "--profile", "none")  # fmt: skip
    assert code == 0, output
    assert statuses(installation, signed) == (0, ["VALID"])  # Rekam's root by default
    assert "Signature Verification : OK" in dcmsign_verify(installation, signed)

    code, output = rekam(
        installation, "ca", "revoke", f"{issued.serial_number:x}", "--reason", "key-compromise"
    )
    assert code == 0, output
    assert "revoked" in output
    assert statuses(installation, signed) == (1, ["CERTIFICATE_REVOKED"])
    crl = pki_file(installation, "crl.pem")
    assert "revoked" in dcmsign_verify(installation, signed, "--add-crl-file", crl)
    crl_text = tool("openssl", "crl", "-in", crl, "-noout", "-text").stdout
    assert f"{issued.serial_number:X}"[-8:] in crl_text.replace(":", "").upper()
    assert "Key Compromise" in crl_text
    code, output = rekam(installation, "ca", "revoke", f"{issued.serial_number:x}")
    assert code == 0 and "already revoked" in output


def test_encrypted_pem_doctor_key(
    installation: Installation, ecg_file: Path, tmp_path: Path
) -> None:
    phrase = secret_file(tmp_path / "phrase", PASSPHRASE)
    key, cert = tmp_path / "budi.key", tmp_path / "budi.pem"
    code, output = rekam(installation, "ca", "doctor-cert", "--name", "Dr Budi Santoso",
                         "--licence", "STR-0202", "--algorithm", "rsa3072", "--key-out", key,
                         "--cert-out", cert, "--passphrase-file", phrase)  # fmt: skip
    assert code == 0, output
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN " + b"ENCRYPTED PRIVATE KEY-----")
    assert (
        tool("openssl", "pkey", "-in", key, "-passin", f"file:{phrase}", "-noout").returncode == 0
    )
    assert f"{cert}: OK" in openssl_verify(installation, cert)
    signed = tmp_path / "signed.dcm"
    code, output = rekam(installation, "dicom", "sign", ecg_file, signed, "--key", key,
                         "--cert", cert, "--passphrase-file", phrase,
                         "--profile", "creator")  # fmt: skip
    assert code == 0, output
    assert statuses(installation, signed) == (0, ["VALID"])
    assert "Signature Verification : OK" in dcmsign_verify(installation, signed)


@pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
def test_doctor_key_generated_in_a_token(
    installation: Installation, ecg_file: Path, tmp_path: Path
) -> None:
    token = shared_softhsm().doctor_token
    pin = secret_file(tmp_path / "pin", token.pin)
    cert = tmp_path / "tok.pem"
    module = {"REKAM_PKCS11_MODULE": token.module_path}
    code, output = rekam(installation, "ca", "doctor-cert", "--name", "Dr Wati Token",
                         "--licence", "STR-0303", "--token", token.label, "--key-label",
                         "dr-wati", "--pin-file", pin, "--cert-out", cert, **module)  # fmt: skip
    assert code == 0, output
    assert "generated inside token" in output
    assert f"{cert}: OK" in openssl_verify(installation, cert)
    listed = subprocess.run(
        ["pkcs11-tool", "--module", token.module_path, "--token-label", token.label, "--login",
         "--pin", token.pin, "--list-objects"],
        capture_output=True, text=True, timeout=60, check=False, env=token.tool_env(),
    )  # fmt: skip
    objects = listed.stdout.split("\n\n")
    assert any("Certificate Object" in o and "label:      dr-wati" in o for o in objects), objects
    assert any("Private Key Object" in o and "dr-wati" in o for o in objects)
    signed = tmp_path / "signed.dcm"
    code, output = rekam(installation, "dicom", "sign", ecg_file, signed, "--token", token.label,
                         "--key-label", "dr-wati", "--pin-file", pin, **module)  # fmt: skip
    assert code == 0, output
    assert "Dr Wati Token" in output
    assert statuses(installation, signed) == (0, ["VALID"])
    assert "Signature Verification : OK" in dcmsign_verify(installation, signed)
    code, output = rekam(installation, "ca", "doctor-cert", "--name", "Dr Wati Token",
                         "--licence", "STR-0303", "--token", token.label, "--key-label",
                         "dr-wati", "--pin-file", pin, **module)  # fmt: skip
    assert code == 1 and "already holds a key labelled 'dr-wati'" in output


def test_bad_requests_are_refused(installation: Installation, tmp_path: Path) -> None:
    short = secret_file(tmp_path / "short", "short")
    out = tmp_path / "x.p12"
    base = ["ca", "doctor-cert", "--name", "Dr X", "--licence", "STR-9"]
    code, output = rekam(installation, *base, "--p12", out, "--passphrase-file", short)
    assert code == 1 and "at least 16" in output and not out.exists()
    out.write_bytes(b"keep me")
    phrase = secret_file(tmp_path / "phrase", PASSPHRASE)
    code, output = rekam(installation, *base, "--p12", out, "--passphrase-file", phrase)
    assert code == 1 and "will not be overwritten" in output
    assert out.read_bytes() == b"keep me"
    code, _ = rekam(installation, *base, "--p12", out, "--key-out", tmp_path / "k")
    assert code == 2
    code, _ = rekam(installation, *base, "--key-out", tmp_path / "k")  # no --cert-out
    assert code == 2
    code, output = rekam(installation, *base, "--token", "t", "--pin-file", phrase)
    assert code == 2 and "REKAM_PKCS11_MODULE" in output
    open_phrase = tmp_path / "open"
    open_phrase.write_text(PASSPHRASE)
    open_phrase.chmod(0o644)
    code, output = rekam(installation, *base, "--p12", tmp_path / "y.p12",
                         "--passphrase-file", open_phrase)  # fmt: skip
    assert code == 1 and "readable by other users" in output
    code, output = rekam(installation, *base, "--p12", tmp_path / "z.p12")  # no terminal
    assert code == 1 and "--passphrase-file" in output
    code, output = rekam(installation, "ca", "revoke", "abcdef0123")
    assert code == 1 and "No certificate with serial number abcdef0123" in output
    code, _ = rekam(installation, "ca", "revoke", "not-hex")
    assert code == 2
    code, _ = rekam(installation, "ca", "revoke", "abc", "--reason", "because")
    assert code == 2


def test_verify_without_trust_needs_an_installation(ecg_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["dicom", "verify", str(ecg_file)], env={"REKAM_DATA_DIR": str(tmp_path / "none")}
    )
    assert result.exit_code == 2
    assert "no Rekam root certificate" in result.output
