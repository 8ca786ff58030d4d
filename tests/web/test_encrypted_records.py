"""Encrypted records end to end: what the API writes, the database holds only as ciphertext."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from rekam.crypto import KeyringUnavailable
from rekam.his.installation import open_clinic
from rekam.his.rbac import Role
from support.people import patient_json
from support.postgres import PostgresServer
from support.servers import REKAM, Installation, login, make_installation, running_server

CANARY = f"KANARI{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture(scope="module")
def clinic_dir(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    inst = make_installation(tmp_path_factory.mktemp("encrypted"))
    inst.add_user("reg1", Role.REGISTRATION)
    inst.add_user("dok1", Role.DOCTOR)
    inst.add_user("adm1", Role.ADMIN)
    return inst


def _all_database_bytes(data_dir: Path) -> bytes:
    """The raw database file and its WAL, plus a full SQL dump made by sqlite3 itself."""
    raw = b"".join(p.read_bytes() for p in data_dir.glob("rekam.db*"))
    with sqlite3.connect(data_dir / "rekam.db") as connection:
        dump = "\n".join(connection.iterdump()).encode()
    return raw + dump


def test_canaries_written_through_the_api_are_only_ciphertext(clinic_dir: Installation) -> None:
    with running_server(clinic_dir) as server, server.client() as client:
        csrf = login(client, "reg1")
        body = patient_json(CANARY)
        created = client.post("/api/v1/patients", json=body, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201, created.text
        patient = created.json()
        read = client.get(f"/api/v1/patients/{patient['id']}")
        assert read.status_code == 200 and read.json()["medical_history"].endswith(CANARY)
        by_nik = client.get("/api/v1/patients", params={"nik": body["nik"]})
        assert [p["id"] for p in by_nik.json()] == [patient["id"]]
    stored = _all_database_bytes(clinic_dir.data_dir)
    assert len(stored) > 10_000
    for secret in (CANARY, body["nik"], body["bpjs"], body["name"], "Kenanga", "penisilin"):
        assert secret.encode() not in stored, f"{secret} found in the database in clear"
        assert secret.encode("utf-16-le") not in stored
    # and the check itself works: the medical record number is stored in clear
    assert patient["medical_record_number"].encode() in stored


def test_without_the_keyring_nothing_opens_and_the_error_says_why(
    clinic_dir: Installation, tmp_path: Path
) -> None:
    keyring = clinic_dir.data_dir / "keyring.json"
    moved = tmp_path / "keyring.json"
    shutil.move(keyring, moved)
    try:
        with pytest.raises(KeyringUnavailable) as missing:
            open_clinic(clinic_dir.settings)
        assert "keyring" in str(missing.value) and "missing" in str(missing.value)
        env = {**os.environ, **clinic_dir.env}
        result = subprocess.run(
            [REKAM, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 1
        assert "keyring" in result.stderr and "missing" in result.stderr
    finally:
        shutil.move(moved, keyring)


def _patient_row(data_dir: Path, patient_id: str) -> dict[str, bytes]:
    with sqlite3.connect(data_dir / "rekam.db") as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM patients WHERE id = ?", (patient_id,)).fetchone()
        return dict(row)


def _update(data_dir: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(data_dir / "rekam.db") as connection:
        connection.execute(sql, params)


def test_tampering_in_the_database_is_reported_not_returned(clinic_dir: Installation) -> None:
    with (
        running_server(clinic_dir, {"REKAM_KEY_CACHE_SECONDS": "0"}) as server,
        server.client() as client,
    ):
        csrf = login(client, "reg1")
        ids = []
        for name in ("Tamper Satu", "Tamper Dua"):
            response = client.post(
                "/api/v1/patients", json=patient_json("x", name), headers={"X-CSRF-Token": csrf}
            )
            ids.append(response.json()["id"])
        first, second = ids
        row = _patient_row(clinic_dir.data_dir, first)

        flipped = bytearray(row["address_enc"])
        flipped[100] ^= 0x01
        _update(
            clinic_dir.data_dir,
            "UPDATE patients SET address_enc = ? WHERE id = ?",
            bytes(flipped),
            first,
        )
        response = client.get(f"/api/v1/patients/{first}")
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["code"] == "data_unreadable" and "altered" in error["message"]
        assert "Kenanga" not in response.text

        # a ciphertext moved to another column of the same row
        _update(
            clinic_dir.data_dir,
            "UPDATE patients SET address_enc = ? WHERE id = ?",
            row["phone_enc"],
            first,
        )
        moved = client.get(f"/api/v1/patients/{first}").json()["error"]
        assert "another record, column or patient" in moved["message"]

        # a ciphertext copied to another patient's row
        _update(
            clinic_dir.data_dir,
            "UPDATE patients SET address_enc = ? WHERE id = ?",
            row["address_enc"],
            second,
        )
        copied = client.get(f"/api/v1/patients/{second}").json()["error"]
        assert "another record, column or patient" in copied["message"]

        # wrapped data keys swapped between the two patients
        _update(
            clinic_dir.data_dir,
            "UPDATE patients SET address_enc = ? WHERE id = ?",
            row["address_enc"],
            first,
        )
        with sqlite3.connect(clinic_dir.data_dir / "rekam.db") as connection:
            wrapped = dict(
                connection.execute(
                    "SELECT owner, wrapped FROM data_keys WHERE owner IN (?, ?)",
                    (f"patient:{first}", f"patient:{second}"),
                ).fetchall()
            )
            connection.execute(
                "UPDATE data_keys SET wrapped = ? WHERE owner = ?",
                (wrapped[f"patient:{second}"], f"patient:{first}"),
            )
        swapped = client.get(f"/api/v1/patients/{first}").json()["error"]
        assert "does not open for its owner" in swapped["message"]


def test_crypto_erasure_through_the_cli(clinic_dir: Installation) -> None:
    with (
        running_server(clinic_dir, {"REKAM_KEY_CACHE_SECONDS": "0"}) as server,
        server.client() as client,
    ):
        csrf = login(client, "reg1")
        gone = client.post(
            "/api/v1/patients", json=patient_json("g", "Hapus Saya"), headers={"X-CSRF-Token": csrf}
        ).json()["id"]
        kept = client.post(
            "/api/v1/patients",
            json=patient_json("k", "Simpan Saya"),
            headers={"X-CSRF-Token": csrf},
        ).json()["id"]
        env = {**os.environ, **clinic_dir.env}
        refused = subprocess.run(
            [REKAM, "patient", "erase", gone, "--reason", "x", "--yes"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 1 and "reason" in refused.stderr
        result = subprocess.run(
            [REKAM, "patient", "erase", gone, "--reason", "permintaan pasien (UU PDP)", "--yes"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        erased = client.get(f"/api/v1/patients/{gone}")
        assert erased.status_code == 410
        assert "crypto-erased" in erased.json()["error"]["message"]
        assert client.get(f"/api/v1/patients/{kept}").json()["name"] == "Simpan Saya"
    clinic = open_clinic(clinic_dir.settings)
    try:
        from sqlalchemy import select

        from rekam.store.models import AuditEntry

        with clinic.database.transaction() as session:
            entry = session.scalars(
                select(AuditEntry).where(
                    AuditEntry.patient_id == gone, AuditEntry.action == "patient.erase"
                )
            ).one()
            assert entry.actor.startswith("console:") and "UU PDP" in entry.detail
    finally:
        clinic.close()


@pytest.mark.interop
def test_postgresql_dump_holds_no_canary(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    url = postgres.create_database()
    inst = make_installation(tmp_path_factory.mktemp("pg"), database_url=url)
    inst.add_user("reg1", Role.REGISTRATION)
    canary = f"KANARIPG{uuid.uuid4().hex[:10].upper()}"
    with running_server(inst) as server, server.client() as client:
        csrf = login(client, "reg1")
        body = patient_json(canary, "Bambang Pamungkas")
        created = client.post("/api/v1/patients", json=body, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201, created.text
        mrn = created.json()["medical_record_number"]
        assert client.get(f"/api/v1/patients/{created.json()['id']}").json()["name"] == body["name"]
    dump = postgres.dump(url.rsplit("/", 1)[1])
    assert b"CREATE TABLE public.patients" in dump and mrn.encode() in dump
    for secret in (canary, body["nik"], body["bpjs"], "Bambang", "Kenanga"):
        assert secret.encode() not in dump, f"{secret} is in the PostgreSQL dump in clear"
