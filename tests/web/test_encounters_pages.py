"""The encounters pages: forms, CSRF, messages in both languages, sign-off, amendments."""

from __future__ import annotations

import re

from sqlalchemy import select
from starlette.testclient import TestClient

from rekam.his.consultations import ConsultationInput, ConsultationService, DiagnosisInput
from rekam.his.installation import Clinic
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.rbac import Actor, Role
from rekam.store.models import User
from support.people import make_patient
from support.servers import PASSWORD

SETUP = Actor(user_id=None, username="test.setup", role=Role.ADMIN)
SETUP_NURSE = Actor(user_id=None, username="test.setup", role=Role.NURSE)


def hidden(html: str, name: str = "csrf_token") -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def form_login(client: TestClient, username: str) -> str:
    client.cookies.clear()
    token = hidden(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return hidden(client.get("/").text)


def doctor_actor(clinic: Clinic, username: str = "doctor1") -> Actor:
    """The test user as an actor, with a linked practitioner record (created on first use)."""
    with clinic.database.transaction() as session:
        uid = session.scalar(select(User.id).where(User.username == username))
    assert uid is not None
    service = PractitionerService.for_clinic(clinic)
    if service.practitioner_for_user(uid) is None:
        service.create(SETUP, PractitionerInput(f"dr. {username}", "doctor", user_id=uid))
    return Actor(user_id=uid, username=username, role=Role.DOCTOR)


def new_patient(clinic: Clinic, name: str) -> str:
    return clinic.patients.register(SETUP_NURSE, make_patient(name)).id


def test_new_consultation_form_validates_in_indonesian(
    app_client: TestClient, clinic: Clinic
) -> None:
    doctor_actor(clinic)
    patient = new_patient(clinic, "Ni Luh Ayu Kartini")
    csrf = form_login(app_client, "doctor1")
    page = app_client.get(f"/patients/{patient}/consultations/new")
    assert page.status_code == 200
    assert "Pemeriksaan baru" in page.text and 'for="temperature"' in page.text
    assert "<script" not in page.text

    data = {
        "started_at": "2026-01-12T09:15",
        "complaint": "demam 2 hari",
        "temperature": "48",
        "diag_code_1": "R50.9",
        "plan": "parasetamol",
    }
    forged = app_client.post(f"/patients/{patient}/consultations", data={**data, "csrf_token": "x"})
    assert forged.status_code == 403
    refused = app_client.post(
        f"/patients/{patient}/consultations", data={**data, "csrf_token": csrf}
    )
    assert refused.status_code == 422
    assert "Suhu tubuh harus antara" in refused.text
    assert re.search(r'id="temperature"[^>]*aria-invalid="true"', refused.text)
    assert "demam 2 hari" in refused.text  # what was typed is kept

    saved = app_client.post(
        f"/patients/{patient}/consultations",
        data={**data, "temperature": "38,2", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    location = saved.headers["location"]
    consultation_id = location.split("/")[2].split("?")[0]
    record = ConsultationService.for_clinic(clinic).get(doctor_actor(clinic), consultation_id)
    assert record.vital_signs is not None and record.vital_signs.temperature == 38.2
    assert record.started_at.hour == 2  # 09:15 in Jakarta is 02:15 UTC
    view = app_client.get(location)
    assert view.status_code == 200 and "demam 2 hari" in view.text

    worklist = app_client.get("/consultations")
    assert worklist.status_code == 200
    assert "Ni Luh Ayu Kartini" in worklist.text and consultation_id in worklist.text


def test_sign_off_and_amendment_strike_through(app_client: TestClient, clinic: Clinic) -> None:
    doctor = doctor_actor(clinic)
    patient = new_patient(clinic, "Yohanes Lumban")
    created = ConsultationService.for_clinic(clinic).create(
        doctor,
        patient,
        ConsultationInput(
            complaint="sakit kepala", diagnoses=(DiagnosisInput("R51"),), plan="istirahat"
        ),
    )
    path = f"/consultations/{created.id}"
    csrf = form_login(app_client, "doctor1")
    assert app_client.post(f"{path}/sign", data={"csrf_token": "forged"}).status_code == 403
    signed = app_client.post(
        f"{path}/sign", data={"csrf_token": csrf, "version": str(created.version)}
    )
    assert signed.status_code == 200 and "Ditandatangani" in signed.text
    assert 'id="consultation-form"' not in signed.text  # no more editing

    short = app_client.post(
        f"{path}/amendments",
        data={"csrf_token": csrf, "field": "plan", "value": "tirah baring", "reason": "x"},
    )
    assert short.status_code == 422
    assert "Tuliskan alasan koreksi" in short.text
    amended = app_client.post(
        f"{path}/amendments",
        data={
            "csrf_token": csrf,
            "field": "plan",
            "value": "ibuprofen 3x400 mg",
            "reason": "rencana terapi diperbarui",
        },
    )
    assert amended.status_code == 200
    assert "<del>istirahat</del>" in amended.text
    assert "ibuprofen 3x400 mg" in amended.text and "rencana terapi diperbarui" in amended.text

    app_client.post("/language", data={"language": "en", "csrf_token": csrf, "next": path})
    try:
        english = app_client.post(
            f"{path}/amendments",
            data={"csrf_token": csrf, "field": "plan", "value": "x", "reason": "no"},
        )
        assert english.status_code == 422
        assert "Give the reason for the correction" in english.text
        assert "Corrections" in english.text
    finally:  # the preference is stored with the shared test account: put it back
        app_client.post("/language", data={"language": "id", "csrf_token": csrf, "next": "/"})
    assert 'lang="id"' in app_client.get(path).text


def test_only_the_own_doctor_sees_the_sign_button(app_client: TestClient, clinic: Clinic) -> None:
    doctor = doctor_actor(clinic)
    created = ConsultationService.for_clinic(clinic).create(
        doctor, new_patient(clinic, "Rudi Hartono"), ConsultationInput(complaint="batuk")
    )
    form_login(app_client, "nurse1")
    page = app_client.get(f"/consultations/{created.id}")
    assert page.status_code == 200
    assert 'id="consultation-form"' in page.text and 'id="sign-form"' not in page.text
    form_login(app_client, "pharmacist1")
    assert app_client.get(f"/consultations/{created.id}").status_code == 403


def test_practitioners_page(app_client: TestClient) -> None:
    csrf = form_login(app_client, "admin1")
    page = app_client.get("/practitioners")
    assert page.status_code == 200 and 'id="practitioner-form"' in page.text
    data = {"name": "Bidan Ketut Sari", "profession": "midwife", "str_number": "12"}
    assert app_client.post("/practitioners", data={**data, "csrf_token": "bad"}).status_code == 403
    refused = app_client.post("/practitioners", data={**data, "csrf_token": csrf})
    assert refused.status_code == 422
    assert "Nomor STR terdiri dari 16 digit" in refused.text
    assert re.search(r'id="p-str"[^>]*aria-invalid="true"', refused.text)
    created = app_client.post(
        "/practitioners",
        data={**data, "str_number": "5171 0203 2019 4321", "csrf_token": csrf},
    )
    assert created.status_code == 200
    assert "Bidan Ketut Sari telah ditambahkan" in created.text
    assert "5171020320194321" in created.text

    form_login(app_client, "nurse1")
    listed = app_client.get("/practitioners", params={"q": "ketut"})
    assert "Bidan Ketut Sari" in listed.text and 'id="practitioner-form"' not in listed.text
    form_login(app_client, "patient1")
    assert app_client.get("/practitioners").status_code == 403
