"""Signing DICOM objects with keys that never leave a real SoftHSM2 token.

The keys are generated inside the token, the test CA issues their certificates, the certificates
are stored back on the token; what the token signs must verify with Rekam and with dcmsign.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass
from pydicom.dataset import Dataset

from rekam.dicom import SignatureStatus, SigningError, sign_dataset, verify_dataset, write_dicom
from rekam.dicom.token_signer import open_token_signer
from rekam.pki import KeyAlgorithm, TokenKeyError, issue_doctor_certificate_for_key
from rekam.pki.token_keys import (
    TokenKey,
    find_token_certificate,
    generate_token_key,
    open_token_key,
    store_token_certificate,
)
from support.softhsm import SoftHsmToken, missing_reason, shared_softhsm

from .conftest import Pki, peer

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@dataclass(frozen=True)
class TokenDoctors:
    token: SoftHsmToken
    rsa: TokenKey
    ec: TokenKey


@pytest.fixture(scope="session")
def token_doctors(pki: Pki) -> TokenDoctors:
    token = shared_softhsm().doctor_token
    keys = {}
    for label, algorithm, name in (
        ("dr-tika-rsa", KeyAlgorithm.RSA3072, "Dr Tika Token"),
        ("dr-eko-ec", KeyAlgorithm.ECDSA_P256, "Dr Eko Token"),
    ):
        key = generate_token_key(token.module_path, token.label, token.pin, label, algorithm)
        certificate = issue_doctor_certificate_for_key(
            pki.issuing, key.public_key, name, f"LIC-{label}", None
        )
        store_token_certificate(key, certificate)
        keys[label] = key
    return TokenDoctors(token, keys["dr-tika-rsa"], keys["dr-eko-ec"])


def _dcmsign_verify(pki: Pki, path: Path) -> tuple[int, str]:
    result = peer(
        "dcmsign", "--verify", "--add-cert-file", pki.path("root.pem"),
        "--add-cert-file", pki.path("issuing.pem"), path,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_token_keys_cannot_leave_the_token(token_doctors: TokenDoctors) -> None:
    token = token_doctors.token
    library = pkcs11.lib(token.module_path)
    session = library.get_token(token_label=token.label).open(rw=True)
    private = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    assert {str(k[Attribute.LABEL]) for k in private} >= {"dr-tika-rsa", "dr-eko-ec"}
    for key in private:
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.PKCS11Error):
            key[
                Attribute.PRIVATE_EXPONENT
                if key[Attribute.KEY_TYPE] == pkcs11.KeyType.RSA
                else Attribute.VALUE
            ]


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_token_signature_verifies_with_rekam_and_dcmsign(
    pki: Pki, token_doctors: TokenDoctors, ecg_dataset: Dataset, tmp_path: Path, which: str
) -> None:
    token = token_doctors.token
    label = getattr(token_doctors, which).label
    signer = open_token_signer(token.module_path, token.label, token.pin, label)
    assert signer.certificate.public_key() == getattr(token_doctors, which).public_key
    profile = "base" if which == "rsa" else "none"
    for mac in ("SHA256", "SHA512"):
        sign_dataset(ecg_dataset, signer, profile=profile, mac_algorithm=mac)
    path = tmp_path / "token-signed.dcm"
    write_dicom(ecg_dataset, path)
    verdicts = verify_dataset(path, pki.roots, pki.intermediates, crls=[pki.crl.crl])
    assert [v.status for v in verdicts] == [SignatureStatus.VALID] * 2
    assert verdicts[0].signer_name in ("Dr Tika Token", "Dr Eko Token")
    code, output = _dcmsign_verify(pki, path)
    assert code == 0, output
    assert output.count("Signature Verification : OK") == 2


def test_certificate_from_a_file_must_match_the_token_key(
    pki: Pki, token_doctors: TokenDoctors
) -> None:
    token = token_doctors.token
    with pytest.raises(SigningError, match="does not belong to the key 'dr-tika-rsa'"):
        open_token_signer(
            token.module_path, token.label, token.pin, "dr-tika-rsa", pki.rsa_doctor.certificate
        )
    own = find_token_certificate(token_doctors.rsa)
    signer = open_token_signer(token.module_path, token.label, token.pin, "dr-tika-rsa", own)
    assert signer.certificate == own


def test_token_errors_are_explained(token_doctors: TokenDoctors) -> None:
    token = token_doctors.token
    with pytest.raises(SigningError, match=r"(?i)no PKCS#11 token labelled 'no-such-token'"):
        open_token_signer(token.module_path, "no-such-token", token.pin, "dr-tika-rsa")
    with pytest.raises(SigningError, match="holds no RSA or EC private key labelled 'dr-nobody'"):
        open_token_signer(token.module_path, token.label, token.pin, "dr-nobody")
    with pytest.raises(SigningError, match="several signing keys"):
        open_token_signer(token.module_path, token.label, token.pin)
    with pytest.raises(SigningError, match="cannot be loaded"):
        open_token_signer("/nonexistent/libpkcs11.so", token.label, token.pin, "dr-tika-rsa")
    with pytest.raises(TokenKeyError, match="already holds a key labelled 'dr-eko-ec'"):
        generate_token_key(token.module_path, token.label, token.pin, "dr-eko-ec")
    key = open_token_key(token.module_path, token.label, token.pin, "dr-eko-ec")
    with pytest.raises(TokenKeyError, match="does not belong"):
        store_token_certificate(key, find_token_certificate(token_doctors.rsa))


def _rekam(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real ``rekam`` command in a fresh process (its own PKCS#11 login)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "rekam"), *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_cli_signs_with_the_token(
    pki: Pki, token_doctors: TokenDoctors, ecg_dataset: Dataset, tmp_path: Path
) -> None:
    token = token_doctors.token
    unsigned, signed = tmp_path / "unsigned.dcm", tmp_path / "signed.dcm"
    write_dicom(ecg_dataset, unsigned)
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin + "\n")
    pin_file.chmod(0o600)
    env = {
        **token.tool_env(),
        "REKAM_PKCS11_MODULE": token.module_path,
        "REKAM_DATA_DIR": str(tmp_path / "no-installation"),
        "COLUMNS": "200",
    }
    sign: list[str | Path] = ["dicom", "sign", unsigned, signed, "--token", token.label]
    result = _rekam(*sign, "--key-label", "dr-eko-ec", "--pin-file", pin_file, "--profile",
                    "none", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Dr Eko Token" in result.stdout
    code, output = _dcmsign_verify(pki, signed)
    assert code == 0 and "Signature Verification : OK" in output, output

    wrong = tmp_path / "wrong-pin"
    wrong.write_text("000000")
    wrong.chmod(0o600)
    result = _rekam(*sign, "--key-label", "dr-eko-ec", "--pin-file", wrong, env=env)
    assert result.returncode == 1 and "refused the PIN" in result.stderr, result.stderr
    result = _rekam(*sign, "--key-label", "dr-nobody", "--pin-file", pin_file, env=env)
    assert result.returncode == 1 and "no RSA or EC private key labelled" in result.stderr
    result = _rekam("dicom", "sign", unsigned, signed, "--token", "no-such-token",
                    "--pin-file", pin_file, env=env)  # fmt: skip
    assert result.returncode == 1 and "No PKCS#11 token labelled" in result.stderr
    result = _rekam(*sign, "--key-label", "dr-eko-ec", env=env)  # no PIN, no terminal
    assert result.returncode == 1 and "PIN is needed" in result.stderr
    no_module = {k: v for k, v in env.items() if k != "REKAM_PKCS11_MODULE"}
    result = _rekam(*sign, "--pin-file", pin_file, env=no_module)
    assert result.returncode == 2 and "REKAM_PKCS11_MODULE" in result.stderr
    os.chmod(pin_file, 0o644)
    result = _rekam(*sign, "--key-label", "dr-eko-ec", "--pin-file", pin_file, env=env)
    assert result.returncode == 1 and "readable by other users" in result.stderr
