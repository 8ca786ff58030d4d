"""Files through the API: encrypted before they reach the filesystem store or S3 (SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
import uuid

import httpx
import pytest

from rekam.his.rbac import Role
from support.people import patient_json
from support.seaweedfs import SeaweedS3, find_on_disk, shared_seaweedfs
from support.servers import Installation, RunningServer, login, make_installation, running_server

CANARY = f"FILECANARY{uuid.uuid4().hex[:10].upper()}".encode()


def ecg_like_file(megabytes: int) -> bytes:
    body = os.urandom(megabytes * 1024 * 1024 - 2 * len(CANARY) - 40)
    return b"ECG export\n" + CANARY + body + CANARY + b"\nend of recording\n" + b"." * 11


def _register(client: httpx.Client, csrf: str) -> str:
    created = client.post(
        "/api/v1/patients", json=patient_json("f", "Pasien Berkas"), headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _upload(
    client: httpx.Client, csrf: str, patient: str, data: bytes, name: str
) -> httpx.Response:
    return client.put(
        f"/api/v1/patients/{patient}/files",
        params={"filename": name},
        content=data,
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"},
    )


def _round_trip(server: RunningServer) -> tuple[bytes, dict[str, object]]:
    data = ecg_like_file(3)
    with server.client(timeout=60) as client:
        csrf = login(client, "reg1")
        patient = _register(client, csrf)
        uploaded = _upload(client, csrf, patient, data, "ekg-12-sadapan.dat")
        assert uploaded.status_code == 201, uploaded.text
        info = uploaded.json()
        assert info["size"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest()
        listed = client.get(f"/api/v1/patients/{patient}/files").json()
        assert [f["id"] for f in listed] == [info["id"]]
        download = client.get(f"/api/v1/patients/{patient}/files/{info['id']}")
        assert download.status_code == 200 and download.content == data
        assert "ekg-12-sadapan.dat" in download.headers["content-disposition"]
    return data, {**info, "patient": patient}


@pytest.fixture(scope="module")
def fs_clinic(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    inst = make_installation(tmp_path_factory.mktemp("files"))
    inst.add_user("reg1", Role.REGISTRATION)
    return inst


def test_filesystem_store_holds_only_ciphertext(fs_clinic: Installation) -> None:
    with running_server(fs_clinic, {"REKAM_KEY_CACHE_SECONDS": "0"}) as server:
        data, info = _round_trip(server)
        blobs = fs_clinic.data_dir / "blobs"
        stored = [p for p in blobs.rglob("*") if p.is_file()]
        assert stored, "no object written"
        assert find_on_disk(blobs, CANARY) == []
        assert find_on_disk(fs_clinic.data_dir, CANARY) == []  # nor the database, nor a spool
        assert max(p.stat().st_size for p in stored) > len(data)

        # tampering with the stored object: the download stops short and says nothing is whole
        biggest = max(stored, key=lambda p: p.stat().st_size)
        damaged = bytearray(biggest.read_bytes())
        damaged[len(damaged) // 2] ^= 0x01
        biggest.write_bytes(bytes(damaged))
        with server.client(timeout=60) as client:
            login(client, "reg1")
            url = f"/api/v1/patients/{info['patient']}/files/{info['id']}"
            with pytest.raises(httpx.HTTPError):
                response = client.get(url)
                assert len(response.content) == len(data)  # never reached with a short body


def test_upload_limits_and_roles(fs_clinic: Installation) -> None:
    fs_clinic.add_user(f"lab{uuid.uuid4().hex[:4]}", Role.LAB)
    lab = next(u for u, r in fs_clinic.users.items() if r is Role.LAB)
    with running_server(fs_clinic, {"REKAM_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024)}) as server:
        with server.client(timeout=60) as client:
            csrf = login(client, "reg1")
            patient = _register(client, csrf)
            too_big = _upload(client, csrf, patient, b"x" * (3 * 1024 * 1024), "big.bin")
            assert too_big.status_code == 413
            assert client.get(f"/api/v1/patients/{patient}/files").json() == []
            no_csrf = client.put(
                f"/api/v1/patients/{patient}/files", params={"filename": "a"}, content=b"abc"
            )
            assert no_csrf.status_code == 403
            # a small JSON body elsewhere is still limited by the ordinary 1 MiB limit
            huge_json = client.post(
                "/api/v1/patients",
                content=b"{" + b" " * (2 * 1024 * 1024),
                headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
            )
            assert huge_json.status_code == 413
        with server.client(timeout=60) as client:
            csrf = login(client, lab)
            refused = _upload(client, csrf, patient, b"abc", "a.txt")
            assert refused.status_code == 403
        files = [p for p in (fs_clinic.data_dir / "blobs").rglob("*") if p.is_file()]
        assert all(not p.name.startswith(".") for p in files)  # no half-written temp objects


@pytest.mark.interop
def test_s3_store_holds_only_ciphertext(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    seaweed: SeaweedS3 = shared_seaweedfs(request)
    bucket = seaweed.create_bucket()
    inst = make_installation(
        tmp_path_factory.mktemp("s3clinic"),
        blob_store="s3",
        s3_endpoint=seaweed.endpoint_url,
        s3_bucket=bucket,
        s3_access_key=seaweed.access_key,
        s3_secret_key=seaweed.secret_key,
    )
    inst.add_user("reg1", Role.REGISTRATION)
    with running_server(inst) as server:
        _round_trip(server)
    client = seaweed.client()
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert objects, "nothing was stored in S3"
    for item in objects:
        raw = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        assert CANARY not in raw
    assert find_on_disk(seaweed.data_dir, CANARY) == []
    assert not (inst.data_dir / "blobs").exists() or find_on_disk(inst.data_dir, CANARY) == []
