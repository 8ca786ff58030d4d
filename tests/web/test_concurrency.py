"""Many clients at once on the embedded SQLite database: logins, reads (each one audited, so
each one writes) and registrations side by side never fail with a locked database, and more
clients than the connection pool's default size cannot starve the one holding the lock."""

from __future__ import annotations

import random
import threading

import pytest

from rekam.his.demo import demo_patient
from rekam.his.installation import open_clinic
from rekam.his.rbac import Actor, Role
from support.people import patient_json
from support.servers import login, make_installation, running_server

CLIENTS = 16


@pytest.mark.slow
def test_concurrent_clients_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> None:
    inst = make_installation(
        tmp_path_factory.mktemp("concurrency"),
        "ecdsa-p256",
        unauthenticated_rate_per_second="100000",
        unauthenticated_burst="100000",
    )
    for n in range(CLIENTS):
        inst.add_user(f"reg{n}", Role.REGISTRATION)
    clinic = open_clinic(inst.settings)
    rng = random.Random(5)
    desk = Actor(user_id=None, username="seed", role=Role.REGISTRATION)
    ids = [clinic.patients.register(desk, demo_patient(rng)).id for _ in range(30)]
    clinic.close()
    failures: list[str] = []

    with running_server(inst) as server:

        def client(n: int) -> None:
            try:
                with server.client(timeout=30) as http:
                    csrf = login(http, f"reg{n}")
                    for i in range(15):
                        if i % 5 == 0:
                            made = http.post(
                                "/api/v1/patients",
                                headers={"X-CSRF-Token": csrf},
                                json=patient_json(f"c{n}-{i}", f"Pasien {n} {i}"),
                            )
                            if made.status_code != 201:
                                failures.append(f"register {made.status_code} {made.text[:100]}")
                        read = http.get(f"/api/v1/patients/{rng.choice(ids)}")
                        if read.status_code != 200:
                            failures.append(f"read {read.status_code} {read.text[:100]}")
            except Exception as exc:
                failures.append(f"client {n}: {type(exc).__name__} {exc}")

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = server.log()
    assert not failures, failures[:5]
    assert '"level": "error"' not in log
