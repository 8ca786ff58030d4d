"""Patient pages: register, search, view, edit (optimistic concurrency), a patient's own record."""

from __future__ import annotations

import re
from datetime import date

from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.his.rbac import Actor, Role
from support.people import make_bpjs, make_nik, make_patient
from support.servers import PASSWORD


def hidden(html: str, name: str = "csrf_token") -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def form_login(client: TestClient, username: str) -> str:
    token = hidden(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return hidden(client.get("/").text)


def form_values(name: str, born: date, sex: str = "F") -> dict[str, str]:
    return {
        "name": name,
        "birth_date": born.isoformat(),
        "sex": sex,
        "nik": make_nik(born, sex),
        "bpjs": make_bpjs(),
        "address": "Jl. Cempaka 3, Makassar",
        "phone": "0811-222",
        "emergency_contact": "",
        "allergies": "penisilin",
        "medical_history": "",
    }


def test_register_search_view_edit(app_client: TestClient) -> None:
    csrf = form_login(app_client, "registration1")
    born = date(1990, 6, 15)
    values = form_values("Andi Mappanyukki", born, "M")
    bad = app_client.post("/patients/new", data={**values, "nik": "123", "csrf_token": csrf})
    assert bad.status_code == 422
    assert "NIK harus terdiri dari 16 digit." in bad.text and 'aria-invalid="true"' in bad.text
    assert "Andi Mappanyukki" in bad.text  # the form keeps what was typed
    created = app_client.post(
        "/patients/new", data={**values, "csrf_token": csrf}, follow_redirects=False
    )
    assert created.status_code == 303
    page = app_client.get(created.headers["location"])
    assert "Pasien terdaftar: RM-" in page.text and values["nik"] in page.text
    patient_url = created.headers["location"].split("?")[0]

    spaced = " ".join(values["nik"][i : i + 4] for i in range(0, 16, 4))
    for query in (spaced, values["bpjs"], "mappanyukki"):
        found = app_client.get("/patients", params={"q": query})
        assert patient_url in found.text, query
    assert "Pasien tidak ditemukan." in app_client.get("/patients", params={"q": "zzzz"}).text

    edit = app_client.get(f"{patient_url}/edit")
    version = hidden(edit.text, "version")
    changed = {**values, "address": "Jl. Baru 9", "version": version, "csrf_token": csrf}
    first = app_client.post(f"{patient_url}/edit", data=changed, follow_redirects=False)
    assert first.status_code == 303
    # a second clerk who opened the form at the same time does not silently overwrite it
    stale = app_client.post(f"{patient_url}/edit", data={**changed, "address": "Jl. Lama 1"})
    assert stale.status_code == 409
    assert "Jl. Baru 9" in app_client.get(patient_url).text


def test_patient_account_sees_only_its_own_record(app_client: TestClient, clinic: Clinic) -> None:
    nurse = Actor(user_id=None, username="t", role=Role.NURSE)
    mine = clinic.patients.register(nurse, make_patient("Rina Marlina"))
    other = clinic.patients.register(nurse, make_patient("Orang Lain"))
    created = clinic.accounts.create_user(
        Actor.system(), "pasien.rina", "Rina", Role.PATIENT, PASSWORD
    )
    clinic.patients.link_account(Actor.system(), mine.id, created.user.id)
    form_login(app_client, "pasien.rina")
    page = app_client.get("/my-record")
    assert page.status_code == 200 and "Rina Marlina" in page.text and mine.nik in page.text
    assert 'href="/patients"' not in page.text  # no patient search in a patient's menu
    for url in (f"/patients/{other.id}", f"/api/v1/patients/{other.id}", "/patients?q=Orang"):
        response = app_client.get(url)
        assert response.status_code in (403, 404), url
        assert other.nik not in response.text
    assert app_client.get(f"/api/v1/patients/{mine.id}").status_code == 200


def test_a_patient_outside_the_doctors_care_offers_break_glass(
    app_client: TestClient, clinic: Clinic
) -> None:
    from datetime import UTC, datetime, timedelta

    from rekam.store.models import Patient

    desk = Actor(user_id=None, username="t", role=Role.REGISTRATION)
    old = clinic.patients.register(desk, make_patient("Pasien Lama"))
    with clinic.database.transaction(write=True) as session:
        row = session.get(Patient, old.id)
        assert row is not None
        row.created_at = row.updated_at = datetime.now(UTC) - timedelta(days=30)
    form_login(app_client, "doctor1")
    refused = app_client.get(f"/patients/{old.id}")
    assert refused.status_code == 403
    assert "Pasien ini tidak dalam perawatan Anda" in refused.text
    assert old.nik not in refused.text
    assert f'href="/break-glass/{old.id}"' in refused.text
    assert app_client.get(f"/break-glass/{old.id}").status_code == 200
