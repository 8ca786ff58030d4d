"""Key rotation on a live installation: the server keeps reading and writing while
``rekam keys rewrap`` runs; an interrupted rewrap resumes; old versions retire."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from rekam.crypto import patient_owner
from rekam.his.installation import open_clinic
from rekam.his.rbac import Role
from support.people import patient_json
from support.servers import REKAM, Installation, login, make_installation, running_server

EXTRA_KEYS = 3000


def rekam(inst: Installation, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **inst.env, "COLUMNS": "120"}
    return subprocess.run(
        [REKAM, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def status(inst: Installation) -> dict[str, object]:
    result = rekam(inst, "keys", "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_rotation_rewrap_under_load_and_resume(tmp_path_factory: pytest.TempPathFactory) -> None:
    inst = make_installation(tmp_path_factory.mktemp("rotation"))
    inst.add_user("reg1", Role.REGISTRATION)
    clinic = open_clinic(inst.settings)
    try:  # many data keys, so a rewrap takes long enough to interrupt
        for _ in range(EXTRA_KEYS):
            clinic.keys.key_for_owner(patient_owner(str(uuid.uuid4())))
    finally:
        clinic.close()

    with running_server(inst, {"REKAM_KEY_CACHE_SECONDS": "0"}) as server:
        seeded: dict[str, str] = {}
        with server.client() as client:
            csrf = login(client, "reg1")
            for i in range(10):
                body = patient_json(f"seed{i}", f"Pasien Rotasi {i}")
                made = client.post("/api/v1/patients", json=body, headers={"X-CSRF-Token": csrf})
                seeded[made.json()["id"]] = body["address"]

        rotated = rekam(inst, "keys", "rotate")
        assert rotated.returncode == 0 and "version 2 is now active" in rotated.stdout
        before = status(inst)
        assert before["active_version"] == 2
        assert before["data_keys_on_old_versions"] == EXTRA_KEYS + 10

        failures: list[str] = []
        written: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            with server.client() as client:
                csrf = login(client, "reg1")
                n = 0
                while not stop.is_set():
                    for patient_id, address in seeded.items():
                        got = client.get(f"/api/v1/patients/{patient_id}")
                        if got.status_code != 200 or got.json()["address"] != address:
                            failures.append(f"read {got.status_code}")
                    made = client.post(
                        "/api/v1/patients",
                        json=patient_json(f"w{n}", f"Pasien Baru {n}"),
                        headers={"X-CSRF-Token": csrf},
                    )
                    if made.status_code != 201:
                        failures.append(f"write {made.status_code} {made.text[:200]}")
                    else:
                        written.append(made.json()["id"])
                    n += 1

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            # start a slow rewrap and interrupt it part-way, as a power cut would
            env = {**os.environ, **inst.env}
            process = subprocess.Popen(
                [REKAM, "keys", "rewrap", "--batch", "100", "--pause", "0.3"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                remaining = status(inst)["data_keys_on_old_versions"]
                if isinstance(remaining, int) and remaining <= EXTRA_KEYS - 300:
                    break
                time.sleep(0.2)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            interrupted = status(inst)["data_keys_on_old_versions"]
            assert isinstance(interrupted, int) and 0 < interrupted < EXTRA_KEYS + 10

            resumed = rekam(inst, "keys", "rewrap", "--batch", "500")
            assert resumed.returncode == 0, resumed.stderr
            assert "every data key is on KEK version 2" in resumed.stdout
        finally:
            stop.set()
            worker.join(timeout=60)

        assert not failures, failures[:5]
        assert written, "the writer made no progress during the rewrap"
        after = status(inst)
        assert after["data_keys_on_old_versions"] == 0

        retired = rekam(inst, "keys", "retire", "1")
        assert retired.returncode == 0, retired.stderr
        assert rekam(inst, "keys", "retire", "2").returncode == 1  # the only usable version

        with server.client() as client:
            login(client, "reg1")
            for patient_id, address in seeded.items():
                assert client.get(f"/api/v1/patients/{patient_id}").json()["address"] == address
            for patient_id in written:
                assert client.get(f"/api/v1/patients/{patient_id}").status_code == 200
