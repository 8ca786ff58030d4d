"""``rekam monitor pair|unpair|devices`` on a real installation: the code printed is the one the
device derives, listing and unpairing work, bad input exits 1 with a readable line, a missing
argument exits 2."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from uuid import UUID

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from typer.testing import CliRunner, Result

from rekam.cli.monitor_devices_cmd import app, mount_to_monitor
from rekam.his.installation import open_clinic
from rekam.his.monitoring import MonitoringService
from rekam.his.rbac import Actor, Role
from rekam.monitor.pairing import DevicePairing
from support.people import make_patient
from support.servers import Installation, make_installation

NURSE = Actor(user_id=None, username="ns.setup", role=Role.NURSE)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Installation, str]]:
    inst = make_installation(tmp_path_factory.mktemp("monitor-cli"), "ecdsa-p256")
    inst.add_user("nurse1", Role.NURSE)
    inst.add_user("pharmacist1", Role.PHARMACIST)
    clinic = open_clinic(inst.settings)
    try:
        patient = clinic.patients.register(NURSE, make_patient("Siti Rahma", "F"))
    finally:
        clinic.close()
    yield inst, patient.id


def run(inst: Installation, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**inst.env, "COLUMNS": "200"})


def test_pair_list_and_unpair(installation: tuple[Installation, str]) -> None:
    inst, patient_id = installation
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw().hex()
    paired = run(
        inst, "pair", patient_id, public, "--label", "Sabuk dada", "--as", "nurse1", "--json"
    )
    assert paired.exit_code == 0, paired.output
    answer = json.loads(paired.output)
    device_id = UUID(answer["device_id"])
    on_device = DevicePairing(device_id, private).derive(base64.b64decode(answer["gateway_public"]))
    assert on_device.confirmation_code == answer["confirmation_code"]
    clinic = open_clinic(inst.settings)
    try:
        key = MonitoringService.for_clinic(clinic).key_lookup(device_id)
        assert key is not None and key.same_key_as(on_device)
    finally:
        clinic.close()

    listed = run(inst, "devices", "--as", "nurse1", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["device_id"], r["patient_id"], r["label"]) for r in rows] == [
        (str(device_id), patient_id, "Sabuk dada")
    ]
    table = run(inst, "devices", "--as", "nurse1")
    assert table.exit_code == 0 and str(device_id) in table.output

    gone = run(inst, "unpair", str(device_id), "--as", "nurse1")
    assert gone.exit_code == 0 and "destroyed" in gone.output
    assert json.loads(run(inst, "devices", "--as", "nurse1", "--json").output) == []
    everything = json.loads(run(inst, "devices", "--as", "nurse1", "--all", "--json").output)
    assert everything[0]["unpaired_at"] is not None


def test_bad_input_exits_1_and_usage_errors_exit_2(installation: tuple[Installation, str]) -> None:
    inst, patient_id = installation
    public = X25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    for args in (
        ("pair", patient_id, "zz", "--label", "x", "--as", "nurse1"),
        ("pair", patient_id, "00" * 32, "--label", "x", "--as", "nurse1"),
        ("pair", patient_id, public, "--label", " ", "--as", "nurse1"),
        ("pair", "no-such-patient", public, "--label", "x", "--as", "nurse1"),
        ("pair", patient_id, public, "--label", "x", "--as", "nobody"),
        ("pair", patient_id, public, "--label", "x", "--as", "pharmacist1"),
        ("unpair", "not-a-device", "--as", "nurse1"),
    ):
        result = run(inst, *args)
        assert result.exit_code == 1, (args, result.output)
        assert "error:" in result.output and "Traceback" not in result.output
    assert run(inst, "pair", patient_id, "--as", "nurse1").exit_code == 2
    assert run(inst, "devices").exit_code == 2


def test_the_commands_mount_into_another_group() -> None:
    group = typer.Typer()
    mount_to_monitor(group)
    assert {c.name for c in group.registered_commands} == {"pair", "unpair", "devices"}
