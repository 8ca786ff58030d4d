"""The ECG studies JSON API (/api/v1/ecg-studies): upload a DICOM object (multipart), the
worklist, a study with its signature verdicts verified when read, reports with the audited
override; CSRF, roles and bad input refused with nothing stored; the same over a real Orthanc
(DIMSE and DICOMweb), and a 503 when Orthanc cannot be reached."""

from __future__ import annotations

import io
from typing import Any

import pydicom
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from rekam.his.installation import Clinic, open_clinic
from rekam.pki import Identity, KeyAlgorithm
from rekam.store.models import AuditEntry, EcgStudyReport, PacsInstance
from rekam.web.app import create_app
from support.orthanc import OrthancServer
from support.pacs_objects import PATIENT_NAME, ecg_object
from support.servers import PASSWORD, Installation

from .test_ecg_studies_orthanc import (  # noqa: F401 - the fixture is used by name
    OrthancMode,
    mode,
    orthanc_settings,
)

API = "/api/v1/ecg-studies"


@pytest.fixture(scope="module")
def cardiologist(clinic: Clinic) -> Identity:
    return clinic.pki.issue_doctor("Dr Sari Jantung", "LIC-8301", None, KeyAlgorithm.RSA3072)


def api_login(client: TestClient, username: str) -> str:
    client.cookies.clear()
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def upload(client: TestClient, csrf: str | None, data: bytes, **form: str) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return client.post(
        f"{API}/objects",
        headers=headers,
        data=form,
        files={"file": ("ecg.dcm", data, "application/dicom")},
    )


def uid_of(data: bytes) -> tuple[str, str]:
    """(study, SOP Instance UID) read from the file itself, independently of the API."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    return str(dataset.StudyInstanceUID), str(dataset.SOPInstanceUID)


def _count(clinic: Clinic, model: Any, sop: str) -> int:
    with clinic.database.transaction() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.sop_instance_uid == sop)
            )
            or 0
        )


def _audited(clinic: Clinic, action: str, record: str) -> int:
    with clinic.database.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == action, AuditEntry.record == record)
            )
            or 0
        )


def _tampered(signed: bytes) -> bytes:
    name = PATIENT_NAME.encode()
    return signed.replace(name, name[:-1] + b"o")


def test_upload_worklist_study_and_report(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    data = ecg_object(801, cardiologist, patient_id="API-0801")
    study, sop = uid_of(data)
    csrf = api_login(app_client, "doctor1")
    stored = upload(app_client, csrf, data)
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["sop_instance_uid"] == sop and body["study_instance_uid"] == study
    assert body["signature_status"] == "valid" and "LIC-8301" in body["signer"]
    listed = app_client.get(API, params={"status": "valid", "limit": 200})
    assert listed.status_code == 200
    entry = next(s for s in listed.json() if s["study_instance_uid"] == study)
    assert entry["reported"] is False and entry["sent_by"] == "doctor1"
    assert entry["patient"]["dicom_patient_name"] == PATIENT_NAME  # not a patient here: shown
    assert [i["sop_instance_uid"] for i in entry["instances"]] == [sop]
    assert study not in {
        s["study_instance_uid"] for s in app_client.get(f"{API}?status=invalid").json()
    }
    read = app_client.get(f"{API}/{study}")
    assert read.status_code == 200, read.text
    detail = read.json()
    assert detail["signature"]["status"] == "valid"
    assert detail["signature"]["needs_override"] is False
    [verdict] = detail["signature"]["verdicts"]
    assert verdict["valid"] is True and verdict["status"] == "VALID"
    assert verdict["signer_name"] == "Dr Sari Jantung" and verdict["licence_number"] == "LIC-8301"
    assert len(detail["recording"]["leads"]) == 12
    assert (
        detail["recording"]["sampling_rate"] == 500
        and detail["recording"]["duration_seconds"] == 10
    )
    reported = app_client.post(
        f"{API}/{study}/reports",
        headers={"X-CSRF-Token": csrf},
        json={"sop_instance_uid": sop, "interpretation": "Irama sinus, normal."},
    )
    assert reported.status_code == 201, reported.text
    report = reported.json()
    assert report["signature_override"] is False and report["signature_status"] == "valid"
    assert _audited(clinic, "ecg-study.report", report["id"]) == 1
    again = app_client.get(f"{API}/{study}").json()
    assert [r["interpretation"] for r in again["reports"]] == ["Irama sinus, normal."]
    assert next(s for s in app_client.get(API).json() if s["study_instance_uid"] == study)[
        "reported"
    ]


def test_tampered_object_needs_an_audited_override(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    data = _tampered(ecg_object(802, cardiologist, patient_id="API-0802"))
    study, sop = uid_of(data)
    csrf = api_login(app_client, "nurse1")  # nurses send and read, but do not report
    assert upload(app_client, csrf, data).status_code == 201
    detail = app_client.get(f"{API}/{study}").json()
    assert detail["signature"]["status"] == "invalid"
    assert detail["signature"]["verdicts"][0]["status"] == "INVALID_DATA_CHANGED"
    refused = app_client.post(
        f"{API}/{study}/reports",
        headers={"X-CSRF-Token": csrf},
        json={"sop_instance_uid": sop, "interpretation": "Normal."},
    )
    assert refused.status_code == 403
    csrf = api_login(app_client, "doctor1")
    url, headers = f"{API}/{study}/reports", {"X-CSRF-Token": csrf}
    no_reason = app_client.post(
        url, headers=headers, json={"sop_instance_uid": sop, "interpretation": "Normal."}
    )
    assert no_reason.status_code == 422
    assert no_reason.json()["error"]["field"] == "override_reason"
    assert _count(clinic, EcgStudyReport, sop) == 0
    reason = "Dikonfirmasi dengan pengirim lewat telepon"
    done = app_client.post(
        url,
        headers=headers,
        json={"sop_instance_uid": sop, "interpretation": "Normal.", "override_reason": reason},
    )
    assert done.status_code == 201, done.text
    report = done.json()
    assert report["signature_override"] is True and report["override_reason"] == reason
    assert report["signature_status"] == "invalid"
    assert _audited(clinic, "ecg-study.signature-override", report["id"]) == 1


def test_bad_requests_are_refused_and_store_nothing(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    data = ecg_object(803, cardiologist, patient_id="API-0803")
    study, sop = uid_of(data)
    app_client.cookies.clear()
    assert app_client.get(API).status_code == 401
    csrf = api_login(app_client, "pharmacist1")  # no ECG permissions
    assert app_client.get(API).status_code == 403
    assert upload(app_client, csrf, data).status_code == 403
    csrf = api_login(app_client, "doctor1")
    no_csrf = upload(app_client, None, data)
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_rejected"
    wrong_csrf = upload(app_client, "x" * 40, data)
    assert wrong_csrf.status_code == 403
    assert _count(clinic, PacsInstance, sop) == 0
    junk = upload(app_client, csrf, b"not a dicom file at all" * 20)
    assert junk.status_code == 422 and junk.json()["error"]["code"] == "validation_failed"
    truncated = upload(app_client, csrf, data[: len(data) // 2])
    assert truncated.status_code == 422
    big = upload(app_client, csrf, data + b"\0" * (16 * 1024 * 1024))
    assert big.status_code == 422 and "larger than 16 MB" in big.json()["error"]["message"]
    missing = app_client.post(f"{API}/objects", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 422
    unknown_patient = upload(app_client, csrf, data, patient_id="no-such-patient")
    assert unknown_patient.status_code == 404
    assert _count(clinic, PacsInstance, sop) == 0  # nothing stored by any of these
    assert upload(app_client, csrf, data).status_code == 201
    duplicate = upload(app_client, csrf, data)
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "conflict"
    assert _count(clinic, PacsInstance, sop) == 1
    assert app_client.get(f"{API}/1.2.3.4.5.6.7.8").status_code == 404
    assert app_client.get(f"{API}/not-a-uid").status_code == 422
    assert app_client.get(f"{API}/{study}?instance=1.2.3").status_code == 404
    assert app_client.get(f"{API}?status=bogus").status_code == 422
    assert app_client.get(f"{API}?limit=0").status_code == 422
    headers = {"X-CSRF-Token": csrf}
    other = ecg_object(804, None, patient_id="API-0804")
    assert upload(app_client, csrf, other).status_code == 201
    _, other_sop = uid_of(other)
    crossed = app_client.post(
        f"{API}/{study}/reports",
        headers=headers,
        json={"sop_instance_uid": other_sop, "interpretation": "Normal."},
    )
    assert crossed.status_code == 404  # that object belongs to another study
    for bad in (
        {"sop_instance_uid": sop, "interpretation": ""},
        {"sop_instance_uid": sop, "interpretation": "x" * 5001},
        {"sop_instance_uid": "1.2.x", "interpretation": "Normal."},
        {"sop_instance_uid": sop, "interpretation": "Normal.", "extra": 1},
    ):
        assert (
            app_client.post(f"{API}/{study}/reports", headers=headers, json=bad).status_code == 422
        )
    assert _count(clinic, EcgStudyReport, sop) == 0
    assert _count(clinic, EcgStudyReport, other_sop) == 0


def test_openapi_describes_the_ecg_study_operations(app_client: TestClient) -> None:
    document = app_client.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    assert set(paths[API]) == {"get"}
    assert set(paths[f"{API}/{{study_uid}}"]) == {"get"}
    assert set(paths[f"{API}/objects"]) == {"post"}
    assert set(paths[f"{API}/{{study_uid}}/reports"]) == {"post"}
    upload_body = paths[f"{API}/objects"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body
    assert "503" in paths[f"{API}/{{study_uid}}"]["get"]["responses"]


def test_the_api_works_the_same_with_orthanc(
    mode: OrthancMode,  # noqa: F811 - the fixture imported above
    orthanc: OrthancServer,
    cardiologist: Identity,
) -> None:
    data = _tampered(ecg_object(810 + (mode.protocol == "dicomweb"), cardiologist))
    study, sop = uid_of(data)
    csrf = api_login(mode.client, "doctor1")
    assert upload(mode.client, csrf, data).status_code == 201
    with orthanc.rest() as client:  # Orthanc holds it (its own REST API says)
        assert client.post(
            "/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop}}
        ).json()
    detail = mode.client.get(f"{API}/{study}").json()
    assert detail["signature"]["status"] == "invalid"  # found on the bytes back from Orthanc
    assert detail["signature"]["verdicts"][0]["status"] == "INVALID_DATA_CHANGED"
    done = mode.client.post(
        f"{API}/{study}/reports",
        headers={"X-CSRF-Token": csrf},
        json={"sop_instance_uid": sop, "interpretation": "Normal.",
              "override_reason": "Dikonfirmasi dengan pengirim lewat telepon"},
    )  # fmt: skip
    assert done.status_code == 201 and done.json()["signature_override"] is True


def test_orthanc_down_is_a_503_and_nothing_is_stored(
    installation: Installation, orthanc: OrthancServer, cardiologist: Identity
) -> None:
    data = ecg_object(815, cardiologist)
    _, sop = uid_of(data)
    clinic = open_clinic(orthanc_settings(installation, orthanc, "dicomweb", dead=True))
    try:
        with TestClient(create_app(clinic), base_url="https://testserver") as client:
            csrf = api_login(client, "doctor1")
            down = upload(client, csrf, data)
            assert down.status_code == 503
            error = down.json()["error"]
            assert error["code"] == "pacs_unavailable"
            assert "cannot be reached" in error["message"]
            assert client.get(API).status_code == 200  # the index still answers
        assert _count(clinic, PacsInstance, sop) == 0
    finally:
        clinic.close()
