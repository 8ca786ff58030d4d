"""The ECG studies pages on a real installation: worklist badges, the study page with the
signature verdict (verified when opened) before the 12-lead chart for valid, tampered (patient
name, one waveform sample) and unsigned objects, reporting with the audited signature override,
role checks, and the GP's send form (CSV converted and signed, DICOM as is, bad input)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    pkcs12,
)
from sqlalchemy import func, select
from starlette.testclient import TestClient

from rekam.ecg import Recording, ScpEcgDemographics, scp_ecg_bytes
from rekam.his.installation import Clinic
from rekam.his.pacs_archive import PacsArchiveService
from rekam.his.rbac import Actor, Role
from rekam.pki import Identity, KeyAlgorithm
from rekam.store.models import AuditEntry, EcgStudyReport, PacsInstance, Patient
from support.pacs_objects import PATIENT_NAME, ecg_object
from support.people import make_patient
from support.servers import PASSWORD

SENDER = Actor(user_id=None, username="gp.sender", role=Role.DOCTOR, source_address="test")
DATA_CHANGED = "signature invalid: the data was changed after signing"


def form_login(client: TestClient, username: str) -> str:
    """Log in through the form (pages in English); returns the session's CSRF token."""
    client.cookies.clear()
    client.cookies.set("rekam-lang", "en")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert csrf is not None
    return csrf.group(1)


@pytest.fixture(scope="module")
def cardiologist(clinic: Clinic) -> Identity:
    return clinic.pki.issue_doctor("Dr Budi Jantung", "LIC-8101", None, KeyAlgorithm.RSA3072)


def _store(clinic: Clinic, data: bytes) -> tuple[str, str]:
    stored = PacsArchiveService.for_clinic(clinic).store(SENDER, data)
    return stored.study_instance_uid, stored.sop_instance_uid


def _tamper_sample(signed: bytes) -> bytes:
    """One waveform byte changed in place (same length, the file stays well formed)."""
    dataset = pydicom.dcmread(io.BytesIO(signed))
    waveform = bytes(dataset.WaveformSequence[0].WaveformData)
    at = signed.index(waveform[4000:4032]) + 6
    return signed[:at] + bytes([signed[at] ^ 0x01]) + signed[at + 1 :]


def _tamper_name(signed: bytes) -> bytes:
    original = PATIENT_NAME.encode()
    assert signed.count(original) == 1
    return signed.replace(original, original[:-1] + b"o")  # Kartika → Kartiko


def _sections(html: str) -> tuple[str, str]:
    """(the verdict section, everything from the chart on); the verdict must come first."""
    verdict_at = html.index('id="verdict"')
    chart_at = html.index('id="chart"')
    assert verdict_at < chart_at
    return html[verdict_at:chart_at], html[chart_at:]


def _trace_count(html: str) -> int:
    return len(re.findall(r'<polyline class="trace[ "]', html))


def _audit(clinic: Clinic, action: str, record: str) -> list[AuditEntry]:
    with clinic.database.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == action, AuditEntry.record == record)
            )
        )


def test_valid_study_shows_signer_and_verdict_before_the_chart(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    study, sop = _store(clinic, ecg_object(21, cardiologist))
    form_login(app_client, "doctor1")
    page = app_client.get(f"/ecg-studies/{study}")
    assert page.status_code == 200
    verdict, rest = _sections(page.text)
    assert "Signature valid: the data is unchanged since signing" in verdict
    assert "Dr Budi Jantung" in verdict and "LIC-8101" in verdict
    assert DATA_CHANGED not in page.text
    assert "<svg" in rest and "<svg" not in verdict
    assert _trace_count(page.text) == 13
    listed = app_client.get("/ecg-studies")
    row = re.search(rf'<tr data-study="{re.escape(study)}">(.*?)</tr>', listed.text, re.S)
    assert row is not None
    assert "badge-valid" in row.group(1) and "gp.sender" in row.group(1)
    assert "Sulistyowati Kartika" in row.group(1)  # not a patient of this clinic: shown
    # an interpretation on a valid object needs no override
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    done = app_client.post(
        f"/ecg-studies/{study}/report",
        data={
            "csrf_token": csrf.group(1),
            "sop_instance_uid": sop,
            "interpretation": "Irama sinus, 72/menit, tanpa kelainan ST.",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = app_client.get(done.headers["location"]).text
    assert "Irama sinus, 72/menit, tanpa kelainan ST." in shown
    assert 'data-override="no"' in shown
    with clinic.database.transaction() as session:
        row_ = session.scalar(select(EcgStudyReport).where(EcgStudyReport.sop_instance_uid == sop))
        assert row_ is not None and not row_.signature_override
        assert b"Irama sinus" not in row_.interpretation_enc  # sealed, not plain text
        assert _audit(clinic, "ecg-study.signature-override", row_.id) == []
        assert len(_audit(clinic, "ecg-study.report", row_.id)) == 1


@pytest.mark.parametrize("tamper", [_tamper_name, _tamper_sample], ids=["name", "sample"])
def test_tampered_study_says_data_changed_before_the_chart(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity, tamper: object
) -> None:
    assert callable(tamper)
    signed = ecg_object(22 if tamper is _tamper_name else 23, cardiologist)
    study, _ = _store(clinic, tamper(signed))
    form_login(app_client, "doctor1")
    page = app_client.get(f"/ecg-studies/{study}")
    assert page.status_code == 200
    verdict, rest = _sections(page.text)
    assert DATA_CHANGED in verdict
    assert "Dr Budi Jantung" in verdict  # who signed it is still shown
    assert 'class="verdict verdict-invalid"' in page.text
    assert _trace_count(rest) == 13  # the chart is still there, below the verdict
    listed = app_client.get("/ecg-studies", params={"status": "invalid"}).text
    assert f'data-study="{study}"' in listed and "badge-invalid" in listed
    assert f'data-study="{study}"' not in app_client.get("/ecg-studies?status=valid").text


def test_verdict_is_computed_when_opened_not_taken_from_the_stored_flag(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    study, sop = _store(clinic, ecg_object(24, cardiologist))
    with clinic.database.transaction(write=True) as session:  # a stale or forged index flag
        row = session.scalar(select(PacsInstance).where(PacsInstance.sop_instance_uid == sop))
        assert row is not None
        row.signature_status = "invalid"
    form_login(app_client, "nurse1")
    verdict, _ = _sections(app_client.get(f"/ecg-studies/{study}").text)
    assert "Signature valid" in verdict


def test_unsigned_study_needs_an_override_with_a_reason_and_it_is_audited(
    app_client: TestClient, clinic: Clinic
) -> None:
    study, sop = _store(clinic, ecg_object(25))
    csrf = form_login(app_client, "doctor1")
    page = app_client.get(f"/ecg-studies/{study}").text
    verdict, _ = _sections(page)
    assert "Not signed" in verdict and 'id="override_reason"' in page
    url = f"/ecg-studies/{study}/report"
    base = {"csrf_token": csrf, "sop_instance_uid": sop, "interpretation": "Sinus takikardia."}
    refused = app_client.post(url, data=base)
    assert refused.status_code == 422
    assert "type why (at least 10 characters)" in refused.text
    assert "Sinus takikardia." in refused.text  # what was typed is kept
    short = app_client.post(url, data={**base, "override_reason": "ok"})
    assert short.status_code == 422
    with clinic.database.transaction() as session:
        count = session.scalar(
            select(func.count())
            .select_from(EcgStudyReport)
            .where(EcgStudyReport.sop_instance_uid == sop)
        )
    assert count == 0
    reason = "Dikonfirmasi lewat telepon dengan dr. pengirim"
    done = app_client.post(url, data={**base, "override_reason": reason}, follow_redirects=False)
    assert done.status_code == 303
    shown = app_client.get(done.headers["location"]).text
    assert 'data-override="yes"' in shown and reason in shown
    with clinic.database.transaction() as session:
        report = session.scalar(
            select(EcgStudyReport).where(EcgStudyReport.sop_instance_uid == sop)
        )
        assert report is not None and report.signature_override
        assert report.signature_status == "unsigned"
        assert report.override_reason_enc is not None
        assert reason.encode() not in report.override_reason_enc
    overrides = _audit(clinic, "ecg-study.signature-override", report.id)
    assert len(overrides) == 1
    assert overrides[0].actor == "doctor1" and overrides[0].outcome == "override"
    assert reason not in overrides[0].detail  # the reason is sealed, the trail points to it


def test_roles_nurse_cannot_report_lab_and_pharmacist_cannot_see(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    study, sop = _store(clinic, _tamper_sample(ecg_object(26, cardiologist)))
    csrf = form_login(app_client, "nurse1")
    page = app_client.get(f"/ecg-studies/{study}")
    assert page.status_code == 200 and DATA_CHANGED in page.text
    assert 'id="report-form"' not in page.text
    refused = app_client.post(
        f"/ecg-studies/{study}/report",
        data={
            "csrf_token": csrf,
            "sop_instance_uid": sop,
            "interpretation": "x",
            "override_reason": "a long enough reason",
        },
    )
    assert refused.status_code == 403
    for username in ("lab1", "pharmacist1"):
        form_login(app_client, username)
        assert app_client.get("/ecg-studies").status_code == 403
        assert app_client.get(f"/ecg-studies/{study}").status_code == 403
        assert app_client.get("/ecg-studies/send").status_code == 403
    app_client.cookies.clear()
    assert app_client.get("/ecg-studies", follow_redirects=False).status_code in (302, 303)


def test_bad_study_addresses_and_csrf(app_client: TestClient, clinic: Clinic) -> None:
    study, sop = _store(clinic, ecg_object(27))
    form_login(app_client, "doctor1")
    assert app_client.get("/ecg-studies/1.2.3.4.5.6.7").status_code == 404
    assert app_client.get("/ecg-studies/not-a-uid").status_code == 422
    assert app_client.get(f"/ecg-studies/{study}?instance=1.2.3").status_code == 404
    forged = app_client.post(
        f"/ecg-studies/{study}/report",
        data={"csrf_token": "x" * 40, "sop_instance_uid": sop, "interpretation": "x"},
    )
    assert forged.status_code == 403


def _csv(fs: float = 500.0, seconds: float = 10.0) -> bytes:
    t = np.arange(int(fs * seconds)) / fs
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    lines = ["time," + ",".join(leads)]
    for i, moment in enumerate(t):
        values = [0.6 * np.sin(2 * np.pi * 1.2 * moment + k) for k in range(12)]
        lines.append(f"{t[i]:.4f}," + ",".join(f"{v:.4f}" for v in values))
    return ("\n".join(lines) + "\n").encode()


def test_gp_sends_a_csv_converted_and_signed_with_their_key(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    gp = clinic.pki.issue_doctor("Dr Sari Umum", "LIC-8202", None, KeyAlgorithm.RSA3072)
    p12 = pkcs12.serialize_key_and_certificates(
        b"gp", gp.private_key, gp.certificate, None, BestAvailableEncryption(b"rahasia-gp")
    )
    nurse = Actor(user_id=None, username="ns.ecg", role=Role.NURSE)
    patient = clinic.patients.register(nurse, make_patient("Dewi Lestari", "F"))
    csrf = form_login(app_client, "doctor1")
    form = app_client.get("/ecg-studies/send")
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text
    wrong = app_client.post(
        "/ecg-studies/send",
        data={
            "csrf_token": csrf,
            "patient": patient.medical_record_number,
            "signing_passphrase": "salah",
        },
        files={
            "file": ("ekg.csv", _csv(), "text/csv"),
            "signing_key": ("gp.p12", p12, "application/x-pkcs12"),
        },
    )
    assert wrong.status_code == 422 and "signing file cannot be opened" in wrong.text
    sent = app_client.post(
        "/ecg-studies/send",
        data={
            "csrf_token": csrf,
            "patient": patient.medical_record_number,
            "signing_passphrase": "rahasia-gp",
        },
        files={
            "file": ("ekg.csv", _csv(), "text/csv"),
            "signing_key": ("gp.p12", p12, "application/x-pkcs12"),
        },
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    page = app_client.get(sent.headers["location"]).text
    verdict, rest = _sections(page)
    assert "Signature valid" in verdict and "Dr Sari Umum" in verdict
    assert _trace_count(rest) == 13
    assert "Lestari Dewi" in page  # DICOM Family^Given from the registered patient
    # the stored object belongs to the Rekam patient
    uid = re.search(r"instance=([0-9.]+)", sent.headers["location"])
    assert uid is not None
    with clinic.database.transaction() as session:
        row = session.scalar(
            select(PacsInstance).where(PacsInstance.sop_instance_uid == uid.group(1))
        )
        assert row is not None and row.patient_id == patient.id


def test_send_as_is_and_bad_files_are_refused_with_nothing_stored(
    app_client: TestClient, clinic: Clinic
) -> None:
    csrf = form_login(app_client, "doctor1")

    def count() -> int:
        with clinic.database.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(PacsInstance)) or 0)

    before = count()
    for name, content, needle in (
        ("x.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00" * 10, "not a readable DICOM"),
        ("notes.pdf", b"%PDF-1.7 hello", "not a DICOM object, an SCP-ECG record"),
        ("empty.csv", b"", "file is empty"),
        ("ekg.csv", b"time,I\n0,abc\n", "Give the patient"),
    ):
        bad = app_client.post(
            "/ecg-studies/send",
            data={"csrf_token": csrf},
            files={"file": (name, content, "application/octet-stream")},
        )
        assert bad.status_code == 422, (name, bad.status_code)
        assert needle in bad.text, name
    assert count() == before
    sent = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf},
        files={"file": ("ecg.dcm", ecg_object(28), "application/dicom")},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert count() == before + 1
    assert "Not signed" in app_client.get(sent.headers["location"]).text
    again = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf},
        files={"file": ("ecg.dcm", ecg_object(29), "application/dicom")},
        follow_redirects=False,
    )
    assert again.status_code == 303


def test_indonesian_page_says_the_data_was_changed(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity
) -> None:
    study, _ = _store(clinic, _tamper_name(ecg_object(30, cardiologist)))
    form_login(app_client, "doctor1")
    app_client.cookies.set("rekam-lang", "id")
    page = app_client.get(f"/ecg-studies/{study}").text
    verdict, _ = _sections(page)
    assert "tanda tangan tidak sah: data diubah setelah ditandatangani" in verdict


def test_patient_of_this_clinic_is_named_only_to_those_caring_for_them(
    app_client: TestClient, clinic: Clinic
) -> None:
    nurse = Actor(user_id=None, username="ns.ecg", role=Role.NURSE)
    patient = clinic.patients.register(nurse, make_patient("Ratna Kusuma", "F"))
    stored = PacsArchiveService.for_clinic(clinic).store(
        SENDER, ecg_object(31, patient_name="Kusuma^Ratna"), patient_id=patient.id
    )
    study = stored.study_instance_uid
    form_login(app_client, "doctor1")
    row = re.compile(rf'<tr data-study="{re.escape(study)}">(.*?)</tr>', re.S)
    listed = row.search(app_client.get("/ecg-studies").text)
    assert listed is not None and "Kusuma Ratna" in listed.group(1)  # registered today: in care
    with clinic.database.transaction(write=True) as session:  # registered long ago, no visit
        record = session.get(Patient, patient.id)
        assert record is not None
        record.created_at = record.created_at - timedelta(days=30)
    listed = row.search(app_client.get("/ecg-studies").text)
    assert listed is not None
    assert "Kusuma" not in listed.group(1) and "not in your care" in listed.group(1)
    page = app_client.get(f"/ecg-studies/{study}").text
    assert "Kusuma" not in page and "not in your care" in page
    assert _trace_count(page) == 13  # the ECG itself is still there for the specialist


def test_gp_sends_an_scp_ecg_record(app_client: TestClient, clinic: Clinic) -> None:
    nurse = Actor(user_id=None, username="ns.ecg", role=Role.NURSE)
    patient = clinic.patients.register(nurse, make_patient("Agus Salim", "M"))
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    samples = np.stack([0.5 * np.sin(2 * np.pi * 1.1 * t + k) for k in range(12)], axis=1)
    record = scp_ecg_bytes(
        Recording(samples, fs, leads),
        ScpEcgDemographics("SCP-77", "Salim", "Agus", acquired_at=datetime(2025, 6, 1, 8, 0)),
    )
    csrf = form_login(app_client, "doctor1")
    sent = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf, "patient": patient.medical_record_number},
        files={"file": ("rekaman.scp", record, "application/octet-stream")},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    page = app_client.get(sent.headers["location"]).text
    verdict, rest = _sections(page)
    assert "Not signed" in verdict
    assert _trace_count(rest) == 13
    assert "01-06-2025" in page  # the study date comes from the SCP-ECG acquisition time


def test_name_changed_with_dcmodify_is_reported_as_dcmsign_reports_it(
    app_client: TestClient, clinic: Clinic, cardiologist: Identity, tmp_path: Path
) -> None:
    """DCMTK changes the patient name of a signed ECG; dcmsign calls it corrupted and the study
    page, given the same file through the send form, says the data was changed after signing."""
    if shutil.which("dcmsign") is None or shutil.which("dcmodify") is None:
        pytest.skip("DCMTK is not installed")
    path = tmp_path / "ecg.dcm"
    path.write_bytes(ecg_object(32, cardiologist))
    root = tmp_path / "root.pem"
    root.write_bytes(clinic.pki.load_root_certificate().public_bytes(Encoding.PEM))
    verify = ["dcmsign", "--verify", "--add-cert-file", str(root)]
    issuing = clinic.pki.issuing_certificate_path
    if issuing.exists():
        verify += ["--add-cert-file", str(issuing)]
    before = subprocess.run([*verify, str(path)], capture_output=True, text=True, timeout=30)
    assert before.returncode == 0 and "Signature Verification : OK" in before.stderr + before.stdout
    subprocess.run(
        ["dcmodify", "-nb", "-m", "(0010,0010)=Changed^Name", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    after = subprocess.run([*verify, str(path)], capture_output=True, text=True, timeout=30)
    assert after.returncode != 0
    assert "document corrupted" in after.stderr + after.stdout
    csrf = form_login(app_client, "doctor1")
    sent = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf},
        files={"file": ("ecg.dcm", path.read_bytes(), "application/dicom")},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    verdict, _ = _sections(app_client.get(sent.headers["location"]).text)
    assert DATA_CHANGED in verdict and "Dr Budi Jantung" in verdict


def test_object_without_a_waveform_shows_the_verdict_and_says_why_no_chart(
    app_client: TestClient, clinic: Clinic
) -> None:
    dataset = pydicom.dcmread(io.BytesIO(ecg_object(33)))
    del dataset.WaveformSequence
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    study, _ = _store(clinic, buffer.getvalue())
    form_login(app_client, "doctor1")
    page = app_client.get(f"/ecg-studies/{study}")
    assert page.status_code == 200
    verdict, rest = _sections(page.text)
    assert "Not signed" in verdict
    assert 'id="chart-missing"' in rest and "<svg" not in rest


PTB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ecg" / "ptbdb"


@pytest.mark.skipif(not (PTB / "s0010_re.hea").is_file(), reason="PTB record s0010_re not here")
def test_gp_sends_a_wfdb_record_with_its_signal_files(
    app_client: TestClient, clinic: Clinic
) -> None:
    nurse = Actor(user_id=None, username="ns.ecg", role=Role.NURSE)
    patient = clinic.patients.register(nurse, make_patient("Hendra Wijaya", "M"))
    csrf = form_login(app_client, "doctor1")
    header = (PTB / "s0010_re.hea").read_bytes()
    signals = [
        ("signal_files", (name, (PTB / name).read_bytes(), "application/octet-stream"))
        for name in ("s0010_re.dat", "s0010_re.xyz")
    ]
    sent = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf, "patient": patient.medical_record_number},
        files=[("file", ("s0010_re.hea", header, "text/plain")), *signals],
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    page = app_client.get(sent.headers["location"]).text
    _, rest = _sections(page)
    assert _trace_count(rest) == 13
    missing_signal = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf, "patient": patient.medical_record_number},
        files=[("file", ("s0010_re.hea", header, "text/plain"))],
    )
    assert missing_signal.status_code == 422 and "signal file is missing" in missing_signal.text
    sneaky = app_client.post(
        "/ecg-studies/send",
        data={"csrf_token": csrf, "patient": patient.medical_record_number},
        files=[
            ("file", ("s0010_re.hea", header, "text/plain")),
            ("signal_files", ("../../x.dat", b"\0" * 10, "application/octet-stream")),
            ("signal_files", ("bad name?.dat", b"\0" * 10, "application/octet-stream")),
        ],
    )
    assert sneaky.status_code == 422 and "WFDB file name may contain only" in sneaky.text
