"""The audit service: filters, pagination, permission; the FHIR AuditEvent mapping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rekam.his.audit import AuditEntryView, AuditEvent, AuditFilter, AuditService, append_audit
from rekam.his.audit_export import audit_event_resource, fhir_action, fhir_outcome
from rekam.his.errors import PermissionDenied
from rekam.his.installation import Clinic, open_clinic
from rekam.his.rbac import Actor, Role
from support.servers import make_installation

ADMIN = Actor(user_id=None, username="adm.audit", role=Role.ADMIN, source_address="10.9.9.9")
NURSE = Actor(user_id=None, username="ns.audit", role=Role.NURSE, source_address="10.9.9.8")
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    inst = make_installation(tmp_path_factory.mktemp("audit"), "ecdsa-p256")
    clinic = open_clinic(inst.settings)
    with clinic.database.transaction(write=True) as session:
        for day in range(10):
            for actor, action in ((NURSE, "patient.read"), (ADMIN, "user.create")):
                append_audit(
                    session,
                    actor,
                    AuditEvent(action, patient_id="p-1" if actor is NURSE else None),
                    at=T0 + timedelta(days=day),
                )
    yield clinic
    clinic.close()


def test_browse_filters_and_pages(clinic: Clinic) -> None:
    audit = AuditService.for_clinic(clinic)
    with pytest.raises(PermissionDenied):
        audit.browse(NURSE, AuditFilter())
    reads = audit.browse(ADMIN, AuditFilter(patient_id="p-1"), per_page=4)
    assert (reads.total, reads.pages) == (10, 3)
    assert [e.action for e in reads.entries] == ["patient.read"] * 4
    assert reads.entries[0].seq > reads.entries[-1].seq  # newest first
    last = audit.browse(ADMIN, AuditFilter(patient_id="p-1"), page=3, per_page=4)
    assert len(last.entries) == 2
    window = AuditFilter(
        actor="adm.audit", since=T0 + timedelta(days=2), until=T0 + timedelta(days=5)
    )
    assert audit.browse(ADMIN, window).total == 3
    assert audit.browse(ADMIN, AuditFilter(action="user.")).total == 10
    assert audit.browse(ADMIN, AuditFilter(action="user")).total == 0  # exact unless it ends "."
    assert audit.browse(ADMIN, AuditFilter(action="%")).total == 0
    assert audit.verify(ADMIN).intact
    assert [e.seq for e in audit.entries(ADMIN, AuditFilter())] == list(range(1, 21))


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("patient.create", "C"),
        ("break-glass.open", "C"),
        ("patient.read", "R"),
        ("file.read", "R"),
        ("patient.update", "U"),
        ("consultation.sign", "U"),
        ("patient.erase", "D"),
        ("patient.search", "E"),
        ("session.login", "E"),
    ],
)
def test_fhir_action_codes(action: str, code: str) -> None:
    assert fhir_action(action) == code


def test_fhir_outcome_codes() -> None:
    assert [fhir_outcome(o) for o in ("success", "break-glass", "denied", "boom")] == [
        "0",
        "0",
        "4",
        "8",
    ]


def test_audit_event_resource_shape() -> None:
    entry = AuditEntryView(
        seq=7,
        at=T0,
        actor="dr.x",
        role="doctor",
        action="patient.read",
        patient_id="p-9",
        record="file-1",
        source="10.0.0.1",
        outcome="success",
        detail="break-glass grant=g-1",
        entry_hash="ab" * 32,
    )
    event = audit_event_resource(entry, "Klinik Sehat")
    assert event["resourceType"] == "AuditEvent" and event["id"] == "rekam-audit-7"
    assert event["recorded"] == "2026-03-01T08:00:00.000Z"
    assert event["type"]["code"] == "110110" and event["action"] == "R"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    assert event["source"]["observer"] == {"display": "Klinik Sehat"}
    assert [e["type"]["code"] for e in event["entity"]] == ["1", "2"]
    assert event["entity"][0]["what"] == {"reference": "Patient/p-9"}
    required = {"type", "recorded", "agent", "source"}
    assert required <= set(event)
    assert all("requestor" in agent for agent in event["agent"])
