"""A whole installation whose keys live on a PKCS#11 token (SoftHSM2) or in a Vault-compatible
transit engine (OpenBao): ``rekam init`` creates the keys there, the server uses them."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

import pytest

from rekam.his.rbac import Role
from support import openbao, softhsm
from support.people import patient_json
from support.servers import login, make_installation, running_server


def _secret_file(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return path


def _settings(provider: str, directory: Path) -> dict[str, str]:
    if provider == "pkcs11":
        reason = softhsm.missing_reason()
        if reason:
            pytest.skip(reason)
        token = softhsm.shared_softhsm().keyring_token
        return {
            "keyring": "pkcs11",
            "pkcs11_module": token.module_path,
            "pkcs11_token": token.label,
            "pkcs11_pin_file": str(_secret_file(directory, "pin", token.pin)),
            "pkcs11_key_prefix": f"inst-{secrets.token_hex(4)}",
        }
    if openbao.find_bao() is None:
        pytest.skip("the OpenBao binary is missing")
    server = openbao.shared_openbao()
    return {
        "keyring": "vault",
        "vault_url": server.url,
        "vault_token_file": str(_secret_file(directory, "vault-token", server.root_token)),
        "vault_key": f"inst-{secrets.token_hex(4)}",
    }


@pytest.mark.interop
@pytest.mark.parametrize("provider", ["pkcs11", "vault"])
def test_installation_on_an_external_keyring(
    provider: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp(provider)
    inst = make_installation(directory, "ecdsa-p256", **_settings(provider, directory))
    assert not (inst.data_dir / "keyring.json").exists()  # no local key material at all
    inst.add_user("reg1", Role.REGISTRATION)
    canary = f"HSM{secrets.token_hex(6).upper()}"
    with running_server(inst) as server, server.client() as client:
        csrf = login(client, "reg1")
        created = client.post(
            "/api/v1/patients",
            json=patient_json(canary, "Pasien Token"),
            headers={"X-CSRF-Token": csrf},
        )
        assert created.status_code == 201, created.text
        read = client.get(f"/api/v1/patients/{created.json()['id']}").json()
        assert read["address"].endswith(f"{canary} No. 5")
    raw = b"".join(p.read_bytes() for p in inst.data_dir.glob("rekam.db*"))
    assert canary.encode() not in raw
    with sqlite3.connect(inst.data_dir / "rekam.db") as connection:
        kek_ids = {row[0] for row in connection.execute("SELECT kek_id FROM data_keys")}
    assert kek_ids and all(
        k.startswith("pkcs11:" if provider == "pkcs11" else "vault:") for k in kek_ids
    )

    # without the PIN / token the installation does not open, and says why
    secret_file = Path(
        inst.overrides["pkcs11_pin_file" if provider == "pkcs11" else "vault_token_file"]
    )
    secret_file.unlink()
    from rekam.crypto import KeyringUnavailable
    from rekam.his.installation import open_clinic

    with pytest.raises(KeyringUnavailable, match="missing"):
        open_clinic(inst.settings)
