"""Oversight over HTTP: the audit API and page (filters, pagination, chain status, break-glass
highlighting) and break-glass grants opened by a doctor and reviewed by an administrator."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.store.models import Patient
from rekam.store.types import utc_now
from support.people import patient_json
from support.servers import PASSWORD


def api_login(client: TestClient, username: str) -> str:
    client.cookies.clear()
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def old_patient(client: TestClient, clinic: Clinic) -> str:
    csrf = api_login(client, "registration1")
    made = client.post("/api/v1/patients", json=patient_json("x"), headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    patient_id = str(made.json()["id"])
    with clinic.database.transaction(write=True) as session:
        row = session.get(Patient, patient_id)
        assert row is not None
        row.created_at = utc_now() - timedelta(days=5)
    return patient_id


def test_audit_api_is_for_auditors(app_client: TestClient) -> None:
    for username in ("doctor1", "nurse1", "registration1", "patient1", "lab1", "pharmacist1"):
        api_login(app_client, username)
        assert app_client.get("/api/v1/audit").status_code == 403, username
        assert app_client.get("/api/v1/audit/verify").status_code == 403, username
        assert app_client.get("/audit").status_code == 403, username
    app_client.cookies.clear()
    assert app_client.get("/api/v1/audit").status_code == 401


def test_break_glass_through_the_api(app_client: TestClient, clinic: Clinic) -> None:
    patient_id = old_patient(app_client, clinic)
    csrf = api_login(app_client, "doctor1")
    refused = app_client.get(f"/api/v1/patients/{patient_id}")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "permission_denied"
    url = f"/api/v1/patients/{patient_id}/break-glass"
    body = {"reason": "collapsed in the waiting room, needs allergy list"}
    assert app_client.post(url, json=body).status_code == 403  # no CSRF header
    short = app_client.post(url, json={"reason": "urgent"}, headers={"X-CSRF-Token": csrf})
    assert short.status_code == 422
    opened = app_client.post(url, json=body, headers={"X-CSRF-Token": csrf})
    assert opened.status_code == 201, opened.text
    grant = opened.json()
    assert grant["active"] is True and grant["reviewed"] is False
    assert app_client.get(f"/api/v1/patients/{patient_id}").status_code == 200

    nurse_csrf = api_login(app_client, "nurse1")
    assert app_client.post(url, json=body, headers={"X-CSRF-Token": nurse_csrf}).status_code == 403

    csrf = api_login(app_client, "admin1")
    entries = app_client.get(
        "/api/v1/audit", params={"patient_id": patient_id, "break_glass": "true"}
    ).json()
    assert [e["action"] for e in entries["entries"]] == ["patient.read", "break-glass.open"]
    assert all(e["break_glass"] for e in entries["entries"])
    listed = app_client.get("/api/v1/break-glass").json()
    assert listed[0]["reviewed"] is False
    assert grant["id"] in [g["id"] for g in listed if not g["reviewed"]]

    page = app_client.get("/audit/break-glass")
    assert page.status_code == 200 and 'class="unreviewed"' in page.text
    reviewed = app_client.post(
        f"/api/v1/break-glass/{grant['id']}/review", headers={"X-CSRF-Token": csrf}
    )
    assert reviewed.status_code == 200 and reviewed.json()["reviewed"] is True
    again = app_client.post(
        f"/api/v1/break-glass/{grant['id']}/review", headers={"X-CSRF-Token": csrf}
    )
    assert again.status_code == 409


def test_break_glass_form_page(app_client: TestClient, clinic: Clinic) -> None:
    patient_id = old_patient(app_client, clinic)
    csrf = api_login(app_client, "doctor1")
    form = app_client.get(f"/break-glass/{patient_id}")
    assert form.status_code == 200 and 'name="reason"' in form.text
    short = app_client.post(
        f"/break-glass/{patient_id}", data={"reason": "now", "csrf_token": csrf}
    )
    assert short.status_code == 422
    done = app_client.post(
        f"/break-glass/{patient_id}",
        data={"reason": "patient unconscious, relatives absent", "csrf_token": csrf},
    )
    assert done.status_code == 200
    assert app_client.get(f"/api/v1/patients/{patient_id}").status_code == 200
    api_login(app_client, "admin1")
    listed = app_client.get("/api/v1/break-glass").json()
    (grant,) = [g for g in listed if g["patient_id"] == patient_id]
    review = app_client.post(
        f"/audit/break-glass/{grant['id']}/review",
        data={"csrf_token": "wrong"},
        follow_redirects=False,
    )
    assert review.status_code == 403


def test_audit_page_filters_paginates_and_highlights(
    app_client: TestClient, clinic: Clinic
) -> None:
    patient_id = old_patient(app_client, clinic)
    csrf = api_login(app_client, "doctor1")
    app_client.post(
        f"/api/v1/patients/{patient_id}/break-glass",
        json={"reason": "emergency: chest pain, record needed"},
        headers={"X-CSRF-Token": csrf},
    )
    for _ in range(3):
        app_client.get(f"/api/v1/patients/{patient_id}")
    api_login(app_client, "admin1")
    verify = app_client.get("/api/v1/audit/verify").json()
    assert verify["intact"] is True and verify["entries"] > 0
    first = app_client.get("/api/v1/audit", params={"patient_id": patient_id, "per_page": 2}).json()
    assert first["total"] == 5 and first["pages"] == 3
    second = app_client.get(
        "/api/v1/audit", params={"patient_id": patient_id, "per_page": 2, "page": 2}
    ).json()
    seqs = [e["seq"] for e in first["entries"] + second["entries"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 4
    by_action = app_client.get(
        "/api/v1/audit", params={"actor": "registration1", "action": "patient."}
    ).json()
    assert by_action["total"] >= 1
    assert all(e["actor"] == "registration1" for e in by_action["entries"])
    future = app_client.get("/api/v1/audit", params={"since": "2999-01-01"}).json()
    assert future["total"] == 0
    today = utc_now().date().isoformat()
    assert app_client.get("/api/v1/audit", params={"until": today}).json()["total"] > 0

    page = app_client.get("/audit", params={"patient_id": patient_id})
    assert page.status_code == 200
    assert 'class="message ok" role="status" id="chain-status"' in page.text
    assert page.text.count('class="break-glass"') == 4  # the opening and three reads
    for language, title in (("id", "Jejak audit"), ("en", "Audit trail")):
        app_client.cookies.set("rekam-lang", language)
        assert title in app_client.get("/audit").text
