"""Patients through the service: validation, blind-index search, erasure, audit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from rekam.his.audit import verify_audit_chain
from rekam.his.errors import Conflict, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import PatientErased
from rekam.his.identifiers import validate_nik
from rekam.his.installation import Clinic, open_clinic
from rekam.his.rbac import Actor, Role
from rekam.store.models import AuditEntry, Patient
from support.people import make_nik, make_patient
from support.servers import make_installation


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    """A clinic on each database engine (the PostgreSQL one on a real server)."""
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("patients"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


NURSE = Actor(user_id=None, username="ns.test", role=Role.NURSE, source_address="10.0.0.9")
LAB = Actor(user_id=None, username="lab.test", role=Role.LAB, source_address="10.0.0.9")
DESK = Actor(user_id=None, username="desk.test", role=Role.REGISTRATION, source_address="10.0.0.9")
ADMIN = Actor(user_id=None, username="admin.test", role=Role.ADMIN, source_address="10.0.0.9")


@pytest.mark.parametrize(
    ("nik", "key"),
    [
        ("123", "nik.length"),
        ("3171abcd01019990", "nik.length"),
        ("9971010101990001", "nik.province"),
        ("3171013201990001", "nik.date"),
        ("3171010113990001", "nik.date"),
        ("3171010101990000", "nik.serial"),
    ],
)
def test_nik_validation(nik: str, key: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_nik(nik)
    assert refused.value.key == key


def test_nik_must_match_birth_date_and_sex() -> None:
    born = date(1987, 8, 17)
    assert validate_nik(make_nik(born, "F"), born, "F")
    with pytest.raises(ValidationFailed):
        validate_nik(make_nik(born, "M"), born, "F")
    with pytest.raises(ValidationFailed):
        validate_nik(make_nik(born, "F"), date(1987, 8, 18), "F")


def test_register_read_and_search(clinic: Clinic) -> None:
    data = make_patient("Rahmat Hidayat Nasution", "M")
    created = clinic.patients.register(NURSE, data)
    assert created.medical_record_number.startswith("RM-")
    again = clinic.patients.get(DESK, created.id)
    assert (again.nik, again.bpjs, again.address) == (data.nik, data.bpjs, data.address)
    spaced = " ".join(data.nik[i : i + 4] for i in range(0, 16, 4))
    assert [p.id for p in clinic.patients.find(DESK, nik=spaced)] == [created.id]
    assert [p.id for p in clinic.patients.find(DESK, bpjs=data.bpjs)] == [created.id]
    assert created.id in [p.id for p in clinic.patients.find(DESK, name="hidayat NASUTION")]
    assert created.id not in [p.id for p in clinic.patients.find(DESK, name="hidayat budi")]
    found = clinic.patients.find(DESK, medical_record_number=created.medical_record_number.lower())
    assert [p.id for p in found] == [created.id]


def test_duplicate_nik_refused_and_nothing_written(clinic: Clinic) -> None:
    data = make_patient("Dewi Sartika")
    clinic.patients.register(NURSE, data)
    before = clinic.patients.count()
    with pytest.raises(Conflict):
        clinic.patients.register(NURSE, replace(data, name="Another Name"))
    assert clinic.patients.count() == before


def test_invalid_input_writes_nothing(clinic: Clinic) -> None:
    before = clinic.patients.count()
    for bad in (
        replace(make_patient(), name="x"),
        replace(make_patient(), bpjs="12"),
        replace(make_patient(), birth_date=date(2999, 1, 1)),
        replace(make_patient(), address="a" * 501),
    ):
        with pytest.raises(ValidationFailed):
            clinic.patients.register(NURSE, bad)
    assert clinic.patients.count() == before


def test_roles(clinic: Clinic) -> None:
    with pytest.raises(PermissionDenied):
        clinic.patients.register(LAB, make_patient())
    created = clinic.patients.register(NURSE, make_patient())
    with pytest.raises(PermissionDenied):
        clinic.patients.get(ADMIN, created.id)
    with pytest.raises(PermissionDenied):
        clinic.patients.erase(NURSE, created.id, "not allowed to erase")


def test_erasure_makes_one_patient_unreadable(clinic: Clinic) -> None:
    gone = clinic.patients.register(NURSE, make_patient("Yohana Wenda"))
    kept = clinic.patients.register(NURSE, make_patient("Made Wirawan", "M"))
    with pytest.raises(ValidationFailed):
        clinic.patients.erase(ADMIN, gone.id, "")
    clinic.patients.erase(ADMIN, gone.id, "request of the patient (UU PDP art. 8)")
    with pytest.raises(PatientErased) as erased:
        clinic.patients.get(DESK, gone.id)
    assert "crypto-erased" in str(erased.value)
    assert clinic.patients.get(DESK, kept.id).name == "Made Wirawan"
    assert clinic.patients.find(DESK, nik=gone.nik) == []
    # the ciphertexts are still there, and their key is gone: even with the row in hand,
    # decryption fails with the erasure reason
    with clinic.database.transaction() as session:
        row = session.get(Patient, gone.id)
        assert row is not None and row.address_enc is not None
    clinic.keys.forget()
    from rekam.crypto import FieldContext, KeyErased

    with pytest.raises(KeyErased):
        clinic.fields.decrypt_field(
            row.address_enc, FieldContext("patients", "address", gone.id, gone.id)
        )


def test_every_access_is_audited_and_the_chain_verifies(clinic: Clinic) -> None:
    created = clinic.patients.register(NURSE, make_patient())
    clinic.patients.get(DESK, created.id)
    with clinic.database.transaction() as session:
        actions = [
            (e.actor, e.action)
            for e in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.patient_id == created.id)
                .order_by(AuditEntry.seq)
            )
        ]
        assert actions == [("ns.test", "patient.create"), ("desk.test", "patient.read")]
        assert verify_audit_chain(session).intact
