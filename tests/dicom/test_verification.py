"""Verifying DICOM signatures: the tamper matrix, certificate problems, malformed signatures."""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable

import pydicom
import pytest
from cryptography.hazmat.primitives import serialization
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from rekam.dicom import (
    SignatureInvalid,
    SignatureStatus,
    dataset_to_bytes,
    read_dicom,
    require_valid_signatures,
    sign_dataset,
    verify_dataset,
)
from rekam.pki import CertificateRevocationList, RevocationReason

from .conftest import Pki

NOW = datetime.datetime.now(datetime.UTC)


def _signed_file(pki: Pki, ds: Dataset, doctor: str = "rsa_doctor", **kwargs) -> bytes:  # type: ignore[no-untyped-def]
    profile = "base" if doctor.startswith("rsa") else "none"
    sign_dataset(ds, getattr(pki, doctor), profile=profile, **kwargs)
    return dataset_to_bytes(ds)


def _status(pki: Pki, data: bytes | Dataset, **kwargs) -> SignatureStatus:  # type: ignore[no-untyped-def]
    verdicts = verify_dataset(data, pki.roots, pki.intermediates, **kwargs)
    assert len(verdicts) == 1
    return verdicts[0].status


def _change_patient_name(ds: Dataset, pki: Pki) -> None:
    ds.PatientName = "Changed^Name"


def _change_one_sample(ds: Dataset, pki: Pki) -> None:
    group = ds.WaveformSequence[0]
    data = bytearray(group.WaveformData)
    data[5000] ^= 0x01
    group.WaveformData = bytes(data)


def _change_sensitivity(ds: Dataset, pki: Pki) -> None:
    ds.WaveformSequence[0].ChannelDefinitionSequence[3].ChannelSensitivity = "1"


def _delete_signed_attribute(ds: Dataset, pki: Pki) -> None:
    del ds.PatientBirthDate


def _change_signature_time(ds: Dataset, pki: Pki) -> None:
    ds.DigitalSignaturesSequence[0].DigitalSignatureDateTime = "20200101000000.000000+0000"


def _shrink_signed_list(ds: Dataset, pki: Pki) -> None:
    mac = ds.MACParametersSequence[0]
    tags = [t for t in mac.DataElementsSigned if int(t) != 0x00100010]
    mac["DataElementsSigned"] = DataElement(0x04000020, "AT", tags)


def _swap_certificate(ds: Dataset, pki: Pki) -> None:
    other = pki.rsa_doctor_2.certificate.public_bytes(serialization.Encoding.DER)
    ds.DigitalSignaturesSequence[0].CertificateOfSigner = other + b"\x00" * (len(other) % 2)


def _change_mac_algorithm(ds: Dataset, pki: Pki) -> None:
    ds.MACParametersSequence[0].MACAlgorithm = "SHA512"


def _change_signature_byte(ds: Dataset, pki: Pki) -> None:
    signature = bytearray(ds.DigitalSignaturesSequence[0].Signature)
    signature[10] ^= 0x80
    ds.DigitalSignaturesSequence[0].Signature = bytes(signature)


TAMPERING: dict[str, Callable[[Dataset, Pki], None]] = {
    "patient name": _change_patient_name,
    "one waveform sample": _change_one_sample,
    "a channel sensitivity": _change_sensitivity,
    "a deleted signed attribute": _delete_signed_attribute,
    "the signature date-time": _change_signature_time,
    "the signed-element list": _shrink_signed_list,
    "a swapped certificate": _swap_certificate,
    "the MAC algorithm": _change_mac_algorithm,
    "the signature value": _change_signature_byte,
}


@pytest.mark.parametrize("doctor", ["rsa_doctor", "ec_doctor"])
@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
def test_tamper_matrix_is_detected(
    pki: Pki, ecg_dataset: Dataset, tamper: str, doctor: str
) -> None:
    data = _signed_file(pki, ecg_dataset, doctor)
    assert _status(pki, data) is SignatureStatus.VALID
    tampered = read_dicom(data)
    TAMPERING[tamper](tampered, pki)
    verdicts = verify_dataset(dataset_to_bytes(tampered), pki.roots, pki.intermediates)
    assert not verdicts[0].valid
    assert verdicts[0].status is SignatureStatus.INVALID_DATA_CHANGED, verdicts[0].findings
    assert verdicts[0].reason.startswith("signature invalid: the data was changed after signing")


def test_deleted_signed_attribute_is_named(pki: Pki, ecg_dataset: Dataset) -> None:
    tampered = read_dicom(_signed_file(pki, ecg_dataset))
    del tampered.PatientBirthDate
    [verdict] = verify_dataset(tampered, pki.roots, pki.intermediates)
    assert any("PatientBirthDate" in finding for finding in verdict.findings)


def test_verifies_after_an_implicit_vr_hop(pki: Pki, ecg_dataset: Dataset) -> None:
    ds = read_dicom(_signed_file(pki, ecg_dataset))
    buffer = io.BytesIO()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True, enforce_file_format=True)
    assert _status(pki, buffer.getvalue()) is SignatureStatus.VALID
    # A dataset already converted in memory verifies the same way.
    converted = read_dicom(buffer.getvalue())
    for _ in converted.iterall():
        pass
    assert _status(pki, converted) is SignatureStatus.VALID


def test_revoked_before_signing(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset, "revoked_doctor")
    [verdict] = verify_dataset(data, pki.roots, pki.intermediates, crls=[pki.crl.crl])
    assert verdict.status is SignatureStatus.CERTIFICATE_REVOKED
    assert "revoked" in verdict.reason
    # Without the CRL the same signature looks fine: revocation needs the list.
    assert _status(pki, data) is SignatureStatus.VALID


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (RevocationReason.key_compromise, SignatureStatus.CERTIFICATE_REVOKED),
        (RevocationReason.unspecified, SignatureStatus.CERTIFICATE_REVOKED),
        (RevocationReason.superseded, SignatureStatus.VALID),
    ],
)
def test_revoked_after_signing_depends_on_the_reason(
    pki: Pki, ecg_dataset: Dataset, reason: RevocationReason, expected: SignatureStatus
) -> None:
    signed_at = pki.ec_doctor.certificate.not_valid_before_utc + datetime.timedelta(minutes=1)
    data = _signed_file(pki, ecg_dataset, "ec_doctor", signed_at=signed_at)
    crl = CertificateRevocationList.create(pki.issuing)
    revoked_at = signed_at + datetime.timedelta(minutes=1)
    crl.revoke(pki.ec_doctor.certificate, reason, revoked_at=revoked_at)
    [verdict] = verify_dataset(data, pki.roots, pki.intermediates, crls=[crl.crl])
    assert verdict.status is expected
    assert any("revoked" in f for f in verdict.findings)


def test_expired_at_signing(pki: Pki, ecg_dataset: Dataset) -> None:
    expired = pki.short_lived_doctor.certificate.not_valid_after_utc
    signed_at = expired + datetime.timedelta(hours=2)
    data = _signed_file(pki, ecg_dataset, "short_lived_doctor", signed_at=signed_at)
    [verdict] = verify_dataset(
        data, pki.roots, pki.intermediates, at=signed_at + datetime.timedelta(hours=1)
    )
    assert verdict.status is SignatureStatus.CERTIFICATE_EXPIRED_AT_SIGNING
    assert "expired" in verdict.reason


def test_signed_before_the_certificate_existed(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset, "ec_doctor", signed_at=NOW - datetime.timedelta(days=3))
    assert _status(pki, data) is SignatureStatus.CERTIFICATE_EXPIRED_AT_SIGNING


def test_foreign_ca_is_untrusted(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset, "foreign_doctor")
    [verdict] = verify_dataset(data, pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.CERTIFICATE_UNTRUSTED
    assert "not trusted" in verdict.reason
    # The same doctor name and licence does not help: trust comes from the CA.
    assert verdict.signer_name == "Dr Ana Cardio"
    [trusting] = verify_dataset(data, [pki.foreign_root.certificate])
    assert trusting.valid


def test_no_trusted_roots_means_untrusted(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset)
    [verdict] = verify_dataset(data, [], pki.intermediates)
    assert verdict.status is SignatureStatus.CERTIFICATE_UNTRUSTED


def test_missing_intermediate_means_untrusted(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset)
    [verdict] = verify_dataset(data, pki.roots)
    assert verdict.status is SignatureStatus.CERTIFICATE_UNTRUSTED


def test_signature_dated_in_the_future_is_refused(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset, signed_at=NOW + datetime.timedelta(days=1))
    [verdict] = verify_dataset(data, pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.MALFORMED
    assert "future" in verdict.reason


def _set(path: str, value: object) -> Callable[[Dataset], None]:
    def apply(ds: Dataset) -> None:
        sequence, attribute = path.split(".")
        setattr(getattr(ds, sequence)[0], attribute, value)

    return apply


MALFORMATIONS: dict[str, tuple[Callable[[Dataset], None], str]] = {
    "unknown certificate type": (
        _set("DigitalSignaturesSequence.CertificateType", "PGP"),
        "certificate type",
    ),
    "garbage certificate": (
        _set("DigitalSignaturesSequence.CertificateOfSigner", b"\x30\x03abcd"),
        "unreadable",
    ),
    "RIPEMD-160": (_set("MACParametersSequence.MACAlgorithm", "RIPEMD160"), "RIPEMD-160"),
    "implicit MAC syntax": (
        _set("MACParametersSequence.MACCalculationTransferSyntaxUID", "1.2.840.10008.1.2"),
        "transfer syntax",
    ),
    "MAC ID mismatch": (_set("MACParametersSequence.MACIDNumber", 7), "MAC"),
    "bad date": (_set("DigitalSignaturesSequence.DigitalSignatureDateTime", "yesterday"), "date"),
    "no MAC parameters": (lambda ds: delattr(ds, "MACParametersSequence"), "MAC"),
}


@pytest.mark.filterwarnings("ignore:Invalid value for VR DT")
@pytest.mark.parametrize("case", list(MALFORMATIONS), ids=list(MALFORMATIONS))
def test_malformed_signatures_are_never_valid(pki: Pki, ecg_dataset: Dataset, case: str) -> None:
    ds = read_dicom(_signed_file(pki, ecg_dataset))
    change, words = MALFORMATIONS[case]
    change(ds)
    [verdict] = verify_dataset(dataset_to_bytes(ds), pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.MALFORMED
    assert words in verdict.reason


def test_unsigned_object_has_no_verdicts_and_require_refuses_it(
    pki: Pki, ecg_dataset: Dataset
) -> None:
    assert verify_dataset(ecg_dataset, pki.roots) == []
    with pytest.raises(SignatureInvalid, match="not signed"):
        require_valid_signatures(ecg_dataset, pki.roots)


def test_require_valid_signatures(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset)
    assert len(require_valid_signatures(data, pki.roots, pki.intermediates)) == 1
    tampered = read_dicom(data)
    tampered.PatientID = "SOMEONE-ELSE"
    with pytest.raises(SignatureInvalid, match="changed after signing") as caught:
        require_valid_signatures(tampered, pki.roots, pki.intermediates)
    assert len(caught.value.verdicts) == 1


def test_verdict_explains_itself(pki: Pki, ecg_dataset: Dataset) -> None:
    data = _signed_file(pki, ecg_dataset)
    [verdict] = verify_dataset(data, pki.roots, pki.intermediates)
    summary = verdict.summary()
    assert summary.startswith("VALID — Dr Ana Cardio (licence LIC-1001)")
    assert "SHA256" in summary
    as_json = verdict.to_dict()
    assert as_json["status"] == "VALID" and as_json["valid"] is True
    assert as_json["signer"] == "Dr Ana Cardio"
    assert "PatientName (0010,0010)" in as_json["signed_attributes"]
