"""The Orthanc PACS implementations against a real Orthanc: DIMSE and DICOMweb round trips,
signatures still verifying (rekam and dcmtk's dcmsign), clear errors when Orthanc is absent,
refuses or answers nonsense."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import httpx
import pytest

from rekam.dicom import verify_dataset
from rekam.dicom.pacs import (
    InstanceNotFound,
    Pacs,
    PacsRefused,
    PacsResponseInvalid,
    PacsUnavailable,
    StudyQuery,
)
from rekam.dicom.pacs.orthanc_dicomweb import OrthancDicomWeb
from rekam.dicom.pacs.orthanc_dimse import OrthancDimse
from support.orthanc import CALLING_AET, ORTHANC_AET, OrthancServer
from support.pacs_objects import PATIENT_NAME, ecg_object
from support.servers import free_port

from .conftest import Pki, peer


def dimse(server: OrthancServer, calling: str = CALLING_AET) -> OrthancDimse:
    return OrthancDimse("127.0.0.1", server.dicom_port, called_aet=ORTHANC_AET, calling_aet=calling)


def dicomweb(server: OrthancServer) -> OrthancDicomWeb:
    return OrthancDicomWeb(server.dicomweb_url, auth=server.auth)


@pytest.fixture(params=["dimse", "dicomweb"])
def pacs(request: pytest.FixtureRequest, orthanc: OrthancServer) -> Pacs:
    return dimse(orthanc) if request.param == "dimse" else dicomweb(orthanc)


def _orthanc_has(server: OrthancServer, sop_instance_uid: str) -> bytes | None:
    """The stored file as Orthanc's own REST API gives it (an independent check)."""
    with server.rest() as client:
        found = client.post(
            "/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}},
        ).json()
        if not found:
            return None
        return client.get(f"/instances/{found[0]}/file").content


def _dcmsign_verifies(pki: Pki, data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "back.dcm"
    path.write_bytes(data)
    result = peer(
        "dcmsign", "--verify", "--add-cert-file", pki.path("root.pem"),
        "--add-cert-file", pki.path("issuing.pem"), path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(result.stdout) + str(result.stderr)


@pytest.mark.parametrize("store_with", ["dimse", "dicomweb"])
@pytest.mark.parametrize("get_with", ["dimse", "dicomweb"])
def test_signed_ecg_round_trip_verifies_with_rekam_and_dcmsign(
    orthanc: OrthancServer, pki: Pki, tmp_path: Path, store_with: str, get_with: str
) -> None:
    seed = {"dimse": 0, "dicomweb": 1}[store_with] * 2 + {"dimse": 0, "dicomweb": 1}[get_with]
    data = ecg_object(100 + seed, pki.rsa_doctor, patient_id=f"ORT-{store_with}-{get_with}")
    sender = dimse(orthanc) if store_with == "dimse" else dicomweb(orthanc)
    stored = sender.store(data)
    in_orthanc = _orthanc_has(orthanc, stored.sop_instance_uid)
    assert in_orthanc is not None  # Orthanc's REST API confirms it arrived
    receiver = dimse(orthanc) if get_with == "dimse" else dicomweb(orthanc)
    back = receiver.get(stored.sop_instance_uid)
    verdicts = verify_dataset(back, pki.roots, pki.intermediates)
    assert [v.valid for v in verdicts] == [True], [v.summary() for v in verdicts]
    assert verdicts[0].signer_name == "Dr Ana Cardio"
    report = _dcmsign_verifies(pki, back, tmp_path)
    assert "Signature Verification" in report and "OK" in report
    assert hashlib.sha256(back[132:]).digest() != b""  # the data set is there
    assert PATIENT_NAME.split("^")[0].encode() in back


def test_tampered_object_fails_after_round_trip(
    orthanc: OrthancServer, pki: Pki, tmp_path: Path
) -> None:
    data = ecg_object(110, pki.rsa_doctor, patient_name="Tamper^Test")
    tampered = data.replace(b"Tamper^Test", b"Tamper^Tust")
    assert tampered != data
    stored = dimse(orthanc).store(tampered)
    back = dicomweb(orthanc).get(stored.sop_instance_uid)
    assert not verify_dataset(back, pki.roots, pki.intermediates)[0].valid
    path = tmp_path / "bad.dcm"
    path.write_bytes(back)
    result = peer("dcmsign", "--verify", "--add-cert-file", pki.path("root.pem"),
                  "--add-cert-file", pki.path("issuing.pem"), path)  # fmt: skip
    assert result.returncode != 0
    assert "signature is invalid" in result.stderr


def test_find_at_study_series_and_instance_level(pacs: Pacs, orthanc: OrthancServer) -> None:
    tag = f"FIND-{type(pacs).__name__}"
    first = pacs.store(ecg_object(120, None, patient_id=tag, accession=f"A{tag[-6:]}1",
                                  study_date=datetime.date(2023, 6, 1)))  # fmt: skip
    second = pacs.store(ecg_object(121, None, patient_id=tag, accession=f"A{tag[-6:]}2",
                                   study_date=datetime.date(2023, 7, 1)))  # fmt: skip
    studies = pacs.find_studies(StudyQuery(patient_id=tag))
    assert {s.study_instance_uid for s in studies} == {
        first.study_instance_uid,
        second.study_instance_uid,
    }
    one = next(s for s in studies if s.study_instance_uid == first.study_instance_uid)
    assert one.patient_name == PATIENT_NAME and one.study_date == "20230601"
    assert one.accession_number == f"A{tag[-6:]}1"
    june = pacs.find_studies(StudyQuery(patient_id=tag, study_date="20230601-20230630"))
    assert [s.study_instance_uid for s in june] == [first.study_instance_uid]
    by_accession = pacs.find_studies(StudyQuery(accession_number=f"A{tag[-6:]}2"))
    assert [s.study_instance_uid for s in by_accession] == [second.study_instance_uid]
    series = pacs.find_series(first.study_instance_uid)
    assert [s.series_instance_uid for s in series] == [first.series_instance_uid]
    assert series[0].modality == "ECG"
    instances = pacs.find_instances(first.study_instance_uid)
    assert [i.sop_instance_uid for i in instances] == [first.sop_instance_uid]
    assert instances[0].sop_class_uid == first.sop_class_uid
    assert pacs.find_studies(StudyQuery(patient_id="NOBODY-AT-ALL")) == []


def test_unknown_instance_and_bad_input(pacs: Pacs, orthanc: OrthancServer) -> None:
    with pytest.raises(InstanceNotFound):
        pacs.get("1.2.826.0.1.3680043.10.1045.999999")
    from rekam.dicom import DicomError

    with pytest.raises(DicomError, match="not a DICOM file"):
        pacs.store(b"hello, not dicom" * 20)
    with pytest.raises(DicomError, match="incomplete"):
        pacs.store(ecg_object(130)[:-5000])


def test_orthanc_down_gives_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(PacsUnavailable, match="cannot be reached"):
        OrthancDimse("127.0.0.1", port, timeout=5).find_studies(StudyQuery(patient_id="X"))
    with pytest.raises(PacsUnavailable, match="cannot be reached"):
        OrthancDicomWeb(f"http://127.0.0.1:{port}/dicom-web", timeout=5).find_studies(
            StudyQuery(patient_id="X")
        )


def test_orthanc_refuses_unknown_ae_title_and_wrong_password(orthanc: OrthancServer) -> None:
    with pytest.raises(PacsRefused, match="STRANGER"):
        dimse(orthanc, calling="STRANGER").store(ecg_object(140))
    wrong = OrthancDicomWeb(orthanc.dicomweb_url, auth=("rekam", "wrong-password"))
    with pytest.raises(PacsRefused, match="credentials"):
        wrong.store(ecg_object(141))


def test_unexpected_answers_are_reported(orthanc: OrthancServer) -> None:
    # Orthanc's own REST root is not a DICOMweb root: its /studies is a list of Orthanc ids,
    # not the DICOM JSON QIDO-RS promises.
    confused = OrthancDicomWeb(orthanc.url, auth=orthanc.auth)
    dimse(orthanc).store(ecg_object(150))
    with pytest.raises(PacsResponseInvalid, match="not a list"):
        confused.find_studies(StudyQuery())
    nowhere = OrthancDicomWeb(orthanc.url + "/no-such-root", auth=orthanc.auth)
    with pytest.raises(PacsRefused, match="DICOMweb URL"):
        nowhere.find_studies(StudyQuery(patient_id="X"))
    with httpx.Client() as client:
        assert client.get(orthanc.url + "/system").status_code == 401  # auth really is on
