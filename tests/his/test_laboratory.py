"""Laboratory through the service: ordering, worklist, results and flags, corrections, trends,
roles, audit — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from rekam.crypto import FieldContext
from rekam.his.audit import verify_audit_chain
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.installation import Clinic, open_clinic
from rekam.his.lab_catalogue import CATALOGUE, catalogue_test
from rekam.his.laboratory import (
    LaboratoryService,
    RequestedTest,
    ResultInput,
    compute_flag,
    parse_number,
)
from rekam.his.rbac import Actor, Role
from rekam.store.models import (
    Amendment,
    AuditEntry,
    Consultation,
    LabOrder,
    Patient,
    Practitioner,
)
from support.people import make_nik, make_patient
from support.servers import make_installation


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("laboratory"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


@pytest.fixture(scope="module")
def lab(clinic: Clinic) -> LaboratoryService:
    return LaboratoryService.for_clinic(clinic)


DOCTOR = Actor(user_id=None, username="dr.test", role=Role.DOCTOR, source_address="10.0.0.9")
NURSE = Actor(user_id=None, username="ns.test", role=Role.NURSE, source_address="10.0.0.9")
ANALYST = Actor(user_id=None, username="lab.test", role=Role.LAB, source_address="10.0.0.9")
PHARMACIST = Actor(user_id=None, username="ph.test", role=Role.PHARMACIST)
ADMIN = Actor(user_id=None, username="admin.test", role=Role.ADMIN)
REGISTRATION = Actor(user_id=None, username="reg.test", role=Role.REGISTRATION)


def new_consultation(clinic: Clinic, sex: str = "F") -> tuple[str, str]:
    """A registered patient and a consultation of theirs: (patient id, consultation id)."""
    born = date(1980, 6, 15)  # an adult: adult reference ranges apply
    data = replace(make_patient("Sri Wahyuni", sex), birth_date=born, nik=make_nik(born, sex))
    patient = clinic.patients.register(NURSE, data)
    with clinic.database.transaction(write=True) as session:
        doctor = Practitioner(name="dr. Andi", profession="doctor")
        session.add(doctor)
        session.flush()
        consultation = Consultation(
            patient_id=patient.id,
            practitioner_id=doctor.id,
            started_at=datetime.now(UTC),
        )
        session.add(consultation)
        session.flush()
        return patient.id, consultation.id


def audit_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def order_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(LabOrder)) or 0)


def last_audit(clinic: Clinic) -> AuditEntry:
    with clinic.database.transaction() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert entry is not None
        return entry


# Pure rules --------------------------------------------------------------------------------------


def test_catalogue_has_the_common_tests_with_codes_units_and_ranges() -> None:
    codes = {t.code for t in CATALOGUE}
    assert len(codes) == len(CATALOGUE) >= 14
    hb = catalogue_test("718-7")
    assert hb is not None and hb.unit == "g/dL"
    male, female = hb.reference_for("M", True), hb.reference_for("F", True)
    assert male is not None and female is not None and male.low != female.low
    assert hb.reference_for("F", False) is not None  # children have their own range
    assert catalogue_test("nope") is None


@pytest.mark.parametrize(
    ("text", "number"),
    [("13.2", 13.2), ("13,2", 13.2), (" 7 ", 7.0), ("positif", None), ("nan", None), ("", None)],
)
def test_parse_number(text: str, number: float | None) -> None:
    assert parse_number(text) == number


def test_flags_from_the_range_and_qualitative_values() -> None:
    from rekam.his.laboratory import ReferenceRange

    band = ReferenceRange(12.0, 15.0, "12–15")
    assert compute_flag("11.9", band, None) == "L"
    assert compute_flag("15.1", band, None) == "H"
    assert compute_flag("12", band, None) == "N"
    assert compute_flag("15", band, None) == "N"
    assert compute_flag("240", ReferenceRange(None, 199, "≤ 199"), None) == "H"
    malaria = catalogue_test("70569-9")
    assert compute_flag("Negatif", None, malaria) == "N"
    assert compute_flag("positif P. vivax", None, malaria) == "A"
    assert compute_flag("13", None, None) == ""


# Ordering ----------------------------------------------------------------------------------------


def test_doctor_orders_catalogue_and_free_text_tests_encrypted(
    clinic: Clinic, lab: LaboratoryService
) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    before = audit_count(clinic)
    orders = lab.order_tests(
        DOCTOR,
        consultation_id,
        [RequestedTest(code="718-7"), RequestedTest(name="Widal  test")],
        patient_id=patient_id,
    )
    assert audit_count(clinic) == before + 1
    entry = last_audit(clinic)
    assert (entry.action, entry.patient_id, entry.record) == (
        "lab.order",
        patient_id,
        consultation_id,
    )
    assert [(o.test_code, o.test_name, o.status) for o in orders] == [
        ("718-7", "Haemoglobin", "ordered"),
        (None, "Widal test", "ordered"),
    ]
    with clinic.database.transaction() as session:
        row = session.get(LabOrder, orders[1].id)
        assert row is not None
        assert b"Widal" not in row.test_enc
        opened = clinic.fields.decrypt_text(
            row.test_enc, FieldContext("lab_orders", "test", row.id, patient_id)
        )
        assert json.loads(opened) == {"code": None, "name": "Widal test"}


def test_order_validation_writes_nothing(clinic: Clinic, lab: LaboratoryService) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    other_patient, _ = new_consultation(clinic)
    before_orders, before_audit = order_count(clinic), audit_count(clinic)
    for tests, key in (
        ([], "lab.no_tests"),
        ([RequestedTest(code="0000-0")], "lab.unknown_test"),
        ([RequestedTest(name="x")], "lab.test_name"),
        ([RequestedTest(code="718-7")] * 21, "lab.too_many_tests"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            lab.order_tests(DOCTOR, consultation_id, tests)
        assert refused.value.key == key
    with pytest.raises(ValidationFailed) as wrong:
        lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="718-7")], other_patient)
    assert wrong.value.key == "lab.wrong_patient"
    with pytest.raises(NotFound):
        lab.order_tests(DOCTOR, "no-such-consultation", [RequestedTest(code="718-7")])
    assert (order_count(clinic), audit_count(clinic)) == (before_orders, before_audit)
    assert patient_id


@pytest.mark.parametrize("actor", [NURSE, ANALYST, PHARMACIST, ADMIN, REGISTRATION])
def test_only_doctors_order(clinic: Clinic, lab: LaboratoryService, actor: Actor) -> None:
    _, consultation_id = new_consultation(clinic)
    before = order_count(clinic)
    with pytest.raises(PermissionDenied):
        lab.order_tests(actor, consultation_id, [RequestedTest(code="718-7")])
    assert order_count(clinic) == before


# Results -----------------------------------------------------------------------------------------


def test_worklist_result_flag_and_duplicate_refused(clinic: Clinic, lab: LaboratoryService) -> None:
    patient_id, consultation_id = new_consultation(clinic, sex="F")
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="718-7")])
    before = audit_count(clinic)
    pending = lab.worklist(ANALYST)
    assert audit_count(clinic) == before + 1
    mine = [o for o in pending if o.id == order.id]
    assert mine and mine[0].patient_name == "Sri Wahyuni"
    assert mine[0].medical_record_number.startswith("RM-")

    before = audit_count(clinic)
    done = lab.enter_result(ANALYST, order.id, ResultInput(value="10,4"))
    assert audit_count(clinic) == before + 1
    assert last_audit(clinic).action == "lab.result"
    assert done.status == "resulted" and done.result is not None
    assert (done.result.value, done.result.unit, done.result.flag) == ("10,4", "g/dL", "L")
    assert done.result.reference is not None and done.result.reference.low == 12.0  # female adult
    assert order.id not in [o.id for o in lab.worklist(ANALYST)]

    with clinic.database.transaction() as session:
        row = session.get(LabOrder, order.id)
        assert row is not None and row.result_value_enc is not None
        assert b"10,4" not in row.result_value_enc
        assert row.abnormal_flag_enc is not None and b'"L"' not in row.abnormal_flag_enc

    before = audit_count(clinic)
    with pytest.raises(Conflict) as twice:
        lab.enter_result(ANALYST, order.id, ResultInput(value="13.0"))
    assert twice.value.key == "lab.already_resulted"
    assert audit_count(clinic) == before
    assert lab.get_order(DOCTOR, order.id).result.value == "10,4"  # type: ignore[union-attr]
    assert patient_id


def test_result_validation_and_flag_override(clinic: Clinic, lab: LaboratoryService) -> None:
    _, consultation_id = new_consultation(clinic, sex="M")
    glucose, malaria = lab.order_tests(
        DOCTOR, consultation_id, [RequestedTest(code="2345-7"), RequestedTest(code="70569-9")]
    )
    before = audit_count(clinic)
    for data, key in (
        (ResultInput(value=""), "lab.value_required"),
        (ResultInput(value="tinggi"), "lab.value_number"),
        (ResultInput(value="120", flag="X"), "lab.flag_invalid"),
        (ResultInput(value="120", flag="H"), "lab.flag_reason_required"),
        (ResultInput(value="120", reference_low=200, reference_high=100), "lab.reference_range"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            lab.enter_result(ANALYST, glucose.id, data)
        assert refused.value.key == key
    assert audit_count(clinic) == before
    assert lab.get_order(ANALYST, glucose.id).status == "ordered"  # nothing half-written

    overridden = lab.enter_result(
        ANALYST,
        glucose.id,
        ResultInput(value="120", flag="H", flag_reason="sampel lipemik, ulang besok"),
    )
    assert overridden.result is not None
    assert (overridden.result.flag, overridden.result.computed_flag) == ("H", "N")
    assert overridden.result.flag_reason == "sampel lipemik, ulang besok"

    positive = lab.enter_result(ANALYST, malaria.id, ResultInput(value="positif P. vivax"))
    assert positive.result is not None and positive.result.flag == "A"
    assert positive.result.reference is None


def test_correction_keeps_the_previous_value(clinic: Clinic, lab: LaboratoryService) -> None:
    _, consultation_id = new_consultation(clinic, sex="M")
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="2160-0")])
    with pytest.raises(Conflict):  # nothing to correct yet
        lab.correct_result(ANALYST, order.id, ResultInput(value="1.0"), "salah ketik hasil", 1)
    first = lab.enter_result(ANALYST, order.id, ResultInput(value="11"))
    assert first.result is not None and first.result.flag == "H"
    with pytest.raises(ValidationFailed):
        lab.correct_result(ANALYST, order.id, ResultInput(value="1.1"), "x", first.version)
    with pytest.raises(Conflict):
        lab.correct_result(
            ANALYST, order.id, ResultInput(value="1.1"), "salah ketik koma", first.version - 1
        )
    before = audit_count(clinic)
    fixed = lab.correct_result(
        ANALYST, order.id, ResultInput(value="1.1"), "salah ketik koma", first.version
    )
    assert audit_count(clinic) == before + 1
    assert last_audit(clinic).action == "lab.result_correct"
    assert fixed.status == "corrected" and fixed.result is not None
    assert (fixed.result.value, fixed.result.flag) == ("1.1", "N")
    (previous,) = fixed.corrections
    assert (previous.previous_value, previous.previous_flag, previous.reason) == (
        "11",
        "H",
        "salah ketik koma",
    )
    with clinic.database.transaction() as session:
        amendment = session.scalars(select(Amendment).where(Amendment.record_id == order.id)).one()
        assert amendment.old_value_enc is not None and b"11" not in amendment.old_value_enc[92:]


@pytest.mark.parametrize("actor", [DOCTOR, NURSE, PHARMACIST, ADMIN, REGISTRATION])
def test_only_lab_staff_enter_results(clinic: Clinic, lab: LaboratoryService, actor: Actor) -> None:
    _, consultation_id = new_consultation(clinic)
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="777-3")])
    with pytest.raises(PermissionDenied):
        lab.enter_result(actor, order.id, ResultInput(value="250"))
    with pytest.raises(PermissionDenied):
        lab.worklist(actor)
    assert lab.get_order(ANALYST, order.id).status == "ordered"


def test_pharmacy_and_admin_cannot_read_results(clinic: Clinic, lab: LaboratoryService) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="777-3")])
    before = audit_count(clinic)
    for actor in (PHARMACIST, ADMIN, REGISTRATION):
        with pytest.raises(PermissionDenied):
            lab.get_order(actor, order.id)
        with pytest.raises(PermissionDenied):
            lab.trend(actor, patient_id, "777-3")
    assert audit_count(clinic) == before


# Trend -------------------------------------------------------------------------------------------


def test_trend_is_ordered_in_time_with_flags(clinic: Clinic) -> None:
    times = iter(
        [
            datetime(2026, 1, 5, 8, tzinfo=UTC),  # order 1
            datetime(2026, 1, 5, 9, tzinfo=UTC),  # its result
            datetime(2026, 3, 5, 8, tzinfo=UTC),
            datetime(2026, 3, 5, 9, tzinfo=UTC),
            datetime(2026, 2, 5, 8, tzinfo=UTC),
            datetime(2026, 2, 5, 9, tzinfo=UTC),
            datetime(2026, 4, 1, 8, tzinfo=UTC),  # a different test
            datetime(2026, 4, 1, 9, tzinfo=UTC),
        ]
    )
    timed = LaboratoryService(clinic.database, clinic.fields, clock=lambda: next(times))
    patient_id, consultation_id = new_consultation(clinic, sex="F")
    for value, code in (("180", "1558-6"), ("95", "1558-6"), ("130", "1558-6"), ("6.1", "4548-4")):
        (order,) = timed.order_tests(DOCTOR, consultation_id, [RequestedTest(code=code)])
        timed.enter_result(ANALYST, order.id, ResultInput(value=value))
    before = audit_count(clinic)
    trend = timed.trend(NURSE, patient_id, "1558-6")
    assert audit_count(clinic) == before + 1
    entry = last_audit(clinic)
    assert (entry.action, entry.patient_id) == ("lab.read", patient_id)
    assert [(p.at.month, p.value, p.flag) for p in trend.points] == [
        (1, "180", "H"),
        (2, "130", "H"),
        (3, "95", "N"),
    ]
    assert trend.unit == "mg/dL" and trend.reference is not None and trend.reference.high == 99
    assert timed.trend(NURSE, patient_id, "718-7").points == ()
    with pytest.raises(NotFound):
        timed.trend(NURSE, "no-such-patient", "718-7")


def test_free_text_tests_trend_by_name(clinic: Clinic, lab: LaboratoryService) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(name="Widal O")])
    lab.enter_result(ANALYST, order.id, ResultInput(value="1/320"))
    trend = lab.trend(DOCTOR, patient_id, "widal  o")
    assert [p.value for p in trend.points] == ["1/320"]


def test_recent_results_for_the_ordering_doctor(clinic: Clinic, lab: LaboratoryService) -> None:
    other = Actor(user_id=None, username="dr.other", role=Role.DOCTOR)
    _, consultation_id = new_consultation(clinic)
    (order,) = lab.order_tests(other, consultation_id, [RequestedTest(code="3084-1")])
    lab.enter_result(ANALYST, order.id, ResultInput(value="9.0"))
    assert order.id in [o.id for o in lab.recent_results(other)]
    assert order.id not in [o.id for o in lab.recent_results(DOCTOR)]
    assert order.id in [o.id for o in lab.recent_results(NURSE)]


def test_audit_chain_still_verifies(clinic: Clinic) -> None:
    with clinic.database.transaction() as session:
        assert verify_audit_chain(session).intact


def test_listings_leave_out_patients_outside_the_care_relationship(
    clinic: Clinic, lab: LaboratoryService
) -> None:
    patient_id, consultation_id = new_consultation(clinic)
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="2093-3")])
    lab.enter_result(ANALYST, order.id, ResultInput(value="250"))
    assert order.id in [o.id for o in lab.recent_results(NURSE)]
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    with clinic.database.transaction(write=True) as session:
        patient = session.get(Patient, patient_id)
        consultation = session.get(Consultation, consultation_id)
        assert patient is not None and consultation is not None
        patient.created_at = long_ago
        consultation.started_at, consultation.status = long_ago, "signed"
    assert order.id not in [o.id for o in lab.recent_results(NURSE)]
    with pytest.raises(PermissionDenied):
        lab.get_order(NURSE, order.id)


def test_text_that_cannot_be_stored_is_refused(clinic: Clinic, lab: LaboratoryService) -> None:
    _, consultation_id = new_consultation(clinic)
    (order,) = lab.order_tests(DOCTOR, consultation_id, [RequestedTest(code="718-7")])
    before = (order_count(clinic), audit_count(clinic))
    with pytest.raises(ValidationFailed):
        lab.order_tests(DOCTOR, consultation_id, [RequestedTest(name="Widal\x00")])
    with pytest.raises(ValidationFailed):
        lab.enter_result(ANALYST, order.id, ResultInput(value="12\ud800"))
    for odd_id in ("x\x00y", "a" * 37):
        with pytest.raises(NotFound):
            lab.get_order(DOCTOR, odd_id)
        with pytest.raises(NotFound):
            lab.trend(DOCTOR, odd_id, "718-7")
    assert (order_count(clinic), audit_count(clinic)) == before


def test_overview_is_one_call_and_one_audit_entry(clinic: Clinic, lab: LaboratoryService) -> None:
    _, consultation_id = new_consultation(clinic)
    pending_order, done_order = lab.order_tests(
        DOCTOR, consultation_id, [RequestedTest(code="1920-8"), RequestedTest(code="1742-6")]
    )
    lab.enter_result(ANALYST, done_order.id, ResultInput(value="80"))
    before = audit_count(clinic)
    pending, recent = lab.overview(ANALYST)
    assert audit_count(clinic) == before + 1 and last_audit(clinic).action == "lab.read"
    assert pending_order.id in [o.id for o in pending]
    assert done_order.id in [o.id for o in recent]
    assert done_order.id not in [o.id for o in pending]
    nurse_pending, nurse_recent = lab.overview(NURSE)
    assert nurse_pending == [] and done_order.id in [o.id for o in nurse_recent]
    with pytest.raises(ValidationFailed):
        lab.worklist(ANALYST, status="cancelled")
