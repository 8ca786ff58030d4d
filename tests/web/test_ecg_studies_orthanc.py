"""The specialist's ECG workflow with Orthanc as the PACS (REKAM_PACS=orthanc), over DIMSE and
DICOMweb, against a real Orthanc: the GP's send form puts the object in Orthanc and the index in
Rekam's database; the worklist, the study page (signatures verified again on the bytes fetched
back from Orthanc) and the report work as on the embedded archive. A tampered object is found
after the round trip, an object replaced inside Orthanc is not trusted, and an Orthanc that
cannot be reached is a readable 503 with nothing lost."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from rekam.config import Settings
from rekam.his.installation import Clinic, open_clinic
from rekam.his.pacs_archive import EXTERNAL_OBJECT, PacsArchiveService
from rekam.his.rbac import Actor, Role
from rekam.pki import Identity, KeyAlgorithm
from rekam.store.models import AuditEntry, EcgStudyReport, PacsInstance
from rekam.web.app import create_app
from support.orthanc import CALLING_AET, ORTHANC_AET, OrthancServer
from support.pacs_objects import PATIENT_NAME, ecg_object
from support.servers import Installation, free_port

from .test_ecg_studies_pages import DATA_CHANGED, form_login

SENDER = Actor(user_id=None, username="gp.orthanc", role=Role.DOCTOR, source_address="test")


def orthanc_settings(
    installation: Installation, orthanc: OrthancServer, protocol: str, *, dead: bool = False
) -> Settings:
    """The installation's settings with Orthanc as the PACS (``dead``: an address where
    nothing listens, for both protocols)."""
    port = free_port()
    return Settings(
        data_dir=installation.data_dir,
        **installation.overrides,  # type: ignore[arg-type]
        pacs="orthanc",
        pacs_protocol=protocol,
        orthanc_host="127.0.0.1",
        orthanc_dicom_port=port if dead else orthanc.dicom_port,
        orthanc_aet=ORTHANC_AET,
        pacs_calling_aet=CALLING_AET,
        orthanc_dicomweb_url=f"http://127.0.0.1:{port}/dicom-web" if dead else orthanc.dicomweb_url,
        orthanc_username=orthanc.username,
        orthanc_password=orthanc.password,
        pacs_timeout_seconds=5.0,
    )


@dataclass
class OrthancMode:
    client: TestClient
    clinic: Clinic
    protocol: str


@pytest.fixture(params=["dimse", "dicomweb"])
def mode(
    request: pytest.FixtureRequest, installation: Installation, orthanc: OrthancServer
) -> Iterator[OrthancMode]:
    clinic = open_clinic(orthanc_settings(installation, orthanc, request.param))
    try:
        with TestClient(create_app(clinic), base_url="https://testserver") as client:
            yield OrthancMode(client, clinic, request.param)
    finally:
        clinic.close()


@pytest.fixture(scope="module")
def cardiologist(clinic: Clinic) -> Identity:
    return clinic.pki.issue_doctor("Dr Rina Jantung", "LIC-8201", None, KeyAlgorithm.RSA3072)


def _seed(protocol: str, n: int) -> int:
    return 600 + n * 2 + (protocol == "dicomweb")


def _orthanc_file(server: OrthancServer, sop_instance_uid: str) -> tuple[str, bytes] | None:
    """Orthanc's id and stored file, through its own REST API (an independent check)."""
    with server.rest() as client:
        found = client.post(
            "/tools/find",
            json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}},
        ).json()
        if not found:
            return None
        return found[0], client.get(f"/instances/{found[0]}/file").content


def _replace_in_orthanc(server: OrthancServer, sop_instance_uid: str, data: bytes) -> None:
    """Swap the stored file for ``data`` (same SOP Instance UID) behind Rekam's back."""
    held = _orthanc_file(server, sop_instance_uid)
    assert held is not None
    with server.rest() as client:
        assert client.delete(f"/instances/{held[0]}").status_code == 200
        added = client.post("/instances", content=data)
        assert added.status_code == 200, added.text


def _send(client: TestClient, csrf: str, data: bytes) -> tuple[str, str]:
    sent = client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf},
        files={"file": ("ecg.dcm", data, "application/dicom")},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    where = re.fullmatch(
        r"/ecg-studies/([0-9.]+)\?instance=([0-9.]+)&sent=1", sent.headers["location"]
    )
    assert where is not None
    return where.group(1), where.group(2)


def _row(clinic: Clinic, sop: str) -> PacsInstance | None:
    with clinic.database.transaction() as session:
        return session.scalar(select(PacsInstance).where(PacsInstance.sop_instance_uid == sop))


def _actions(clinic: Clinic, record: str) -> list[str]:
    with clinic.database.transaction() as session:
        return list(session.scalars(select(AuditEntry.action).where(AuditEntry.record == record)))


def _verdict(html: str) -> str:
    at, chart = html.index('id="verdict"'), html.index('id="chart"')
    assert at < chart
    return html[at:chart]


def test_send_worklist_verdict_report_with_orthanc(
    mode: OrthancMode, orthanc: OrthancServer, cardiologist: Identity
) -> None:
    data = ecg_object(_seed(mode.protocol, 0), cardiologist, patient_id=f"ORW-{mode.protocol}")
    csrf = form_login(mode.client, "doctor1")
    study, sop = _send(mode.client, csrf, data)
    held = _orthanc_file(orthanc, sop)
    assert held is not None  # Orthanc holds the object, its data set unchanged
    assert pydicom.dcmread(io.BytesIO(held[1])) == pydicom.dcmread(io.BytesIO(data))
    row = _row(mode.clinic, sop)
    assert row is not None and row.object_name == EXTERNAL_OBJECT  # indexed here, no blob
    assert row.signature_status == "valid"
    listed = mode.client.get("/ecg-studies").text
    entry = re.search(rf'<tr data-study="{re.escape(study)}">(.*?)</tr>', listed, re.S)
    assert entry is not None and "badge-valid" in entry.group(1)
    page = mode.client.get(f"/ecg-studies/{study}")
    assert page.status_code == 200
    verdict = _verdict(page.text)
    assert "Signature valid: the data is unchanged since signing" in verdict
    assert "Dr Rina Jantung" in verdict and "LIC-8201" in verdict
    assert len(re.findall(r'<polyline class="trace[ "]', page.text)) == 13
    done = mode.client.post(
        f"/ecg-studies/{study}/report",
        data={"csrf_token": csrf, "sop_instance_uid": sop, "interpretation": "Irama sinus."},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert "Irama sinus." in mode.client.get(done.headers["location"]).text
    with mode.clinic.database.transaction() as session:
        report = session.scalar(
            select(EcgStudyReport).where(EcgStudyReport.sop_instance_uid == sop)
        )
        assert report is not None and not report.signature_override
    actions = _actions(mode.clinic, row.id)
    assert "pacs.store" in actions and actions.count("pacs.read") >= 2  # page and report


def test_tampered_object_is_detected_after_the_round_trip(
    mode: OrthancMode, orthanc: OrthancServer, cardiologist: Identity
) -> None:
    signed = ecg_object(_seed(mode.protocol, 1), cardiologist, patient_id=f"ORT-{mode.protocol}")
    original = PATIENT_NAME.encode()
    tampered = signed.replace(original, original[:-1] + b"o")
    assert tampered != signed
    csrf = form_login(mode.client, "doctor1")
    study, sop = _send(mode.client, csrf, tampered)
    assert _orthanc_file(orthanc, sop) is not None
    page = mode.client.get(f"/ecg-studies/{study}")
    assert page.status_code == 200
    assert DATA_CHANGED in _verdict(page.text)
    assert 'class="verdict verdict-invalid"' in page.text
    assert "badge-invalid" in mode.client.get("/ecg-studies?status=invalid").text


def test_object_replaced_inside_orthanc_is_not_trusted(
    mode: OrthancMode, orthanc: OrthancServer
) -> None:
    """An unsigned object has no signature to catch a change: the digest recorded at storing
    does."""
    data = ecg_object(_seed(mode.protocol, 2), None, patient_id=f"ORX-{mode.protocol}")
    stored = PacsArchiveService.for_clinic(mode.clinic).store(SENDER, data)
    original = PATIENT_NAME.encode()
    _replace_in_orthanc(
        orthanc, stored.sop_instance_uid, data.replace(original, original[:-1] + b"o")
    )
    csrf = form_login(mode.client, "doctor1")
    page = mode.client.get(f"/ecg-studies/{stored.study_instance_uid}")
    assert page.status_code == 200
    verdict = _verdict(page.text)
    assert "Cannot be trusted: the PACS returned an object that is not the one stored" in verdict
    assert 'class="verdict verdict-invalid"' in page.text
    refused = mode.client.post(
        f"/ecg-studies/{stored.study_instance_uid}/report",
        data={"csrf_token": csrf, "sop_instance_uid": stored.sop_instance_uid,
              "interpretation": "Normal."},
    )  # fmt: skip
    assert refused.status_code == 422  # an override with a reason is needed
    with mode.clinic.database.transaction() as session:
        assert not session.scalar(
            select(func.count())
            .select_from(EcgStudyReport)
            .where(EcgStudyReport.sop_instance_uid == stored.sop_instance_uid)
        )


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_orthanc_unreachable_is_a_readable_error_and_nothing_is_lost(
    installation: Installation, orthanc: OrthancServer, cardiologist: Identity, protocol: str
) -> None:
    live = open_clinic(orthanc_settings(installation, orthanc, protocol))
    try:
        held = PacsArchiveService.for_clinic(live).store(
            SENDER, ecg_object(_seed(protocol, 3), cardiologist, patient_id=f"ORD-{protocol}")
        )
    finally:
        live.close()
    clinic = open_clinic(orthanc_settings(installation, orthanc, protocol, dead=True))
    try:
        with TestClient(create_app(clinic), base_url="https://testserver") as client:
            csrf = form_login(client, "doctor1")
            data = ecg_object(_seed(protocol, 4), cardiologist, patient_id=f"ORD-{protocol}")
            sent = client.post(
                "/ecg-studies/send",
                data={"csrf_token": csrf},
                files={"file": ("ecg.dcm", data, "application/dicom")},
                follow_redirects=False,
            )
            assert sent.status_code == 503
            assert "The PACS cannot be reached or refused the request" in sent.text
            assert 'enctype="multipart/form-data"' in sent.text  # the form is still there
            assert client.get("/ecg-studies").status_code == 200  # the index still answers
            page = client.get(f"/ecg-studies/{held.study_instance_uid}")
            assert page.status_code == 503
            assert "The PACS cannot be reached" in page.text
            report = client.post(
                f"/ecg-studies/{held.study_instance_uid}/report",
                data={"csrf_token": csrf, "sop_instance_uid": held.sop_instance_uid,
                      "interpretation": "Irama sinus."},
            )  # fmt: skip
            assert report.status_code == 503
    finally:
        clinic.close()
    refused_uid = str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID)
    assert _orthanc_file(orthanc, refused_uid) is None
    live = open_clinic(orthanc_settings(installation, orthanc, protocol))
    try:
        assert _row(live, refused_uid) is None
        with live.database.transaction() as session:  # no report half-written
            assert not session.scalar(
                select(func.count())
                .select_from(EcgStudyReport)
                .where(EcgStudyReport.sop_instance_uid == held.sop_instance_uid)
            )
        # the same file goes through once the PACS is back
        again = PacsArchiveService.for_clinic(live).store(SENDER, data)
        assert again.sop_instance_uid == refused_uid
        assert _orthanc_file(orthanc, refused_uid) is not None
    finally:
        live.close()
