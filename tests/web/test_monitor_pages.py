"""The heart-monitoring pages and API: dashboard tiles and alert list from stored data,
acknowledging (forms and API, CSRF), pairing and unpairing devices, limits, the patient's alerts
and heart-rate chart in the medical record, both languages, bad input."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Actor, Role
from rekam.monitor.events import (
    AlertEvent,
    AlertKind,
    AlertPhase,
    EcgStrip,
    HeartRateReading,
    SignalQualityLevel,
)
from rekam.monitor.pairing import DevicePairing
from support.people import make_patient
from support.servers import PASSWORD

NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)


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


def monitored_patient(clinic: Clinic, name: str) -> tuple[str, str, UUID]:
    """A patient registered today (in a nurse's care) with a paired device:
    (patient id, medical record number, device id)."""
    patient = clinic.patients.register(NURSE, make_patient(name, "F"))
    private = X25519PrivateKey.generate()
    result = MonitoringService.for_clinic(clinic).pair_device(
        NURSE, patient.id, private.public_key().public_bytes_raw(), "Sabuk dada"
    )
    return patient.id, patient.medical_record_number, result.device_id


def raise_alert(clinic: Clinic, device_id: UUID, bpm: float, kind: AlertKind) -> UUID:
    episode = uuid.uuid4()
    t0 = int(datetime.now(UTC).timestamp() * 1000) - 20_000
    sink = MonitoringService.for_clinic(clinic).event_sink()
    sink.publish(
        AlertEvent(
            episode_id=episode,
            device_id=device_id,
            kind=kind,
            phase=AlertPhase.RAISED,
            bpm=bpm,
            started_ms=t0,
            confirmed_ms=t0 + 10_000,
            ended_ms=None,
            strip=EcgStrip(250, t0 + 4000, tuple((i % 250) * 4 - 500 for i in range(1500))),
        )
    )
    assert sink.flush()
    return episode


def scripts_are_external(html: str) -> None:
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/' in tag or 'type="application/json"' in tag, tag
    assert " style=" not in html and "onclick" not in html


def test_dashboard_shows_tiles_and_stored_alerts_and_acknowledges_by_form(
    app_client: TestClient, clinic: Clinic
) -> None:
    name = f"Wulan {uuid.uuid4().hex[:5]}"
    patient_id, mrn, device_id = monitored_patient(clinic, name)
    episode = raise_alert(clinic, device_id, 143.0, AlertKind.TACHYCARDIA)

    csrf = form_login(app_client, "nurse1")
    page = app_client.get("/monitor")
    assert page.status_code == 200
    scripts_are_external(page.text)
    assert "/static/monitor.js" in page.text
    tile = re.search(
        rf'<article class="monitor-tile alerting" id="tile-{patient_id}"[^>]*>', page.text
    )
    assert tile and f'data-devices="{device_id}"' in tile.group(0)
    assert name in page.text and mrn in page.text
    row = re.search(rf'<tr id="alert-{episode}".*?</tr>', page.text, flags=re.S)
    assert row and "143 bpm" in row.group(0)
    assert "Takikardia" in row.group(0) or "Tachycardia" in row.group(0)
    action = re.search(r'action="(/monitor/alerts/[^"]+/acknowledge)"', row.group(0))
    assert action
    texts = re.search(
        r'<script type="application/json" id="monitor-text">(.*?)</script>', page.text
    )
    assert texts and "monitor.kind_tachycardia" in texts.group(1)

    assert app_client.post(action.group(1), data={"csrf_token": "x" * 40}).status_code == 403
    done = app_client.post(action.group(1), data={"csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/monitor?acknowledged=1"
    page = app_client.get("/monitor?acknowledged=1")
    row = re.search(rf'<tr id="alert-{episode}".*?</tr>', page.text, flags=re.S)
    assert row and "nurse1" in row.group(0) and "ack-form" not in row.group(0)
    again = app_client.post(action.group(1), data={"csrf_token": csrf})
    assert again.status_code == 409 and "nurse1" in again.text


def test_roles_without_monitoring_are_refused(app_client: TestClient) -> None:
    form_login(app_client, "pharmacist1")
    assert app_client.get("/monitor").status_code == 403
    assert app_client.get("/api/v1/monitor/tiles").status_code == 403
    assert app_client.get("/monitor/devices").status_code == 403
    app_client.cookies.clear()
    assert app_client.get("/api/v1/monitor/tiles").status_code == 401
    assert app_client.get("/monitor", follow_redirects=False).status_code in (302, 303)


def test_pairing_through_the_api_and_the_device_derives_the_same_code(
    app_client: TestClient, clinic: Clinic
) -> None:
    patient = clinic.patients.register(NURSE, make_patient(f"Yanti {uuid.uuid4().hex[:5]}", "F"))
    csrf = form_login(app_client, "nurse1")
    private = X25519PrivateKey.generate()
    body = {
        "patient_id": patient.id,
        "device_public": base64.b64encode(private.public_key().public_bytes_raw()).decode(),
        "label": "Sabuk dada",
    }
    assert app_client.post("/api/v1/monitor/devices", json=body).status_code == 403  # no CSRF
    paired = app_client.post("/api/v1/monitor/devices", json=body, headers={"X-CSRF-Token": csrf})
    assert paired.status_code == 201, paired.text
    answer = paired.json()
    device_id = UUID(answer["device_id"])
    on_device = DevicePairing(device_id, private).derive(base64.b64decode(answer["gateway_public"]))
    assert on_device.confirmation_code == answer["confirmation_code"]
    key = MonitoringService.for_clinic(clinic).key_lookup(device_id)
    assert key is not None and key.same_key_as(on_device)
    assert "key" not in str(answer).replace("gateway_public", "")

    tiles = app_client.get("/api/v1/monitor/tiles").json()
    assert tiles["device_patients"][str(device_id)] == patient.id
    listed = app_client.get("/api/v1/monitor/devices", params={"patient_id": patient.id}).json()
    assert [d["id"] for d in listed] == [str(device_id)]

    # hex works too; a device id announced by the device is kept
    announced = uuid.uuid4()
    hex_body = {
        **body,
        "device_public": X25519PrivateKey.generate().public_key().public_bytes_raw().hex(),
        "device_id": str(announced),
    }
    second = app_client.post(
        "/api/v1/monitor/devices", json=hex_body, headers={"X-CSRF-Token": csrf}
    )
    assert second.status_code == 201 and second.json()["device_id"] == str(announced)

    removed = app_client.delete(
        f"/api/v1/monitor/devices/{device_id}", headers={"X-CSRF-Token": csrf}
    )
    assert removed.status_code == 204
    assert MonitoringService.for_clinic(clinic).key_lookup(device_id) is None


def test_bad_pairing_input_gets_clear_errors_and_stores_nothing(
    app_client: TestClient, clinic: Clinic
) -> None:
    patient = clinic.patients.register(NURSE, make_patient(f"Rini {uuid.uuid4().hex[:5]}", "F"))
    csrf = form_login(app_client, "nurse1")
    headers = {"X-CSRF-Token": csrf}
    good_key = base64.b64encode(b"\x09" * 32).decode()
    cases = [
        ({"patient_id": patient.id, "device_public": "not base64!!", "label": "x"}, 422),
        (
            {
                "patient_id": patient.id,
                "device_public": base64.b64encode(b"a" * 16).decode(),
                "label": "x",
            },
            422,
        ),
        ({"patient_id": patient.id, "device_public": "00" * 32, "label": "x"}, 422),  # low order
        ({"patient_id": patient.id, "device_public": good_key, "label": "  "}, 422),
        ({"patient_id": patient.id, "device_public": good_key, "label": "x", "extra": 1}, 422),
        ({"patient_id": str(uuid.uuid4()), "device_public": good_key, "label": "x"}, 404),
        (
            {
                "patient_id": patient.id,
                "device_public": good_key,
                "label": "x",
                "device_id": "nope",
            },
            422,
        ),
    ]
    for body, status in cases:
        response = app_client.post("/api/v1/monitor/devices", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert "error" in response.json()
    assert app_client.get("/api/v1/monitor/devices", params={"patient_id": patient.id}).json() == []
    assert (
        app_client.post(
            "/api/v1/monitor/devices",
            content=b"\xff\x00",
            headers={**headers, "content-type": "application/json"},
        ).status_code
        == 422
    )
    assert (
        app_client.delete("/api/v1/monitor/devices/" + "z" * 37, headers=headers).status_code == 422
    )
    assert (
        app_client.post("/api/v1/monitor/alerts/nope/acknowledge", headers=headers).status_code
        == 404
    )
    limits = app_client.put(
        f"/api/v1/monitor/patients/{patient.id}/thresholds",
        json={"brady_bpm": 120, "tachy_bpm": 60},
        headers=headers,
    )
    assert limits.status_code == 422 and "limit" in limits.json()["error"]["message"]
    ok = app_client.put(
        f"/api/v1/monitor/patients/{patient.id}/thresholds",
        json={"brady_bpm": 45, "tachy_bpm": 110},
        headers=headers,
    )
    assert ok.status_code == 200 and ok.json()["tachy_bpm"] == 110


def test_pairing_page_shows_the_code_and_unpairs(app_client: TestClient, clinic: Clinic) -> None:
    patient = clinic.patients.register(NURSE, make_patient(f"Sari {uuid.uuid4().hex[:5]}", "F"))
    csrf = form_login(app_client, "nurse1")
    page = app_client.get("/monitor/devices")
    assert page.status_code == 200 and 'id="pair-form"' in page.text
    scripts_are_external(page.text)
    private = X25519PrivateKey.generate()
    form = {
        "csrf_token": csrf,
        "patient": patient.medical_record_number.lower(),
        "device_public": private.public_key().public_bytes_raw().hex(),
        "label": "Tempat tidur 3",
    }
    done = app_client.post("/monitor/devices", data=form)
    assert done.status_code == 201, done.text
    code = re.search(r'id="confirmation-code">(\d{6})<', done.text)
    device_id = re.search(r'id="paired-device-id">([0-9a-f-]{36})<', done.text)
    gateway = re.search(r'id="gateway-public">([0-9a-f]{64})<', done.text)
    assert code and device_id and gateway
    on_device = DevicePairing(UUID(device_id.group(1)), private).derive(
        bytes.fromhex(gateway.group(1))
    )
    assert on_device.confirmation_code == code.group(1)
    bad = app_client.post("/monitor/devices", data={**form, "device_public": "zz"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    unknown = app_client.post("/monitor/devices", data={**form, "patient": "RM-999999"})
    assert unknown.status_code == 404
    gone = app_client.post(
        f"/monitor/devices/{device_id.group(1)}/unpair",
        data={"csrf_token": csrf},
        follow_redirects=False,
    )
    assert gone.status_code == 303
    assert MonitoringService.for_clinic(clinic).key_lookup(UUID(device_id.group(1))) is None


def test_record_page_shows_alerts_and_the_heart_rate_chart(
    app_client: TestClient, clinic: Clinic
) -> None:
    patient_id, _, device_id = monitored_patient(clinic, f"Ratna {uuid.uuid4().hex[:5]}")
    raise_alert(clinic, device_id, 41.0, AlertKind.BRADYCARDIA)
    sink = MonitoringService.for_clinic(clinic).event_sink()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    rates = [60.0, 75.0, 120.0, 90.0]  # one minute each
    for minute, bpm in enumerate(rates):
        for beat in range(3):
            sink.publish(
                HeartRateReading(
                    device_id=device_id,
                    time_ms=int(
                        (start + timedelta(minutes=minute, seconds=beat * 10)).timestamp() * 1000
                    ),
                    bpm=bpm,
                    rhythm="normal",
                    quality=SignalQualityLevel.GOOD,
                    irregular=False,
                )
            )
    assert sink.flush()

    form_login(app_client, "nurse1")
    page = app_client.get(f"/patients/{patient_id}/record")
    assert page.status_code == 200
    section = page.text[page.text.index('id="heart-monitoring"') :]
    assert "41 bpm" in section and ("Bradikardia" in section or "Bradycardia" in section)
    mean = re.search(r'<polyline id="hr-mean" points="([^"]+)"', section)
    assert mean
    points = [tuple(float(v) for v in p.split(",")) for p in mean.group(1).split()]
    assert len(points) == len(rates)
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    # a higher rate is drawn higher (smaller y), in the same order as the rates
    assert sorted(range(len(rates)), key=lambda i: -ys[i]) == sorted(
        range(len(rates)), key=lambda i: rates[i]
    )
    standalone = app_client.get(f"/patients/{patient_id}/heart-monitoring")
    assert standalone.status_code == 200 and 'id="hr-mean"' in standalone.text

    # a patient never monitored: the record page has no monitoring section
    other = clinic.patients.register(NURSE, make_patient(f"Tuti {uuid.uuid4().hex[:5]}", "F"))
    plain = app_client.get(f"/patients/{other.id}/record")
    assert plain.status_code == 200 and 'id="heart-monitoring"' not in plain.text


def test_both_languages(app_client: TestClient, clinic: Clinic) -> None:
    monitored_patient(clinic, f"Indah {uuid.uuid4().hex[:5]}")
    csrf = form_login(app_client, "nurse1")
    for language, title in (("en", "Heart monitoring"), ("id", "Pemantauan jantung")):
        app_client.post(
            "/language", data={"language": language, "next": "/monitor", "csrf_token": csrf}
        )
        page = app_client.get("/monitor")
        assert f"<h1>{title}</h1>" in page.text


def test_acknowledge_api_by_episode_id(app_client: TestClient, clinic: Clinic) -> None:
    _, _, device_id = monitored_patient(clinic, f"Mega {uuid.uuid4().hex[:5]}")
    episode = raise_alert(clinic, device_id, 150.0, AlertKind.TACHYCARDIA)
    csrf = form_login(app_client, "doctor1")
    listed = app_client.get("/api/v1/monitor/alerts", params={"unacknowledged": True}).json()
    mine = [a for a in listed if a["episode_id"] == str(episode)]
    assert len(mine) == 1 and mine[0]["strip"] is None
    detail = app_client.get(f"/api/v1/monitor/alerts/{mine[0]['id']}").json()
    assert len(detail["strip"]["samples_uv"]) == 1500 and detail["strip"]["rate_hz"] == 250
    url = f"/api/v1/monitor/alerts/{episode}/acknowledge"
    assert app_client.post(url).status_code == 403
    done = app_client.post(url, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and done.json()["acknowledged_by"] == "doctor1"
    assert app_client.post(url, headers={"X-CSRF-Token": csrf}).status_code == 409


def test_alarm_limits_form(app_client: TestClient, clinic: Clinic) -> None:
    patient_id, _, device_id = monitored_patient(clinic, f"Nur {uuid.uuid4().hex[:5]}")
    csrf = form_login(app_client, "nurse1")
    url = f"/patients/{patient_id}/heart-monitoring"
    page = app_client.get(url)
    assert page.status_code == 200 and 'id="limits-form"' in page.text
    assert 'name="brady_bpm" inputmode="decimal" required maxlength="10" value="50"' in page.text
    form = {
        "csrf_token": csrf,
        "brady_bpm": "45",
        "tachy_bpm": "120,5",
        "hysteresis_bpm": "4",
        "min_duration_s": "8",
    }
    done = app_client.post(url + "/limits", data=form, follow_redirects=False)
    assert done.status_code == 303
    limits = MonitoringService.for_clinic(clinic).thresholds_for(device_id)
    assert limits is not None
    assert (limits.brady_bpm, limits.tachy_bpm, limits.hysteresis_bpm, limits.min_duration_s) == (
        45.0,
        120.5,
        4.0,
        8.0,
    )
    for bad in ({"brady_bpm": "130"}, {"tachy_bpm": "abc"}, {"min_duration_s": "-1"}):
        refused = app_client.post(url + "/limits", data={**form, **bad})
        assert refused.status_code == 422 and 'class="message error"' in refused.text
    assert MonitoringService.for_clinic(clinic).thresholds_for(device_id) == limits
    assert (
        app_client.post(url + "/limits", data={**form, "csrf_token": "x" * 40}).status_code == 403
    )
