"""The shortcuts that make batch signing fast give exactly what the general paths give.

- the direct walk of raw Explicit VR sequences hashes the same bytes as pydicom's parse;
- ``sign_file`` inserts the two signature elements into the source bytes, keeps every other
  byte, and falls back to a full write whenever that is not possible;
- remembered chain validations equal fresh ones at every time, boundaries included.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rekam.dicom import (
    DicomError,
    NotDicom,
    SignatureStatus,
    read_dicom,
    sign_file,
    verify_dataset,
    write_dicom,
)
from rekam.dicom.chain_outcomes import ChainOutcomes
from rekam.dicom.signature_stream import signable_top_level_tags, signed_elements_stream
from rekam.pki import CertificateRevocationList, ChainInvalid, RevocationReason, verify_chain

from .conftest import Pki, dciodvfy_errors, peer

ONE_SECOND = datetime.timedelta(seconds=1)


def _fully_parsed(path: Path) -> Dataset:
    """The same object with every sequence parsed by pydicom (the general hashing path)."""
    ds = read_dicom(path)
    for _ in ds.iterall():
        pass
    return ds


def _streams(path: Path) -> tuple[bytes, bytes]:
    raw = read_dicom(path)
    tags = signable_top_level_tags(_fully_parsed(path), include_private=True)
    return signed_elements_stream(raw, tags), signed_elements_stream(_fully_parsed(path), tags)


def _undefined_item_inside_defined_sequence(ds: Dataset) -> None:
    item = Dataset()
    item.CodeValue = "X"
    item.CodingSchemeDesignator = "99TEST"
    item.is_undefined_length_sequence_item = True
    ds.ProcedureCodeSequence = Sequence([item])


def _un_inside_a_sequence(ds: Dataset) -> None:
    item = Dataset()
    item.CodeValue = "X"
    item.add(DataElement(0x00090010, "LO", "VENDOR"))
    item.add(DataElement(0x00091001, "UN", b"ABC1"))  # stays UN: nothing knows its VR
    ds.ProcedureCodeSequence = Sequence([item])


@pytest.mark.parametrize(
    "case", ["ecg", "ecg-undefined-lengths", "vendor-ecg", "ct", "odd-item", "un-inside"]
)
def test_direct_sequence_walk_hashes_like_pydicom(
    ecg_dataset: Dataset, tmp_path: Path, case: str
) -> None:
    path = tmp_path / "object.dcm"
    if case.startswith("ecg") or case in ("odd-item", "un-inside"):
        if case == "odd-item":
            _undefined_item_inside_defined_sequence(ecg_dataset)
        if case == "un-inside":
            _un_inside_a_sequence(ecg_dataset)
        write_dicom(ecg_dataset, path)
        if case == "ecg-undefined-lengths":
            converted = tmp_path / "undefined.dcm"
            assert peer("dcmconv", "+te", "-e", path, converted).returncode == 0
            path = converted
    else:
        name = {"vendor-ecg": "waveform_ecg.dcm", "ct": "CT_small.dcm"}[case]
        path = Path(get_testdata_file(name))  # type: ignore[arg-type]
    fast, general = _streams(path)
    assert fast == general
    assert len(fast) > 1000
    if case == "un-inside":
        assert 0x00081032 not in signable_top_level_tags(read_dicom(path))


def _top_level_tags_in_file_order(path: Path) -> list[str]:
    """dcmdump's top-level tags in the order they are stored (an independent reader)."""
    result = peer("dcmdump", "-q", path)
    lines = result.stdout.splitlines()
    return [line[:11] for line in lines if line.startswith("(") and not line.startswith("(fffe")]


def test_sign_file_keeps_every_source_byte(pki: Pki, ecg_dataset: Dataset, tmp_path: Path) -> None:
    ecg_dataset.add(DataElement(0xFFFCFFFC, "OB", b"\x00" * 8))  # trailing padding after FFFA
    source, target = tmp_path / "source.dcm", tmp_path / "signed.dcm"
    write_dicom(ecg_dataset, source)
    original = source.read_bytes()
    sign_file(source, target, pki.rsa_doctor)
    assert source.read_bytes() == original
    signed = target.read_bytes()
    # Cut the two new elements out where pydicom finds them: what is left is the source.
    found = pydicom.dcmread(target)
    cuts = []
    for tag in (0x4FFE0001, 0xFFFAFFFA):
        raw = cast("RawDataElement", found.get_item(tag))
        assert isinstance(raw, RawDataElement) and raw.length != 0xFFFFFFFF
        cuts.append((raw.value_tell - 12, raw.value_tell + raw.length))
    (a, b), (c, d) = sorted(cuts)
    assert signed[:a] + signed[b:c] + signed[d:] == original
    order = _top_level_tags_in_file_order(target)
    assert order == sorted(order)
    assert "(4ffe,0001)" in order and order[-2:] == ["(fffa,fffa)", "(fffc,fffc)"]
    [verdict] = verify_dataset(target, pki.roots, pki.intermediates)
    assert verdict.status is SignatureStatus.VALID
    code = peer("dcmsign", "--verify", "--add-cert-file", pki.path("root.pem"),
                "--add-cert-file", pki.path("issuing.pem"), target)  # fmt: skip
    assert code.returncode == 0, code.stderr
    assert dciodvfy_errors(target) == []


@pytest.mark.parametrize("source_kind", ["signed-once", "implicit-vr"])
def test_sign_file_falls_back_to_a_full_write(
    pki: Pki, ecg_dataset: Dataset, tmp_path: Path, source_kind: str
) -> None:
    source, target = tmp_path / "source.dcm", tmp_path / "signed.dcm"
    write_dicom(ecg_dataset, source)
    if source_kind == "signed-once":
        sign_file(source, tmp_path / "once.dcm", pki.ec_doctor, profile="none")
        source = tmp_path / "once.dcm"
    else:
        implicit = tmp_path / "implicit.dcm"
        assert peer("dcmconv", "+ti", source, implicit).returncode == 0
        source = implicit
    sign_file(source, target, pki.rsa_doctor, mac_algorithm="SHA384")
    assert pydicom.dcmread(target).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    verdicts = verify_dataset(target, pki.roots, pki.intermediates)
    assert [v.status for v in verdicts] == [SignatureStatus.VALID] * (
        2 if source_kind == "signed-once" else 1
    )
    result = peer("dcmsign", "--verify", "--add-cert-file", pki.path("root.pem"),
                  "--add-cert-file", pki.path("issuing.pem"), target)  # fmt: skip
    assert result.returncode == 0
    assert result.stderr.count("Verification : OK") == len(verdicts)


def test_sign_file_refuses_bad_input(pki: Pki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom" * 20)
    with pytest.raises(NotDicom):
        sign_file(junk, tmp_path / "out.dcm", pki.rsa_doctor)
    with pytest.raises(DicomError, match="No file found"):
        sign_file(tmp_path / "missing.dcm", tmp_path / "out.dcm", pki.rsa_doctor)
    assert not (tmp_path / "out.dcm").exists()


def _outcome(run: Callable[[], None]) -> str:
    try:
        run()
    except ChainInvalid as exc:
        return f"{type(exc).__name__}: {exc.reason}"
    return "valid"


def test_remembered_chain_outcomes_equal_fresh_ones(pki: Pki) -> None:
    cache = ChainOutcomes()
    revoked_list = CertificateRevocationList.create(pki.issuing)
    ec = pki.ec_doctor.certificate
    revoked_at = ec.not_valid_before_utc + datetime.timedelta(hours=1)
    revoked_at = revoked_at.replace(microsecond=0)
    revoked_list.revoke(ec, RevocationReason.key_compromise, revoked_at=revoked_at)
    short = pki.short_lived_doctor.certificate
    next_update = revoked_list.crl.next_update_utc
    assert next_update is not None
    moments = [
        anchor + datetime.timedelta(seconds=offset)
        for anchor in (ec.not_valid_before_utc, revoked_at, short.not_valid_after_utc, next_update)
        for offset in (-2.0, -1.0, -0.5, 0.0, 0.25, 0.999, 1.0, 1.5, 30.0)
    ]
    seen = set()
    for certificate in (ec, short):
        for crls in ([], [revoked_list.crl], [pki.crl.crl]):
            for moment in moments * 2:  # the second pass is served from memory where allowed
                fresh = _outcome(
                    partial(
                        verify_chain, certificate, pki.intermediates, pki.roots, at=moment,
                        purpose="document", crls=crls,
                    )
                )  # fmt: skip
                remembered = _outcome(
                    partial(
                        cache.verify_document_signer, certificate, pki.intermediates, pki.roots,
                        crls, moment,
                    )
                )  # fmt: skip
                assert remembered == fresh, (certificate.subject, moment, crls)
                seen.add(fresh.split(":")[0])
    assert {"valid", "CertificateRevoked", "CertificateExpired", "ChainInvalid"} <= seen
