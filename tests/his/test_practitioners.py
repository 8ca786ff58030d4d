"""Practitioners through the service: licence formats, linked accounts, concurrency, roles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.installation import Clinic, open_clinic
from rekam.his.practitioners import (
    PractitionerInput,
    PractitionerService,
    Profession,
    validate_sip_number,
    validate_str_number,
)
from rekam.his.rbac import Actor, Role
from rekam.store.models import AuditEntry, Practitioner
from support.servers import make_installation

ADMIN = Actor(user_id=None, username="admin.test", role=Role.ADMIN, source_address="10.0.0.9")
DOCTOR = Actor(user_id=None, username="dr.test", role=Role.DOCTOR, source_address="10.0.0.9")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("practitioners"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    yield clinic
    clinic.close()


@pytest.fixture
def service(clinic: Clinic) -> PractitionerService:
    return PractitionerService.for_clinic(clinic)


_numbers = iter(range(1, 1_000_000))


def _user_id(clinic: Clinic, role: Role = Role.DOCTOR) -> str:
    username = f"staff{next(_numbers)}"
    created = clinic.accounts.create_user(
        Actor.system(), username, "Staff", role, "Pagi-Cerah-2026!"
    )
    return created.user.id


def _count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Practitioner)) or 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("3171 1002 2014 5123", "3171100220145123"), ("31.71-100220145123", "3171100220145123")],
)
def test_str_numbers_are_normalised(raw: str, expected: str) -> None:
    assert validate_str_number(raw) == expected


@pytest.mark.parametrize("raw", ["123456", "31711002201451234", "3171A00220145123", ""])
def test_implausible_str_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_str_number(raw)
    assert refused.value.key == "practitioner.str_number"


def test_sip_numbers() -> None:
    assert validate_sip_number(" 503/0123/sip-du/dpmptsp/2024 ") == "503/0123/SIP-DU/DPMPTSP/2024"
    for bad in ("SIP", "ABC/DEF/GHI", "/503/0123/", "503/0123<script>", "5" * 61):
        with pytest.raises(ValidationFailed) as refused:
            validate_sip_number(bad)
        assert refused.value.key == "practitioner.sip_number"


def test_create_list_search_and_link(clinic: Clinic, service: PractitionerService) -> None:
    user_id = _user_id(clinic)
    created = service.create(
        ADMIN,
        PractitionerInput(
            name="  dr.  Rina   Kartika ",
            profession="doctor",
            specialty="Dokter umum",
            str_number="3171 1002 2014 5123",
            sip_number="503/0123/SIP-DU/DPMPTSP/2024",
            user_id=user_id,
        ),
    )
    assert created.name == "dr. Rina Kartika"
    assert created.profession is Profession.DOCTOR
    assert created.version == 1
    assert service.practitioner_for_user(user_id) == created
    assert service.practitioner_for_user(_user_id(clinic)) is None
    assert created.id in [p.id for p in service.list(DOCTOR, search="kartika")]
    assert created.id in [p.id for p in service.list(DOCTOR, search="DPMPTSP")]
    assert created.id not in [p.id for p in service.list(DOCTOR, search="zzz-nobody")]
    assert created.id not in [p.id for p in service.list(DOCTOR, profession="nurse")]
    assert service.get(DOCTOR, created.id) == created


def test_a_user_account_links_to_one_practitioner(
    clinic: Clinic, service: PractitionerService
) -> None:
    user_id = _user_id(clinic)
    service.create(ADMIN, PractitionerInput("Bidan Sari", "midwife", user_id=user_id))
    before = _count(clinic)
    with pytest.raises(Conflict) as refused:
        service.create(ADMIN, PractitionerInput("Bidan Lain", "midwife", user_id=user_id))
    assert refused.value.key == "practitioner.user_taken"
    with pytest.raises(ValidationFailed) as unknown:
        service.create(ADMIN, PractitionerInput("Bidan Lain", "midwife", user_id="no-such-user"))
    assert unknown.value.key == "practitioner.no_such_user"
    assert _count(clinic) == before


def test_validation(service: PractitionerService) -> None:
    for data, key in (
        (PractitionerInput("X", "doctor"), "practitioner.name"),
        (PractitionerInput("Ahmad", "surgeon-general"), "practitioner.profession"),
        (PractitionerInput("Ahmad", "doctor", str_number="12"), "practitioner.str_number"),
        (PractitionerInput("Ahmad", "doctor", sip_number="??"), "practitioner.sip_number"),
        (PractitionerInput("Ahmad", "doctor", specialty="x" * 101), "field.too_long"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            service.create(ADMIN, data)
        assert refused.value.key == key


def test_update_with_optimistic_concurrency(clinic: Clinic, service: PractitionerService) -> None:
    created = service.create(ADMIN, PractitionerInput("Ns. Putri", "nurse"))
    changed = service.update(
        ADMIN, created.id, PractitionerInput("Ns. Putri Ayu", "nurse"), version=created.version
    )
    assert changed.version == created.version + 1 and changed.name == "Ns. Putri Ayu"
    with pytest.raises(Conflict) as stale:
        service.update(
            ADMIN, created.id, PractitionerInput("Ns. Putri A.", "nurse"), version=created.version
        )
    assert stale.value.key == "encounters.stale"
    assert service.get(ADMIN, created.id).name == "Ns. Putri Ayu"
    with pytest.raises(NotFound):
        service.update(ADMIN, "missing", PractitionerInput("Ns. X", "nurse"), version=1)
    off = service.update(
        ADMIN, created.id, PractitionerInput("Ns. Putri Ayu", "nurse", active=False), 2
    )
    assert not off.active
    assert created.id not in [p.id for p in service.list(ADMIN, active_only=True)]


def test_roles(clinic: Clinic, service: PractitionerService) -> None:
    with pytest.raises(PermissionDenied):
        service.create(DOCTOR, PractitionerInput("dr. Self", "doctor"))
    patient = Actor(user_id=None, username="p", role=Role.PATIENT)
    with pytest.raises(PermissionDenied):
        service.list(patient)
    created = service.create(ADMIN, PractitionerInput("Apt. Hana", "pharmacist"))
    with pytest.raises(PermissionDenied):
        service.update(DOCTOR, created.id, PractitionerInput("Apt. Hana", "pharmacist"), 1)


def test_writes_are_audited_once(clinic: Clinic, service: PractitionerService) -> None:
    def audit_count() -> int:
        with clinic.database.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)

    before = audit_count()
    created = service.create(ADMIN, PractitionerInput("Analis Joko", "lab_analyst"))
    assert audit_count() == before + 1
    service.update(ADMIN, created.id, PractitionerInput("Analis Joko W.", "lab_analyst"), 1)
    assert audit_count() == before + 2
