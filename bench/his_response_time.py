"""Response time of each clinic form, with and without TLS, on a large clinic database.

The database holds N patients (10,000 by default, registered through the patient service, so
every field is encrypted) and 10 consultations per patient (100,000: the ones of the measured
patients through the consultation service, the rest bulk-written with the same encryption).
A doctor then logs in, opens each form once, and logs out, round after round, alternating
TLS and plain HTTP: p50/p99 per form. Last, 16 concurrent clients open random patients'
records (each opening decrypts the record's fields): requests/s.

Run: ``.venv/bin/python bench/his_response_time.py [--patients 10000] [--rounds 100]``.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_support import (
    PASSWORD,
    machine,
    make_installation,
    percentile,
    server_process,
    write_result,
)
from rekam.config import Settings
from rekam.crypto import FieldContext
from rekam.his.consultations import (
    ConsultationInput,
    ConsultationService,
    DiagnosisInput,
    VitalSigns,
)
from rekam.his.demo import demo_patient
from rekam.his.errors import Conflict
from rekam.his.installation import open_clinic
from rekam.his.pharmacy import MedicineInput, PharmacyService
from rekam.his.practitioners import PractitionerInput, PractitionerService
from rekam.his.procedures import ProcedureInput, ProcedureService
from rekam.his.rbac import Actor, Role
from rekam.store.models import Consultation
from tls_overhead import Browser, Target, _token

FORMS = (
    "login",
    "practitioner",
    "consultation",
    "laboratory",
    "medicine",
    "patient",
    "medical record",
    "procedure",
    "logout",
)
MEASURED_PATIENTS = 20


def build_clinic(
    directory: Path, patients: int, per_patient: int
) -> tuple[Path, list[str], dict[str, str]]:
    """Returns the data dir, the measured patients' ids and one consultation id per patient."""
    inst = make_installation(
        directory, [("bench.doctor", Role.DOCTOR), ("bench.bulk", Role.DOCTOR)]
    )
    settings = Settings(data_dir=inst.data_dir)
    clinic = open_clinic(settings)
    rng = random.Random(7)
    try:
        users = {u.username: u.id for u in clinic.accounts.list_users(Actor.system())}
        practitioners = PractitionerService.for_clinic(clinic)
        practitioners.create(
            Actor.system(),
            PractitionerInput(name="dr. Bench", profession="doctor", user_id=users["bench.doctor"]),
        )
        bulk_practitioner = practitioners.create(
            Actor.system(),
            PractitionerInput(name="dr. Bulk", profession="doctor", user_id=users["bench.bulk"]),
        ).id
        PharmacyService.for_clinic(clinic).create_medicine(
            Actor.system(), MedicineInput(name="Amlodipin", form="tablet", strength="5 mg"), 100
        )
        desk = Actor(user_id=None, username="bench", role=Role.REGISTRATION)
        ids: list[str] = []
        started = time.perf_counter()
        while len(ids) < patients:
            try:
                ids.append(clinic.patients.register(desk, demo_patient(rng)).id)
            except Conflict:  # a NIK drawn twice: draw another
                continue
            if len(ids) % 1000 == 0:
                print(
                    f"  {len(ids):,} patients ({time.perf_counter() - started:.0f} s)", flush=True
                )
        doctor = Actor(user_id=users["bench.doctor"], username="bench.doctor", role=Role.DOCTOR)
        consultations = ConsultationService.for_clinic(clinic)
        procedures = ProcedureService.for_clinic(clinic)
        measured, visit_of = ids[:MEASURED_PATIENTS], {}
        now = datetime.now(UTC)
        for patient_id in measured:  # real visits through the services, one with a procedure
            for k in range(per_patient):
                visit = consultations.create(
                    doctor,
                    patient_id,
                    ConsultationInput(
                        started_at=now - timedelta(days=k * 30 + 1),
                        complaint="kontrol rutin",
                        examination="dalam batas normal",
                        vital_signs=VitalSigns(systolic=130, diastolic=85, heart_rate=80),
                        diagnoses=[DiagnosisInput(code="I10", text="hipertensi esensial")],
                        plan="lanjut obat",
                    ),
                )
                consultations.sign(doctor, visit.id)
            visit_of[patient_id] = visit.id
        for patient_id in measured:
            extra = consultations.create(
                doctor,
                patient_id,
                ConsultationInput(
                    started_at=now - timedelta(hours=1),
                    complaint="luka",
                    examination="luka lecet",
                    diagnoses=[DiagnosisInput(code="T14.0", text="luka superfisial")],
                ),
            )
            procedures.create(
                doctor, extra.id, ProcedureInput(code="86.22", description="debridemen")
            )
            visit_of[patient_id] = extra.id
        # the other consultations, written in bulk with the same encryption
        rows = []
        started = time.perf_counter()
        fields = clinic.fields
        for patient_id in ids[MEASURED_PATIENTS:]:
            for k in range(per_patient):
                row_id = str(uuid.uuid4())
                when = now - timedelta(days=60 + k * 30)

                def seal(
                    column: str, value: str, row_id: str = row_id, patient: str = patient_id
                ) -> bytes:
                    return fields.encrypt_field(
                        value, FieldContext("consultations", column, row_id, patient)
                    )

                rows.append(
                    {
                        "id": row_id,
                        "patient_id": patient_id,
                        "practitioner_id": bulk_practitioner,
                        "started_at": when,
                        "status": "signed",
                        "complaint_enc": seal("complaint", "batuk"),
                        "examination_enc": seal("examination", "ronki -/-"),
                        "vital_signs_enc": seal("vital_signs", '{"heart_rate": 82.0}'),
                        "plan_enc": seal("plan", "obat simtomatik"),
                        "signed_at": when,
                        "signed_by": users["bench.bulk"],
                        "created_at": when,
                        "updated_at": when,
                        "version": 1,
                    }
                )
            if len(rows) >= 20_000:
                with clinic.database.transaction(write=True) as session:
                    session.bulk_insert_mappings(Consultation, rows)  # type: ignore[arg-type]
                rows.clear()
                print(
                    f"  consultations written ({time.perf_counter() - started:.0f} s)", flush=True
                )
        if rows:
            with clinic.database.transaction(write=True) as session:
                session.bulk_insert_mappings(Consultation, rows)  # type: ignore[arg-type]
    finally:
        clinic.close()
    return inst.data_dir, ids, visit_of


def form_requests(patient_id: str, visit_id: str) -> dict[str, str]:
    return {
        "practitioner": "/practitioners",
        "consultation": f"/consultations/{visit_id}",
        "laboratory": "/lab",
        "medicine": "/api/v1/medicines",
        "patient": f"/patients/{patient_id}",
        "medical record": f"/patients/{patient_id}/record",
        "procedure": f"/api/v1/consultations/{visit_id}/procedures",
    }


def one_round(browser: Browser, patient_id: str, visit_id: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    status, page = browser.request("GET", "/login")
    start = time.perf_counter()
    status, _ = browser.request(
        "POST", "/login", f"username=bench.doctor&password={PASSWORD}&csrf_token={_token(page)}"
    )
    timings["login"] = (time.perf_counter() - start) * 1000
    assert status == 303, status
    for form, path in form_requests(patient_id, visit_id).items():
        start = time.perf_counter()
        status, page_text = browser.request("GET", path)
        timings[form] = (time.perf_counter() - start) * 1000
        assert status == 200, (form, status, page_text[:200])
    _, home = browser.request("GET", "/")
    start = time.perf_counter()
    status, _ = browser.request("POST", "/logout", f"csrf_token={_token(home)}")
    timings["logout"] = (time.perf_counter() - start) * 1000
    assert status == 303
    return timings


def _records_worker(args: tuple[int, bool, str, str, list[str], float, int]) -> int:
    port, tls, root_pem, cookie, patients, seconds, threads = args
    target = Target(port, tls, Path(root_pem))
    counts = [0] * threads
    errors: list[str] = []
    stop_at = time.monotonic() + seconds

    def run(slot: int) -> None:
        rng = random.Random(slot)
        browser = Browser(target, keep_alive=True, cookies=dict([cookie.split("=", 1)]))
        while time.monotonic() < stop_at:
            status, body = browser.request("GET", f"/api/v1/patients/{rng.choice(patients)}")
            if status == 200:
                counts[slot] += 1
            elif not errors:
                errors.append(f"{status} {body[:200]}")
        browser.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        print(f"  first refused request: {errors[0]}", flush=True)
    return sum(counts)


def records_per_second(target: Target, patients: list[str], seconds: float) -> float:
    browser = Browser(target, keep_alive=True)
    _, page = browser.request("GET", "/login")
    browser.request(
        "POST", "/login", f"username=bench.doctor&password={PASSWORD}&csrf_token={_token(page)}"
    )
    cookie = next(f"{k}={v}" for k, v in browser.cookies.items() if "session" in k)
    browser.close()
    jobs = [(target.port, target.tls, str(target.root_pem), cookie, patients, seconds, 8)] * 2
    with ProcessPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(_records_worker, jobs)) / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--per-patient", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        print(f"building a clinic of {args.patients:,} patients …", flush=True)
        data_dir, patients, visit_of = build_clinic(Path(tmp), args.patients, args.per_patient)
        from bench_support import BenchInstallation

        installation = BenchInstallation(data_dir)
        measured = list(visit_of)
        with (
            server_process(installation, tls=True) as tls_port,
            server_process(installation, tls=False) as plain_port,
        ):
            targets = {
                "tls": Target(tls_port, True, installation.root_pem),
                "plain": Target(plain_port, False, installation.root_pem),
            }
            browsers = {m: Browser(t, keep_alive=True) for m, t in targets.items()}
            latencies: dict[str, dict[str, list[float]]] = {m: {} for m in targets}
            for i in range(args.rounds + 3):
                for mode in targets:
                    patient = measured[i % len(measured)]
                    timings = one_round(browsers[mode], patient, visit_of[patient])
                    if i >= 3:  # the first rounds warm caches
                        for form, ms in timings.items():
                            latencies[mode].setdefault(form, []).append(ms)
            rates = {m: records_per_second(t, patients, args.seconds) for m, t in targets.items()}
    lines = [
        f"machine: {machine()}; {len(patients):,} patients, {len(patients) * args.per_patient:,} "
        f"consultations; {args.rounds} rounds per mode, keep-alive",
        "",
        "| form | plain p50 ms | TLS p50 ms | TLS/plain p50 | plain p99 ms | TLS p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    result: dict[str, object] = {"machine": machine(), "patients": len(patients), "forms": {}}
    for form in FORMS:
        plain, tls = latencies["plain"][form], latencies["tls"][form]
        p50p, p50t = percentile(plain, 50), percentile(tls, 50)
        lines.append(
            f"| {form} | {p50p:.2f} | {p50t:.2f} | {p50t / p50p:.3f} | "
            f"{percentile(plain, 99):.2f} | {percentile(tls, 99):.2f} |"
        )
        result["forms"][form] = {"plain_p50": p50p, "tls_p50": p50t}  # type: ignore[index]
    lines += [
        "",
        f"opening a random patient's record (GET /api/v1/patients/{{id}}, decrypts its "
        f"fields), 16 concurrent clients: plain {rates['plain']:.0f} req/s, TLS "
        f"{rates['tls']:.0f} req/s",
    ]
    text = "\n".join(lines)
    result["report"] = text
    result["records_per_second"] = rates
    write_result("his_response_time", result)
    print(text)


if __name__ == "__main__":
    main()
