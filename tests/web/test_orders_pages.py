"""The orders pages: lab worklist and results, trend chart, ordering and prescribing forms,
the pharmacy's dispensing and formulary — through the browser-facing HTML forms."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.his.pharmacy import MedicineInput, PharmacyService
from rekam.his.rbac import Actor, Role
from rekam.store.models import AuditEntry, Consultation, Practitioner
from support.people import make_patient
from support.servers import PASSWORD

NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)
PHARMACIST = Actor(user_id=None, username="ph.setup", role=Role.PHARMACIST)


def hidden(html: str, name: str = "csrf_token") -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
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


def new_consultation(clinic: Clinic, name: str, allergies: str = "") -> tuple[str, str]:
    patient = clinic.patients.register(NURSE, make_patient(name, "F", allergies=allergies))
    with clinic.database.transaction(write=True) as session:
        doctor = Practitioner(name="dr. Made", profession="doctor")
        session.add(doctor)
        session.flush()
        consultation = Consultation(
            patient_id=patient.id, practitioner_id=doctor.id, started_at=datetime.now(UTC)
        )
        session.add(consultation)
        session.flush()
        return patient.id, consultation.id


def audit_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def every_form_has_csrf(html: str) -> None:
    forms = re.findall(r"<form[^>]*method=\"post\"[^>]*>(.*?)</form>", html, flags=re.S)
    assert forms
    for body in forms:
        assert 'name="csrf_token"' in body
    assert "<script" not in html


def test_order_enter_result_and_trend(app_client: TestClient, clinic: Clinic) -> None:
    name = f"Lestari {uuid.uuid4().hex[:5]}"
    patient_id, consultation_id = new_consultation(clinic, name)
    form_url = f"/consultations/{consultation_id}/lab-orders/new"

    csrf = form_login(app_client, "doctor1")
    form = app_client.get(form_url)
    assert form.status_code == 200 and 'for="test-718-7"' in form.text
    every_form_has_csrf(form.text)
    data = {"tests": ["718-7"], "other": "Widal O; Golongan darah"}
    assert app_client.post(form_url, data=data).status_code == 422  # the CSRF field is missing
    assert app_client.post(form_url, data={**data, "csrf_token": "x" * 40}).status_code == 403
    empty = app_client.post(form_url, data={"csrf_token": csrf})
    assert empty.status_code == 422 and "Pilih minimal satu pemeriksaan." in empty.text
    done = app_client.post(form_url, data={**data, "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    assert "3 pemeriksaan telah diminta." in app_client.get(done.headers["location"]).text

    csrf = form_login(app_client, "lab1")
    before = audit_count(clinic)
    page = app_client.get("/lab")
    assert page.status_code == 200 and name in page.text
    assert audit_count(clinic) == before + 1  # one page view, one audit entry
    every_form_has_csrf(page.text)
    order_id = re.findall(rf'id="order-([0-9a-f-]+)">\s*<h3>Hemoglobin · {name}', page.text)[0]
    result_url = f"/lab/orders/{order_id}/result"
    wrong = app_client.post(result_url, data={"value": "tinggi", "csrf_token": csrf})
    assert wrong.status_code == 422
    assert "Hasil pemeriksaan ini berupa angka." in wrong.text
    assert 'aria-invalid="true"' in wrong.text and 'value="tinggi"' in wrong.text
    saved = app_client.post(
        result_url, data={"value": "10.1", "csrf_token": csrf}, follow_redirects=False
    )
    assert saved.status_code == 303
    assert "Hasil telah disimpan." in app_client.get(saved.headers["location"]).text
    twice = app_client.post(result_url, data={"value": "12", "csrf_token": csrf})
    assert twice.status_code == 409 and "sudah ada hasilnya" in twice.text

    form_login(app_client, "nurse1")
    lab_page = app_client.get("/lab")
    assert lab_page.status_code == 200 and "Hasil terbaru" in lab_page.text
    assert 'name="value"' not in lab_page.text  # nurses do not enter results
    trend = app_client.get(f"/patients/{patient_id}/lab-trend/718-7")
    assert trend.status_code == 200
    assert '<svg id="trend-chart" role="img"' in trend.text
    assert 'class="reference-band"' in trend.text  # the female adult range 12–15
    assert "10.1 g/dL" in trend.text and "Rendah" in trend.text
    assert "<script" not in trend.text
    detail = app_client.get(f"/lab/orders/{order_id}")
    assert detail.status_code == 200 and "Koreksi hasil" not in detail.text


def test_lab_correction_page(app_client: TestClient, clinic: Clinic) -> None:
    _, consultation_id = new_consultation(clinic, "Ratna Correction")
    csrf = form_login(app_client, "doctor1")
    app_client.post(
        f"/consultations/{consultation_id}/lab-orders/new",
        data={"tests": ["2160-0"], "csrf_token": csrf},
    )
    csrf = form_login(app_client, "lab1")
    page = app_client.get("/lab").text
    order_id = re.findall(r'id="order-([0-9a-f-]+)">\s*<h3>Kreatinin · Ratna Correction', page)[0]
    app_client.post(f"/lab/orders/{order_id}/result", data={"value": "12", "csrf_token": csrf})
    detail = app_client.get(f"/lab/orders/{order_id}")
    every_form_has_csrf(detail.text)
    version = hidden(detail.text, "version")
    short = app_client.post(
        f"/lab/orders/{order_id}/correction",
        data={"value": "1.2", "reason": "x", "version": version, "csrf_token": csrf},
    )
    assert short.status_code == 422 and "Tuliskan alasan koreksi" in short.text
    fixed = app_client.post(
        f"/lab/orders/{order_id}/correction",
        data={"value": "1.2", "reason": "salah ketik koma", "version": version, "csrf_token": csrf},
    )
    assert fixed.status_code == 200
    assert "<del>12" in fixed.text and "salah ketik koma" in fixed.text


def test_prescribe_with_allergy_warning_then_dispense(
    app_client: TestClient, clinic: Clinic
) -> None:
    name = f"Yuliani {uuid.uuid4().hex[:5]}"
    _, consultation_id = new_consultation(clinic, name, allergies="penisilin")
    medicine = PharmacyService.for_clinic(clinic).create_medicine(
        PHARMACIST, MedicineInput("Ampisilin", "kapsul", f"250 mg {uuid.uuid4().hex[:4]}"), 12
    )
    form_url = f"/consultations/{consultation_id}/prescriptions/new"
    csrf = form_login(app_client, "doctor1")
    form = app_client.get(form_url)
    assert form.status_code == 200 and 'for="dose"' in form.text
    every_form_has_csrf(form.text)
    data = {
        "medicine_id": medicine.id,
        "dose": "250 mg",
        "route": "oral",
        "frequency": "4x sehari",
        "duration": "5 hari",
        "quantity": "10",
        "csrf_token": csrf,
    }
    invalid = app_client.post(form_url, data={**data, "quantity": "sepuluh"})
    assert invalid.status_code == 422 and "Jumlah harus bilangan bulat" in invalid.text
    warned = app_client.post(form_url, data=data)
    assert warned.status_code == 409
    assert "Peringatan alergi: Ampisilin cocok dengan alergi tercatat" in warned.text
    assert 'name="allergy_override_reason"' in warned.text
    confirmed = app_client.post(
        form_url,
        data={**data, "allergy_override_reason": "uji kulit negatif"},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    assert "Resep telah disimpan." in app_client.get(confirmed.headers["location"]).text

    csrf = form_login(app_client, "pharmacist1")
    before = audit_count(clinic)
    pharmacy = app_client.get("/pharmacy")
    assert audit_count(clinic) == before + 1
    assert pharmacy.status_code == 200 and name in pharmacy.text
    assert "Peringatan alergi diabaikan: uji kulit negatif" in pharmacy.text
    every_form_has_csrf(pharmacy.text)
    row = rf"{name} \(RM-\d+\)</td>(?:(?!</tr>).)*?/pharmacy/prescriptions/([0-9a-f-]+)/dispense"
    mine = re.findall(row, pharmacy.text, re.S)
    dispense_url = f"/pharmacy/prescriptions/{mine[0]}/dispense"
    assert app_client.post(dispense_url, data={"csrf_token": "y" * 40}).status_code == 403
    done = app_client.post(dispense_url, data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303
    after = app_client.get(done.headers["location"]).text
    assert "Obat telah diserahkan" in after
    assert PharmacyService.for_clinic(clinic).get_medicine(NURSE, medicine.id).stock == 2
    again = app_client.post(dispense_url, data={"csrf_token": csrf})
    assert again.status_code == 409 and "Resep ini sudah diserahkan." in again.text


def test_formulary_forms_and_english(app_client: TestClient) -> None:
    csrf = form_login(app_client, "pharmacist1")
    name = f"Ranitidin {uuid.uuid4().hex[:5]}"
    added = app_client.post(
        "/pharmacy/medicines",
        data={
            "name": name,
            "form": "tablet",
            "strength": "150 mg",
            "stock": "5",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = app_client.get("/pharmacy").text
    assert name in page
    medicine_id = re.findall(
        rf"{name}</td>.*?/pharmacy/medicines/([0-9a-f-]+)/receipts", page, re.S
    )[0]
    received = app_client.post(
        f"/pharmacy/medicines/{medicine_id}/receipts",
        data={"quantity": "20", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert received.status_code == 303
    app_client.post("/language", data={"language": "en", "csrf_token": csrf, "next": "/pharmacy"})
    duplicate = app_client.post(
        "/pharmacy/medicines",
        data={"name": name, "form": "tablet", "strength": "150 mg", "csrf_token": csrf},
    )
    assert duplicate.status_code == 409
    assert "already in the formulary" in duplicate.text
    # the language is stored with the shared user: put it back for the other tests
    app_client.post("/language", data={"language": "id", "csrf_token": csrf, "next": "/"})
    assert re.search(rf"{name}</td>(?:(?!</tr>).)*>25</td>", duplicate.text, re.S)


def test_pages_follow_the_roles(app_client: TestClient, clinic: Clinic) -> None:
    _, consultation_id = new_consultation(clinic, "Role Check")
    form_login(app_client, "pharmacist1")
    assert app_client.get("/lab").status_code == 403
    assert app_client.get(f"/consultations/{consultation_id}/prescriptions/new").status_code == 403
    form_login(app_client, "lab1")
    assert app_client.get("/pharmacy").status_code == 403
    assert app_client.get(f"/consultations/{consultation_id}/lab-orders/new").status_code == 403
    csrf = form_login(app_client, "nurse1")
    assert app_client.get("/pharmacy").status_code == 403
    refused = app_client.post(
        f"/consultations/{consultation_id}/lab-orders/new",
        data={"tests": ["718-7"], "csrf_token": csrf},
    )
    assert refused.status_code == 403
    form_login(app_client, "admin1")
    assert app_client.get("/lab").status_code == 403
    app_client.cookies.clear()
    assert app_client.get("/lab", follow_redirects=False).status_code == 303


def test_trend_chart_geometry() -> None:
    from rekam.his.laboratory import LabTrend, ReferenceRange, TrendPoint
    from rekam.web.pages_orders import trend_chart

    def local(moment: datetime, fmt: str = "%d-%m-%Y %H:%M") -> str:
        return moment.strftime(fmt)

    points = tuple(
        TrendPoint(datetime(2026, month, 1, tzinfo=UTC), value, float(value), flag)
        for month, value, flag in ((1, "180", "H"), (2, "60", "L"), (3, "95", "N"))
    )
    trend = LabTrend("p", "1558-6", "Fasting", "mg/dL", ReferenceRange(70, 99, "70–99"), points)
    chart = trend_chart(trend, local)
    assert chart is not None and chart.band is not None
    band_top, band_bottom = chart.band
    high, low, normal = chart.dots
    assert high.y < band_top  # above the band (SVG y grows downwards)
    assert low.y > band_bottom  # below it
    assert band_top <= normal.y <= band_bottom
    assert chart.left <= high.x < low.x < normal.x <= chart.right
    assert all(chart.top <= d.y <= chart.bottom for d in chart.dots)
    assert [label for _, label in chart.x_labels] == ["01-01-2026", "01-03-2026"]
    qualitative = LabTrend(
        "p", "70569-9", "Malaria", "", None, (TrendPoint(points[0].at, "negatif", None, "N"),)
    )
    assert trend_chart(qualitative, local) is None
