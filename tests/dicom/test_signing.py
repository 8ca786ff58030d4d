"""Signing DICOM objects: what is written, profiles, keys, stacking, refusals."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pydicom.dataset import Dataset

from rekam.dicom import (
    CallbackSigner,
    SignatureStatus,
    SigningError,
    UnsupportedCertificate,
    dataset_to_bytes,
    read_dicom,
    sign_dataset,
    verify_dataset,
)
from rekam.dicom.signature_stream import signable_top_level_tags
from rekam.pki import generate_private_key

from .conftest import Pki


def _verify(pki: Pki, ds: Dataset, **kwargs):  # type: ignore[no-untyped-def]
    return verify_dataset(dataset_to_bytes(ds), pki.roots, pki.intermediates, **kwargs)


def test_signature_attributes_are_as_dcmtk_writes_them(pki: Pki, ecg_dataset: Dataset) -> None:
    moment = datetime.datetime(2025, 3, 1, 8, 30, tzinfo=datetime.UTC)
    uid = sign_dataset(ecg_dataset, pki.rsa_doctor, signed_at=moment)
    again = read_dicom(dataset_to_bytes(ecg_dataset))
    mac = again.MACParametersSequence[0]
    assert mac.MACIDNumber == 0
    assert mac.MACCalculationTransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert mac.MACAlgorithm == "SHA256"
    assert mac["DataElementsSigned"].VR == "AT"
    signed = [int(t) for t in mac.DataElementsSigned]
    assert signed == sorted(int(t) for t in signable_top_level_tags(again))
    assert 0x54000100 in signed and 0x00100010 in signed
    item = again.DigitalSignaturesSequence[0]
    assert item.DigitalSignatureUID == uid
    assert item.DigitalSignatureDateTime == "20250301083000.000000+0000"
    assert item.CertificateType == "X509_1993_SIG"
    der = pki.rsa_doctor.certificate.public_bytes(serialization.Encoding.DER)
    assert item.CertificateOfSigner[: len(der)] == der
    assert len(item.CertificateOfSigner) % 2 == 0
    assert len(item.Signature) == 384


@pytest.mark.parametrize("mac", ["SHA256", "sha384", "SHA-512"])
@pytest.mark.parametrize("doctor", ["rsa_doctor", "ec_doctor"])
def test_sign_and_verify_each_key_and_hash(
    pki: Pki, ecg_dataset: Dataset, mac: str, doctor: str
) -> None:
    profile = "base" if doctor == "rsa_doctor" else "none"
    sign_dataset(ecg_dataset, getattr(pki, doctor), mac_algorithm=mac, profile=profile)
    [verdict] = _verify(pki, ecg_dataset)
    assert verdict.status is SignatureStatus.VALID, verdict.findings
    assert verdict.mac_algorithm == mac.upper().replace("-", "")
    identity = getattr(pki, doctor)
    assert verdict.signer_name == identity.common_name
    assert verdict.licence_number in ("LIC-1001", "LIC-1003")


def test_several_signatures_stack_independently(pki: Pki, ecg_dataset: Dataset) -> None:
    first = sign_dataset(ecg_dataset, pki.rsa_doctor, purpose=14)
    ecg_dataset.StudyDescription = "Resting 12-lead ECG, reviewed"
    second = sign_dataset(ecg_dataset, pki.ec_doctor, profile="none", mac_algorithm="SHA512",
                          purpose=13)  # fmt: skip
    third = sign_dataset(ecg_dataset, pki.rsa_doctor_2, profile="creator", mac_algorithm="SHA384")
    verdicts = _verify(pki, ecg_dataset)
    assert [v.signature_uid for v in verdicts] == [first, second, third]
    # The first signature covered the old description: it is now broken, the others hold.
    assert [v.status for v in verdicts] == [
        SignatureStatus.INVALID_DATA_CHANGED, SignatureStatus.VALID, SignatureStatus.VALID,
    ]  # fmt: skip
    macs = read_dicom(dataset_to_bytes(ecg_dataset)).MACParametersSequence
    assert [m.MACIDNumber for m in macs] == [0, 1, 2]


def test_attributes_added_after_signing_are_reported_not_covered(
    pki: Pki, ecg_dataset: Dataset
) -> None:
    sign_dataset(ecg_dataset, pki.rsa_doctor)
    ecg_dataset.PatientComments = "added later"
    [verdict] = _verify(pki, ecg_dataset)
    assert verdict.valid
    assert any("PatientComments" in a for a in verdict.unsigned_attributes)
    assert any("not protected" in f for f in verdict.findings)


def test_creator_profile_requires_its_attributes_and_rsa(pki: Pki, ecg_dataset: Dataset) -> None:
    with pytest.raises(SigningError, match="Creator RSA"):
        sign_dataset(ecg_dataset, pki.rsa_doctor, profile="creator",
                     data_elements=["PatientName", "PatientID"])  # fmt: skip
    with pytest.raises(SigningError, match="needs an RSA key"):
        sign_dataset(ecg_dataset, pki.ec_doctor, profile="creator")
    with pytest.raises(SigningError, match="needs an RSA key"):
        sign_dataset(ecg_dataset, pki.ec_doctor, profile="base")
    sign_dataset(ecg_dataset, pki.rsa_doctor, profile="creator")
    assert _verify(pki, ecg_dataset)[0].valid


def test_signing_a_subset_gives_insufficient_coverage(pki: Pki, ecg_dataset: Dataset) -> None:
    sign_dataset(ecg_dataset, pki.rsa_doctor,
                 data_elements=["PatientName", "PatientID", 0x00100030])  # fmt: skip
    [verdict] = _verify(pki, ecg_dataset)
    assert verdict.status is SignatureStatus.COVERAGE_INSUFFICIENT
    assert "WaveformSequence (5400,0100)" in verdict.missing_required
    assert "does not cover" in verdict.reason
    [relaxed] = _verify(pki, ecg_dataset, required_coverage=())
    assert relaxed.valid


@pytest.mark.parametrize(
    ("elements", "match"),
    [
        (["NoSuchKeyword"], "not a DICOM attribute"),
        (["PatientComments"], "not in the object"),
        ([0x00020010], "never be covered"),
        ([], "No attribute"),
    ],
)
def test_bad_element_lists_are_refused(
    pki: Pki,
    ecg_dataset: Dataset,
    elements: list,
    match: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(SigningError, match=match):
        sign_dataset(ecg_dataset, pki.rsa_doctor, data_elements=elements)


def test_bad_options_are_refused(pki: Pki, ecg_dataset: Dataset) -> None:
    with pytest.raises(SigningError, match="MAC algorithm"):
        sign_dataset(ecg_dataset, pki.rsa_doctor, mac_algorithm="RIPEMD160")
    with pytest.raises(SigningError, match="profile"):
        sign_dataset(ecg_dataset, pki.rsa_doctor, profile="authorization")
    with pytest.raises(SigningError, match="purpose"):
        sign_dataset(ecg_dataset, pki.rsa_doctor, purpose=99)
    assert "DigitalSignaturesSequence" not in ecg_dataset


def test_callback_signer_as_for_a_pkcs11_token(pki: Pki, ecg_dataset: Dataset) -> None:
    seen: list[tuple[int, str]] = []
    key = pki.rsa_doctor.private_key

    def token_sign(digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        seen.append((len(digest), algorithm.name))
        return key.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))  # type: ignore[union-attr, call-arg, arg-type]

    signer = CallbackSigner(pki.rsa_doctor.certificate, token_sign)
    sign_dataset(ecg_dataset, signer, mac_algorithm="SHA384")
    assert seen == [(48, "sha384")]
    assert _verify(pki, ecg_dataset)[0].valid


def test_key_not_matching_the_certificate_is_refused(pki: Pki, ecg_dataset: Dataset) -> None:
    other = pki.rsa_doctor_2.private_key

    def wrong_key(digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        return other.sign(digest, padding.PKCS1v15(), Prehashed(algorithm))  # type: ignore[union-attr, call-arg, arg-type]

    with pytest.raises(SigningError, match="does not match the certificate"):
        sign_dataset(ecg_dataset, CallbackSigner(pki.rsa_doctor.certificate, wrong_key))

    def broken_token(digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        raise RuntimeError("CKR_DEVICE_REMOVED")

    with pytest.raises(SigningError, match="CKR_DEVICE_REMOVED"):
        sign_dataset(ecg_dataset, CallbackSigner(pki.rsa_doctor.certificate, broken_token))
    assert "DigitalSignaturesSequence" not in ecg_dataset


def test_unsupported_certificate_keys_are_refused(pki: Pki, ecg_dataset: Dataset) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Dr Edwards")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None)
    )  # fmt: skip
    with pytest.raises(UnsupportedCertificate, match="RSA or elliptic-curve"):
        sign_dataset(ecg_dataset, CallbackSigner(certificate, lambda d, a: b""))
    assert generate_private_key is not None
