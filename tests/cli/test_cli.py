"""The ``rekam`` command as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

REKAM = str(Path(sys.executable).with_name("rekam"))


def run(
    tmp: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REKAM_")}
    full_env.update({"REKAM_DATA_DIR": str(tmp / "rekam-data"), "COLUMNS": "200"})
    full_env.update(env or {})
    return subprocess.run(
        [REKAM, *args],
        cwd=tmp,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    first = run(tmp, "init", env={"REKAM_KEY_ALGORITHM": "ecdsa-p256"})
    assert first.returncode == 0, first.stderr
    assert re.search(r"one-time password:\s+\S{19}", first.stdout)
    return tmp


def test_init_twice_creates_nothing_new(home: Path) -> None:
    root_before = (home / "rekam-data/pki/root.pem").read_bytes()
    again = run(home, "init")
    assert again.returncode == 0
    assert "already initialised" in again.stdout
    assert "one-time password" not in again.stdout
    assert (home / "rekam-data/pki/root.pem").read_bytes() == root_before


def test_data_directory_is_private_and_keys_encrypted(home: Path) -> None:
    data = home / "rekam-data"
    assert data.stat().st_mode & 0o077 == 0
    for key in (data / "pki").glob("*key*.pem"):
        assert key.stat().st_mode & 0o077 == 0
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert (data / "rekam.db").stat().st_mode & 0o077 == 0


def test_openssl_verifies_the_server_chain(home: Path) -> None:
    pki = home / "rekam-data/pki"
    chain = x509.load_pem_x509_certificates((pki / "server.pem").read_bytes())
    leaf, issuing = chain[0], chain[1]
    (home / "leaf.pem").write_bytes(leaf.public_bytes(encoding=_pem()))
    (home / "issuing.pem").write_bytes(issuing.public_bytes(encoding=_pem()))
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(pki / "root.pem"),
            "-untrusted",
            str(home / "issuing.pem"),
            str(home / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr


def _pem():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def test_user_add_list_reset(home: Path) -> None:
    added = run(home, "user", "add", "dr.budi", "--role", "doctor", "--display-name", "dr. Budi")
    assert added.returncode == 0, added.stderr
    assert "one-time password" in added.stdout
    duplicate = run(home, "user", "add", "dr.budi", "--role", "doctor")
    assert duplicate.returncode == 1 and "taken" in duplicate.stderr
    bad_role = run(home, "user", "add", "x.y", "--role", "surgeon")
    assert bad_role.returncode == 2
    listed = run(home, "user", "list", "--json")
    assert '"username": "dr.budi"' in listed.stdout
    reset = run(home, "user", "reset-password", "dr.budi")
    assert reset.returncode == 0 and "new one-time password" in reset.stdout
    missing = run(home, "user", "reset-password", "nobody")
    assert missing.returncode == 1 and "no user named" in missing.stderr


def test_config_show_hides_the_passphrase(home: Path) -> None:
    secret = "correct-horse-battery-staple-42"
    shown = run(home, "config", "show", "--json", env={"REKAM_PASSPHRASE": secret})
    assert shown.returncode == 0
    assert secret not in shown.stdout and '"passphrase": "********"' in shown.stdout
    bad = run(home, "config", "show", env={"REKAM_PORT": "99999"})
    assert bad.returncode == 2 and "port" in bad.stderr


def test_server_certificate_reissue(home: Path) -> None:
    before = (home / "rekam-data/pki/server.pem").read_bytes()
    result = run(
        home, "ca", "server-cert", "--host", "rekam.puskesmas.example", "--host", "10.20.30.40"
    )
    assert result.returncode == 0, result.stderr
    after = (home / "rekam-data/pki/server.pem").read_bytes()
    assert after != before
    text = subprocess.run(
        [
            "openssl",
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            str(home / "rekam-data/pki/server.pem"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:rekam.puskesmas.example" in text and "IP Address:10.20.30.40" in text
    bad = run(home, "ca", "server-cert", "--host", "bad host!")
    assert bad.returncode == 1


def test_commands_before_init_explain_what_to_do(tmp_path: Path) -> None:
    result = run(tmp_path, "user", "list")
    assert result.returncode == 1
    assert "rekam init" in result.stderr


def test_demo_load_is_idempotent(home: Path) -> None:
    first = run(home, "demo", "load", "--if-empty")
    assert first.returncode == 0 and "dr.bambang" in first.stdout
    assert "registered 40 fictitious patients" in first.stdout
    assert "recorded 15 signed visits" in first.stdout
    from rekam.config import Settings
    from rekam.his.identifiers import validate_nik
    from rekam.his.installation import open_clinic
    from rekam.his.rbac import Actor, Role

    clinic = open_clinic(Settings(data_dir=home / "rekam-data"))
    try:
        assert clinic.patients.count() == 40
        desk = Actor(user_id=None, username="t", role=Role.REGISTRATION)
        some = clinic.patients.find(desk, name="siti") or clinic.patients.find(desk, name="budi")
        record = clinic.patients.get(desk, some[0].id)
        assert validate_nik(record.nik, record.birth_date, record.sex) == record.nik
    finally:
        clinic.close()
    second = run(home, "demo", "load", "--if-empty")
    assert second.returncode == 0 and "already loaded" in second.stdout
