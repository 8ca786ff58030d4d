"""Interoperability with DCMTK's dcmsign, both ways, and dcmodify tampering."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from rekam.dicom import SignatureStatus, sign_dataset, verify_dataset, write_dicom

from .conftest import Pki, dciodvfy_errors, peer

pytestmark = pytest.mark.interop

DCMSIGN_OK = "Signature Verification : OK"


def dcmsign_verify(pki: Pki, path: Path, *extra: str) -> tuple[int, str]:
    result = peer(
        "dcmsign", "--verify",
        "--add-cert-file", pki.path("root.pem"),
        "--add-cert-file", pki.path("issuing.pem"),
        *extra, path,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def _rekam_signed(pki: Pki, ds: Dataset, tmp_path: Path, *signatures: dict) -> Path:  # type: ignore[type-arg]
    for options in signatures or ({},):
        options = dict(options)
        doctor = options.pop("doctor", "rsa_doctor")
        sign_dataset(ds, getattr(pki, doctor), **options)
    path = tmp_path / "rekam-signed.dcm"
    write_dicom(ds, path)
    return path


REKAM_SIGNATURES = {
    "rsa-sha256-base": ({},),
    "rsa-sha384": ({"mac_algorithm": "SHA384"},),
    "rsa-sha512-creator": ({"mac_algorithm": "SHA512", "profile": "creator"},),
    "ecdsa-sha256": ({"doctor": "ec_doctor", "profile": "none"},),
    "with-purpose": ({"purpose": 1},),
    "three-stacked": (
        {},
        {"doctor": "ec_doctor", "profile": "none", "mac_algorithm": "SHA512"},
        {"doctor": "rsa_doctor_2", "profile": "creator", "purpose": 14},
    ),
}


@pytest.mark.parametrize("case", list(REKAM_SIGNATURES), ids=list(REKAM_SIGNATURES))
def test_rekam_signatures_verify_with_dcmsign(
    pki: Pki, ecg_dataset: Dataset, tmp_path: Path, case: str
) -> None:
    path = _rekam_signed(pki, ecg_dataset, tmp_path, *REKAM_SIGNATURES[case])
    code, output = dcmsign_verify(pki, path)
    assert code == 0, output
    assert output.count(DCMSIGN_OK) == len(REKAM_SIGNATURES[case])
    assert dciodvfy_errors(path) == []


def test_rekam_signature_survives_dcmconv_to_implicit_vr(
    pki: Pki, ecg_dataset: Dataset, tmp_path: Path
) -> None:
    path = _rekam_signed(pki, ecg_dataset, tmp_path)
    implicit = tmp_path / "implicit.dcm"
    assert peer("dcmconv", "+ti", path, implicit).returncode == 0
    code, output = dcmsign_verify(pki, implicit)
    assert code == 0 and DCMSIGN_OK in output
    [verdict] = verify_dataset(implicit, pki.roots, pki.intermediates)
    assert verdict.valid


DCMSIGN_SIGNATURES = {
    "rsa-base-sha256": ("rsa-doctor", ["--profile-base", "--mac-sha256"]),
    "rsa-creator-sha384": ("rsa-doctor", ["--profile-creator", "--mac-sha384"]),
    "rsa-sha512-purpose": ("rsa-doctor", ["--mac-sha512", "--sig-purpose", "1"]),
    "ecdsa-none-sha256": ("ec-doctor", ["--profile-none", "--mac-sha256"]),
    "implicit-output": ("rsa-doctor", ["--profile-base", "--mac-sha256", "+ti"]),
}


@pytest.mark.parametrize("case", list(DCMSIGN_SIGNATURES), ids=list(DCMSIGN_SIGNATURES))
def test_dcmsign_signatures_verify_with_rekam(
    pki: Pki, ecg_dataset: Dataset, tmp_path: Path, case: str
) -> None:
    name, options = DCMSIGN_SIGNATURES[case]
    unsigned, signed = tmp_path / "unsigned.dcm", tmp_path / "dcmsign-signed.dcm"
    write_dicom(ecg_dataset, unsigned)
    result = peer(
        "dcmsign", "--sign", pki.path(f"{name}.key"), pki.path(f"{name}.pem"),
        *options, unsigned, signed,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [verdict] = verify_dataset(signed, pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.VALID, verdict.findings
    assert verdict.signer_name in ("Dr Ana Cardio", "Dr Eva Curve")


def test_dcmsign_refuses_ecdsa_under_the_base_rsa_profile(
    pki: Pki, ecg_dataset: Dataset, tmp_path: Path
) -> None:
    """Why Rekam asks for profile 'none' with ECDSA keys: DCMTK does the same."""
    unsigned = tmp_path / "unsigned.dcm"
    write_dicom(ecg_dataset, unsigned)
    result = peer(
        "dcmsign", "--sign", pki.path("ec-doctor.key"), pki.path("ec-doctor.pem"),
        "--profile-base", "--mac-sha256", unsigned, tmp_path / "out.dcm",
    )  # fmt: skip
    assert result.returncode != 0
    assert "not allowed for the selected security profile" in result.stderr


@pytest.mark.parametrize("signed_by", ["rekam", "dcmsign"])
def test_dcmodify_after_signing_fails_in_both(
    pki: Pki, ecg_dataset: Dataset, tmp_path: Path, signed_by: str
) -> None:
    if signed_by == "rekam":
        path = _rekam_signed(pki, ecg_dataset, tmp_path)
    else:
        unsigned, path = tmp_path / "unsigned.dcm", tmp_path / "signed.dcm"
        write_dicom(ecg_dataset, unsigned)
        assert peer(
            "dcmsign", "--sign", pki.path("rsa-doctor.key"), pki.path("rsa-doctor.pem"),
            "--profile-base", "--mac-sha256", unsigned, path,
        ).returncode == 0  # fmt: skip
    assert dcmsign_verify(pki, path)[0] == 0
    assert verify_dataset(path, pki.roots, pki.intermediates)[0].valid
    assert peer("dcmodify", "-nb", "-m", "(0010,0010)=Changed^Name", path).returncode == 0
    code, output = dcmsign_verify(pki, path)
    assert code != 0
    assert "signature is invalid" in output
    [verdict] = verify_dataset(path, pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.INVALID_DATA_CHANGED


def test_foreign_ca_fails_in_both(pki: Pki, ecg_dataset: Dataset, tmp_path: Path) -> None:
    path = _rekam_signed(
        pki, ecg_dataset, tmp_path, {"doctor": "foreign_doctor", "profile": "none"}
    )
    code, output = dcmsign_verify(pki, path)
    assert code != 0
    assert "certificate verification failed" in output
    [verdict] = verify_dataset(path, pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.CERTIFICATE_UNTRUSTED


def test_revoked_fails_in_both(pki: Pki, ecg_dataset: Dataset, tmp_path: Path) -> None:
    path = _rekam_signed(
        pki, ecg_dataset, tmp_path, {"doctor": "revoked_doctor", "profile": "none"}
    )
    code, output = dcmsign_verify(pki, path, "--add-crl-file", str(pki.path("crl.pem")))
    assert code != 0
    assert "revoked" in output
    [verdict] = verify_dataset(path, pki.roots, pki.intermediates, crls=[pki.crl.crl])
    assert verdict.status is SignatureStatus.CERTIFICATE_REVOKED


def test_vendor_object_with_private_attributes(pki: Pki, tmp_path: Path) -> None:
    """pydicom's Mortara ECG sample: private attributes are left unsigned, so an Implicit VR
    hop (which turns them into UN) does not break the signature for either side."""
    from pydicom.data import get_testdata_file

    from rekam.dicom import read_dicom

    ds = read_dicom(get_testdata_file("waveform_ecg.dcm"))
    sign_dataset(ds, pki.rsa_doctor)
    path = tmp_path / "vendor.dcm"
    write_dicom(ds, path)
    implicit = tmp_path / "vendor-implicit.dcm"
    assert peer("dcmconv", "+ti", path, implicit).returncode == 0
    for candidate in (path, implicit):
        code, output = dcmsign_verify(pki, candidate)
        assert code == 0 and DCMSIGN_OK in output
        [verdict] = verify_dataset(candidate, pki.roots, pki.intermediates)
        assert verdict.valid
        assert "(1455,1000)" in verdict.unsigned_attributes
