"""The encounters JSON API: practitioners, consultations, sign-off, amendments, procedures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.rbac import Actor, Role
from rekam.store.models import User
from support.people import make_patient
from support.servers import PASSWORD

SYSTEM_ADMIN = Actor(user_id=None, username="test.setup", role=Role.ADMIN)
NURSE = Actor(user_id=None, username="test.setup", role=Role.NURSE)


def api_login(client: TestClient, username: str) -> dict[str, str]:
    client.cookies.clear()
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": str(response.json()["csrf_token"])}


def user_id(clinic: Clinic, username: str) -> str:
    with clinic.database.transaction() as session:
        found = session.scalar(select(User.id).where(User.username == username))
        assert found is not None
        return str(found)


def ensure_practitioner(clinic: Clinic, username: str, profession: str) -> str:
    """The practitioner linked to a test user (created on first use)."""
    service = PractitionerService.for_clinic(clinic)
    uid = user_id(clinic, username)
    existing = service.practitioner_for_user(uid)
    if existing is not None:
        return existing.id
    created = service.create(
        SYSTEM_ADMIN, PractitionerInput(f"{username} (test)", profession, user_id=uid)
    )
    return created.id


def new_patient(clinic: Clinic) -> str:
    return clinic.patients.register(NURSE, make_patient("Wayan Sudarsana", "M")).id


CONSULTATION: dict[str, Any] = {
    "started_at": "2026-01-10T08:30:00+07:00",
    "complaint": "nyeri ulu hati sejak 2 hari",
    "examination": "nyeri tekan epigastrium",
    "vital_signs": {"systolic": 128, "diastolic": 82, "heart_rate": 76, "temperature": 36.7},
    "diagnoses": [{"code": "K30", "text": "dispepsia"}],
    "plan": "antasida 3x1",
}


def test_practitioners_are_managed_by_admins(app_client: TestClient) -> None:
    headers = api_login(app_client, "doctor1")
    body = {"name": "dr. Made Sukma", "profession": "doctor", "str_number": "3171100220145123"}
    assert app_client.post("/api/v1/practitioners", json=body, headers=headers).status_code == 403

    headers = api_login(app_client, "admin1")
    assert app_client.post("/api/v1/practitioners", json=body).status_code == 403  # no CSRF
    extra = app_client.post("/api/v1/practitioners", json={**body, "x": 1}, headers=headers)
    assert extra.status_code == 422
    bad = app_client.post(
        "/api/v1/practitioners", json={**body, "str_number": "12-34"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "str_number"
    created = app_client.post("/api/v1/practitioners", json=body, headers=headers)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["version"] == 1 and record["profession"] == "doctor"

    update = {**body, "specialty": "Penyakit dalam", "version": 1}
    path = f"/api/v1/practitioners/{record['id']}"
    changed = app_client.put(path, json=update, headers=headers)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = app_client.put(path, json={**update, "specialty": "Anak"}, headers=headers)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"

    api_login(app_client, "nurse1")
    assert app_client.get(path).json()["specialty"] == "Penyakit dalam"
    found = app_client.get("/api/v1/practitioners", params={"search": "sukma"}).json()
    assert record["id"] in [p["id"] for p in found]
    api_login(app_client, "patient1")
    assert app_client.get("/api/v1/practitioners").status_code == 403


def test_consultation_lifecycle(app_client: TestClient, clinic: Clinic) -> None:
    ensure_practitioner(clinic, "doctor1", "doctor")
    patient = new_patient(clinic)
    headers = api_login(app_client, "doctor1")
    base = f"/api/v1/patients/{patient}/consultations"
    assert app_client.post(base, json=CONSULTATION).status_code == 403  # no CSRF header
    out_of_range = {**CONSULTATION, "vital_signs": {"temperature": 48}}
    refused = app_client.post(base, json=out_of_range, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "temperature"
    bad_code = {**CONSULTATION, "diagnoses": [{"code": "XYZ"}]}
    assert app_client.post(base, json=bad_code, headers=headers).status_code == 422
    naive = {**CONSULTATION, "started_at": "2026-01-10T08:30:00"}
    assert app_client.post(base, json=naive, headers=headers).status_code == 422

    created = app_client.post(base, json=CONSULTATION, headers=headers)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["status"] == "draft"
    assert record["started_at"].startswith("2026-01-10T01:30:00")  # stored in UTC
    path = f"/api/v1/consultations/{record['id']}"

    procedure = {"code": "99.21", "description": "injeksi"}
    added = app_client.post(f"{path}/procedures", json=procedure, headers=headers)
    assert added.status_code == 201, added.text
    assert added.json()["code"] == "99.21"
    assert [p["id"] for p in app_client.get(f"{path}/procedures").json()] == [added.json()["id"]]

    changed = app_client.put(
        path, json={**CONSULTATION, "plan": "omeprazol 1x20 mg", "version": 1}, headers=headers
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = app_client.put(path, json={**CONSULTATION, "version": 1}, headers=headers)
    assert stale.status_code == 409

    signed = app_client.post(f"{path}/sign", json={"version": 2}, headers=headers)
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "signed"
    after = app_client.put(path, json={**CONSULTATION, "version": 3}, headers=headers)
    assert after.status_code == 409

    amendment = {"field": "plan", "value": "omeprazol 2x20 mg", "reason": "dosis salah tulis"}
    amended = app_client.post(f"{path}/amendments", json=amendment, headers=headers)
    assert amended.status_code == 201, amended.text
    body = amended.json()
    assert body["plan"] == "omeprazol 2x20 mg"
    assert body["amendments"][0]["old_value"] == "omeprazol 1x20 mg"
    assert body["amendments"][0]["reason"] == "dosis salah tulis"

    listed = app_client.get(base).json()
    assert [c["id"] for c in listed] == [record["id"]]
    assert listed[0]["primary_diagnosis"] == "K30"


def test_roles_through_the_api(app_client: TestClient, clinic: Clinic) -> None:
    ensure_practitioner(clinic, "doctor1", "doctor")
    patient = new_patient(clinic)
    headers = api_login(app_client, "doctor1")
    created = app_client.post(
        f"/api/v1/patients/{patient}/consultations", json=CONSULTATION, headers=headers
    ).json()
    path = f"/api/v1/consultations/{created['id']}"

    headers = api_login(app_client, "nurse1")
    assert app_client.get(path).status_code == 200
    assert app_client.post(f"{path}/sign", headers=headers).status_code == 403
    headers = api_login(app_client, "pharmacist1")
    assert app_client.get(path).status_code == 403
    headers = api_login(app_client, "patient1")  # not this patient's account
    assert app_client.get(path).status_code == 404
    headers = api_login(app_client, "admin1")  # administrators do not read charts
    assert app_client.get(path).status_code == 403
    assert app_client.get("/api/v1/codes/icd10").status_code == 200


def test_structured_amendments_and_patient_procedures(
    app_client: TestClient, clinic: Clinic
) -> None:
    ensure_practitioner(clinic, "doctor1", "doctor")
    patient = new_patient(clinic)
    headers = api_login(app_client, "doctor1")
    created = app_client.post(
        f"/api/v1/patients/{patient}/consultations", json=CONSULTATION, headers=headers
    ).json()
    path = f"/api/v1/consultations/{created['id']}"
    procedure = {"code": "8952", "description": "EKG 12 sadapan"}
    assert app_client.post(f"{path}/procedures", json=procedure, headers=headers).status_code == 201
    assert app_client.post(f"{path}/sign", headers=headers).status_code == 200
    listed = app_client.get(f"/api/v1/patients/{patient}/procedures").json()
    assert [(p["code"], p["description"]) for p in listed] == [("89.52", "EKG 12 sadapan")]

    vitals = {"field": "vital_signs", "vital_signs": {"systolic": 135}, "reason": "ukur ulang"}
    refused = app_client.post(
        f"{path}/amendments",
        json={**vitals, "vital_signs": {"systolic": 135, "diastolic": 140}},
        headers=headers,
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "diastolic"
    amended = app_client.post(f"{path}/amendments", json=vitals, headers=headers)
    assert amended.status_code == 201, amended.text
    assert amended.json()["vital_signs"]["systolic"] == 135
    assert amended.json()["vital_signs"]["diastolic"] is None
    assert '"systolic": 128' in amended.json()["amendments"][0]["old_value"]

    diagnoses = {
        "field": "diagnoses",
        "diagnoses": [{"code": "K29.7", "text": "gastritis"}, {"code": "I10"}],
        "reason": "hasil pemeriksaan lanjutan",
    }
    again = app_client.post(f"{path}/amendments", json=diagnoses, headers=headers)
    assert again.status_code == 201, again.text
    assert [d["code"] for d in again.json()["diagnoses"]] == ["K29.7", "I10"]
    assert len(again.json()["amendments"]) == 2
    unknown_field = {"field": "status", "value": "draft", "reason": "alasan apa saja"}
    assert (
        app_client.post(f"{path}/amendments", json=unknown_field, headers=headers).status_code
        == 422
    )
