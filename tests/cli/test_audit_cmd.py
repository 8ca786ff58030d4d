"""``rekam audit verify`` and ``rekam audit export`` on a real installation: a clean chain
verifies on SQLite and PostgreSQL; an edited, deleted or reordered entry is found and named."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from rekam.cli.audit_cmd import app
from rekam.his.installation import Clinic, open_clinic
from rekam.his.rbac import Actor, Role
from support.people import make_patient
from support.servers import Installation, make_installation

REGISTRAR = Actor(
    user_id=None, username="reg.test", role=Role.REGISTRATION, source_address="10.1.2.3"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def installation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Installation, Clinic, list[str]]]:
    """A fresh installation whose audit trail has a few entries; yields the patient ids too."""
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("audit"), "ecdsa-p256", **overrides)
    clinic = open_clinic(inst.settings)
    ids = [clinic.patients.register(REGISTRAR, make_patient()).id for _ in range(3)]
    for patient_id in ids:
        clinic.patients.get(REGISTRAR, patient_id)
    yield inst, clinic, ids
    clinic.close()


def run(inst: Installation, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={**inst.env, "COLUMNS": "200"})
    return result.exit_code, result.output


def entry_count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


def sql(clinic: Clinic, statement: str, **values: object) -> None:
    with clinic.database.transaction(write=True) as session:
        session.execute(text(statement), values)


def test_clean_chain_verifies(installation: tuple[Installation, Clinic, list[str]]) -> None:
    inst, clinic, _ = installation
    code, output = run(inst, "verify")
    assert code == 0, output
    assert f"{entry_count(clinic)} entries: OK" in output
    code, output = run(inst, "verify", "--json")
    assert code == 0 and json.loads(output)["intact"] is True


def _edit(clinic: Clinic) -> None:
    sql(clinic, "UPDATE audit_log SET actor = :who WHERE seq = :seq", who="mallory", seq=3)


def _edit_time(clinic: Clinic) -> None:
    sql(clinic, "UPDATE audit_log SET detail = :d WHERE seq = :seq", d="nothing here", seq=3)


def _delete(clinic: Clinic) -> None:
    sql(clinic, "DELETE FROM audit_log WHERE seq = :seq", seq=3)


def _swap(clinic: Clinic) -> None:
    sql(clinic, "UPDATE audit_log SET seq = :tmp WHERE seq = :seq", tmp=-1, seq=3)
    sql(clinic, "UPDATE audit_log SET seq = :new WHERE seq = :seq", new=3, seq=4)
    sql(clinic, "UPDATE audit_log SET seq = :new WHERE seq = :tmp", new=4, tmp=-1)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_edit, "entry 3 was altered after it was written"),
        (_edit_time, "entry 3 was altered after it was written"),
        (_delete, "entry 3 is missing"),
        (_swap, "entry 3 does not follow entry 2"),
    ],
    ids=["edit-actor", "edit-detail", "delete", "swap"],
)
def test_tampering_is_found_and_named(
    installation: tuple[Installation, Clinic, list[str]],
    tamper: Callable[[Clinic], None],
    reason: str,
) -> None:
    inst, clinic, _ = installation
    assert entry_count(clinic) >= 6
    tamper(clinic)
    code, output = run(inst, "verify")
    assert code == 1, output
    assert "BROKEN at entry 3" in " ".join(output.split())
    assert reason in " ".join(output.split())
    code, output = run(inst, "verify", "--json")
    report = json.loads(output)
    assert code == 1 and report["intact"] is False and report["first_broken_seq"] == 3


def test_export_json_lines_filtered_by_patient(
    installation: tuple[Installation, Clinic, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    inst, clinic, ids = installation
    out = tmp_path_factory.mktemp("export") / "audit.jsonl"
    code, output = run(inst, "export", "--patient", ids[1], "--out", str(out))
    assert code == 0, output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["action"] for line in lines] == ["patient.create", "patient.read"]
    assert {line["patient_id"] for line in lines} == {ids[1]}
    code, output = run(inst, "export")
    everything = [json.loads(line) for line in output.splitlines()]
    assert [e["seq"] for e in everything] == list(range(1, entry_count(clinic) + 1))
    code, output = run(inst, "export", "--since", "2999-01-01")
    assert code == 0 and output == ""
    code, output = run(inst, "export", "--since", "yesterday")
    assert code == 2


def test_export_fhir_bundle(installation: tuple[Installation, Clinic, list[str]]) -> None:
    inst, _, ids = installation
    code, output = run(inst, "export", "--format", "fhir", "--patient", ids[0])
    assert code == 0, output
    bundle = json.loads(output)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    events = [e["resource"] for e in bundle["entry"]]
    assert [e["action"] for e in events] == ["C", "R"]
    for event, entry in zip(events, bundle["entry"], strict=True):
        assert entry["fullUrl"].startswith("urn:uuid:")
        assert event["resourceType"] == "AuditEvent"
        assert event["type"]["code"] == "110110"
        assert event["outcome"] == "0"
        assert event["recorded"].endswith("Z")
        (agent,) = event["agent"]
        assert agent["requestor"] is True
        assert agent["who"]["identifier"]["value"] == "reg.test"
        assert agent["role"][0]["coding"][0]["code"] == "registration"
        assert agent["network"] == {"address": "10.1.2.3", "type": "2"}
        assert event["source"]["observer"]["display"]
        assert event["entity"][0]["what"] == {"reference": f"Patient/{ids[0]}"}
