"""The orders JSON API: lab orders and results, trends, formulary, prescriptions, dispensing."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.his.rbac import Actor, Role
from rekam.store.models import Consultation, Practitioner
from support.people import make_nik, make_patient
from support.servers import PASSWORD

NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)


def login_as(client: TestClient, username: str) -> dict[str, str]:
    client.cookies.clear()
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}


def new_consultation(clinic: Clinic, allergies: str = "amoksisilin") -> tuple[str, str]:
    born = date(1975, 3, 9)  # an adult: the adult reference ranges the test expects apply
    data = replace(
        make_patient("Ketut Sudarsana", "M", allergies=allergies),
        birth_date=born,
        nik=make_nik(born, "M"),
    )
    patient = clinic.patients.register(NURSE, data)
    with clinic.database.transaction(write=True) as session:
        doctor = Practitioner(name="dr. Wayan", profession="doctor")
        session.add(doctor)
        session.flush()
        consultation = Consultation(
            patient_id=patient.id, practitioner_id=doctor.id, started_at=datetime.now(UTC)
        )
        session.add(consultation)
        session.flush()
        return patient.id, consultation.id


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_lab_order_result_correction_and_trend(app_client: TestClient, clinic: Clinic) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    url = f"/api/v1/consultations/{consultation_id}/lab-orders"
    body = {"tests": [{"code": "718-7"}, {"name": "Widal"}]}

    doctor = login_as(app_client, "doctor1")
    assert app_client.post(url, json=body).status_code == 403  # no CSRF header
    extra = app_client.post(url, json={**body, "priority": "cito"}, headers=doctor)
    assert extra.status_code == 422
    too_many = app_client.post(url, json={"tests": [{"code": "718-7"}] * 21}, headers=doctor)
    assert too_many.status_code == 422
    unknown = app_client.post(url, json={"tests": [{"code": "0-0"}]}, headers=doctor)
    assert unknown.status_code == 422 and error_code(unknown) == "validation_failed"
    created = app_client.post(url, json=body, headers=doctor)
    assert created.status_code == 201, created.text
    hb, widal = created.json()
    assert (hb["test_code"], hb["status"], widal["test_name"]) == ("718-7", "ordered", "Widal")
    assert app_client.get("/api/v1/lab-orders").status_code == 403  # the worklist is the lab's

    lab = login_as(app_client, "lab1")
    assert app_client.post(url, json=body, headers=lab).status_code == 403
    pending = app_client.get("/api/v1/lab-orders?status=ordered")
    assert pending.status_code == 200 and hb["id"] in [o["id"] for o in pending.json()]
    assert app_client.get("/api/v1/lab-orders?status=bogus").status_code == 422
    result_url = f"/api/v1/lab-orders/{hb['id']}/result"
    entered = app_client.post(result_url, json={"value": "18.2"}, headers=lab)
    assert entered.status_code == 200, entered.text
    result = entered.json()["result"]
    assert (result["flag"], result["unit"], result["reference"]["low"]) == ("H", "g/dL", 13.0)
    again = app_client.post(result_url, json={"value": "14"}, headers=lab)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    no_version = app_client.post(
        result_url, json={"value": "14", "correction_reason": "salah sampel"}, headers=lab
    )
    assert no_version.status_code == 422
    corrected = app_client.post(
        result_url,
        json={
            "value": "14.1",
            "correction_reason": "salah sampel",
            "version": entered.json()["version"],
        },
        headers=lab,
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["status"] == "corrected"
    assert corrected.json()["corrections"][0]["previous_value"] == "18.2"
    bad_flag = app_client.post(
        f"/api/v1/lab-orders/{widal['id']}/result", json={"value": "1/80", "flag": "Z"}, headers=lab
    )
    assert bad_flag.status_code == 422

    login_as(app_client, "nurse1")
    read = app_client.get(f"/api/v1/lab-orders/{hb['id']}")
    assert read.status_code == 200 and read.json()["result"]["value"] == "14.1"
    trend = app_client.get(f"/api/v1/patients/{patient_id}/lab-trend", params={"test": "718-7"})
    assert trend.status_code == 200
    assert [(p["value"], p["flag"]) for p in trend.json()["points"]] == [("14.1", "N")]
    assert trend.json()["reference"]["high"] == 17.0
    assert app_client.get(f"/api/v1/patients/{patient_id}/lab-trend").status_code == 422

    login_as(app_client, "pharmacist1")
    assert app_client.get(f"/api/v1/lab-orders/{hb['id']}").status_code == 403
    missing = app_client.get(f"/api/v1/lab-orders/{uuid.uuid4()}")
    assert missing.status_code == 403  # no lab permission at all: refused before lookup


def test_patient_account_cannot_reach_others_lab_orders(
    app_client: TestClient, clinic: Clinic
) -> None:
    _, consultation_id = new_consultation(clinic)
    doctor = login_as(app_client, "doctor1")
    created = app_client.post(
        f"/api/v1/consultations/{consultation_id}/lab-orders",
        json={"tests": [{"code": "777-3"}]},
        headers=doctor,
    )
    order_id = created.json()[0]["id"]
    login_as(app_client, "patient1")
    response = app_client.get(f"/api/v1/lab-orders/{order_id}")
    assert response.status_code in (403, 404)
    assert "Ketut" not in response.text


def test_formulary(app_client: TestClient) -> None:
    name = f"Metformin {uuid.uuid4().hex[:6]}"
    nurse = login_as(app_client, "nurse1")
    body = {"name": name, "form": "tablet", "strength": "500 mg", "stock": 40}
    assert app_client.post("/api/v1/medicines", json=body, headers=nurse).status_code == 403
    pharmacist = login_as(app_client, "pharmacist1")
    assert app_client.post("/api/v1/medicines", json=body).status_code == 403  # no CSRF
    assert (
        app_client.post("/api/v1/medicines", json={**body, "stock": -1}, headers=pharmacist)
    ).status_code == 422
    created = app_client.post("/api/v1/medicines", json=body, headers=pharmacist)
    assert created.status_code == 201, created.text
    medicine = created.json()
    assert medicine["stock"] == 40 and medicine["version"] == 1
    duplicate = app_client.post("/api/v1/medicines", json=body, headers=pharmacist)
    assert duplicate.status_code == 409
    update = {"name": name, "form": "tablet", "strength": "850 mg", "version": 1}
    changed = app_client.put(f"/api/v1/medicines/{medicine['id']}", json=update, headers=pharmacist)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = app_client.put(f"/api/v1/medicines/{medicine['id']}", json=update, headers=pharmacist)
    assert stale.status_code == 409
    received = app_client.post(
        f"/api/v1/medicines/{medicine['id']}/receipts", json={"quantity": 10}, headers=pharmacist
    )
    assert received.status_code == 200 and received.json()["stock"] == 50
    login_as(app_client, "doctor1")
    listed = app_client.get("/api/v1/medicines")
    assert listed.status_code == 200
    assert [m["strength"] for m in listed.json() if m["name"] == name] == ["850 mg"]


def create_medicine(client: TestClient, name: str, stock: int) -> str:
    headers = login_as(client, "pharmacist1")
    body = {
        "name": name,
        "form": "kapsul",
        "strength": f"{uuid.uuid4().hex[:6]} mg",
        "stock": stock,
    }
    response = client.post("/api/v1/medicines", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


PRESCRIPTION = {
    "dose": "500 mg",
    "route": "oral",
    "frequency": "3x sehari",
    "duration": "5 hari",
    "quantity": 15,
}


def test_allergy_warning_override_dispense_and_stock(
    app_client: TestClient, clinic: Clinic
) -> None:
    _, consultation_id = new_consultation(clinic, allergies="amoksisilin")
    amoxicillin = create_medicine(app_client, "Amoxicillin", 20)
    url = f"/api/v1/consultations/{consultation_id}/prescriptions"
    body = {**PRESCRIPTION, "medicine_id": amoxicillin}

    doctor = login_as(app_client, "doctor1")
    warned = app_client.post(url, json=body, headers=doctor)
    assert warned.status_code == 409, warned.text
    problem = warned.json()["error"]
    assert (problem["code"], problem["allergy"], problem["medicine"]) == (
        "allergy_warning",
        "amoksisilin",
        "Amoxicillin",
    )
    assert app_client.post(url, json={**body, "route": "mata"}, headers=doctor).status_code == 422
    assert app_client.post(url, json={**body, "quantity": 0}, headers=doctor).status_code == 422
    confirmed = app_client.post(
        url, json={**body, "allergy_override_reason": "uji kulit negatif kemarin"}, headers=doctor
    )
    assert confirmed.status_code == 201, confirmed.text
    prescription = confirmed.json()
    assert prescription["allergy_override_reason"] == "uji kulit negatif kemarin"
    dispense_url = f"/api/v1/prescriptions/{prescription['id']}/dispense"
    assert app_client.post(dispense_url, headers=doctor).status_code == 403

    lab = login_as(app_client, "lab1")
    assert app_client.post(url, json=body, headers=lab).status_code == 403
    assert app_client.get("/api/v1/prescriptions").status_code == 403

    pharmacist = login_as(app_client, "pharmacist1")
    queue = app_client.get("/api/v1/prescriptions?status=prescribed")
    assert queue.status_code == 200 and prescription["id"] in [p["id"] for p in queue.json()]
    assert app_client.post(dispense_url).status_code == 403  # no CSRF
    done = app_client.post(dispense_url, headers=pharmacist)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "dispensed" and done.json()["dispensed_at"]
    twice = app_client.post(dispense_url, headers=pharmacist)
    assert twice.status_code == 409
    medicines = {m["id"]: m for m in app_client.get("/api/v1/medicines").json()}
    assert medicines[amoxicillin]["stock"] == 5


def test_insufficient_stock(app_client: TestClient, clinic: Clinic) -> None:
    _, consultation_id = new_consultation(clinic, allergies="")
    medicine_id = create_medicine(app_client, "Omeprazol", 3)
    doctor = login_as(app_client, "doctor1")
    made = app_client.post(
        f"/api/v1/consultations/{consultation_id}/prescriptions",
        json={**PRESCRIPTION, "medicine_id": medicine_id, "quantity": 4},
        headers=doctor,
    )
    assert made.status_code == 201
    pharmacist = login_as(app_client, "pharmacist1")
    short = app_client.post(
        f"/api/v1/prescriptions/{made.json()['id']}/dispense", headers=pharmacist
    )
    assert short.status_code == 409
    assert short.json()["error"]["available"] == 3
    read = app_client.get(f"/api/v1/prescriptions/{made.json()['id']}")
    assert read.json()["status"] == "prescribed"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/lab-orders"),
        ("get", "/api/v1/medicines"),
        ("get", "/api/v1/prescriptions"),
        ("post", "/api/v1/prescriptions/x/dispense"),
    ],
)
def test_login_required(app_client: TestClient, method: str, path: str) -> None:
    response = getattr(app_client, method)(path)
    assert response.status_code == 401
