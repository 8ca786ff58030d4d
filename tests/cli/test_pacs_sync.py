"""``rekam pacs sync``: objects a modality sent straight to a real Orthanc (not through Rekam)
are found (C-FIND or QIDO-RS), verified and indexed, once; the worklist then shows them with
their signature status, and their bytes stay in Orthanc."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from rekam.cli.main import app
from rekam.dicom.pacs.orthanc_dicomweb import OrthancDicomWeb
from rekam.his.ecg_studies import EcgStudyService
from rekam.his.installation import Clinic
from rekam.his.pacs_archive import EXTERNAL_OBJECT
from rekam.his.rbac import Actor, Role
from rekam.pki import Identity, KeyAlgorithm
from rekam.store.models import PacsInstance
from support.orthanc import OrthancServer
from support.pacs_objects import PATIENT_NAME, ecg_object
from support.servers import Installation

from .test_pacs_cmd import _env

runner = CliRunner()
READER = Actor(user_id=None, username="sync.reader", role=Role.DOCTOR, source_address="test")


@pytest.fixture(scope="module")
def doctor(clinic: Clinic) -> Identity:
    return clinic.pki.issue_doctor("Dr Sync Cardio", "LIC-7301", None, KeyAlgorithm.RSA3072)


def _row(clinic: Clinic, sop: str) -> PacsInstance | None:
    with clinic.database.transaction() as session:
        return session.scalar(select(PacsInstance).where(PacsInstance.sop_instance_uid == sop))


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_sync_indexes_objects_sent_straight_to_orthanc_once(
    installation: Installation,
    clinic: Clinic,
    orthanc: OrthancServer,
    doctor: Identity,
    protocol: str,
) -> None:
    tag = f"SYNC-{protocol}"
    modality = OrthancDicomWeb(orthanc.dicomweb_url, auth=orthanc.auth)  # not through Rekam
    good = modality.store(ecg_object(700 + 2 * (protocol == "dicomweb"), doctor, patient_id=tag))
    signed = ecg_object(701 + 2 * (protocol == "dicomweb"), doctor, patient_id=tag)
    name = PATIENT_NAME.encode()
    bad = modality.store(signed.replace(name, name[:-1] + b"o"))
    assert _row(clinic, good.sop_instance_uid) is None
    env = _env(installation, protocol, orthanc)
    first = runner.invoke(app, ["pacs", "sync", "--patient-id", tag, "--json"], env=env)
    assert first.exit_code == 0, first.output
    results = {r["sop_instance_uid"]: r for r in json.loads(first.stdout)}
    assert results[good.sop_instance_uid]["signature"] == "valid"
    assert results[bad.sop_instance_uid]["signature"] == "invalid"
    row = _row(clinic, good.sop_instance_uid)
    assert row is not None and row.object_name == EXTERNAL_OBJECT
    # the worklist and the study page see it; its signature verified on the bytes from Orthanc
    entries = EcgStudyService.for_clinic(clinic).worklist(READER, limit=500)
    assert good.study_instance_uid in {e.study.study_instance_uid for e in entries}
    second = runner.invoke(app, ["pacs", "sync", "--patient-id", tag, "--json"], env=env)
    assert second.exit_code == 0 and json.loads(second.stdout) == []  # nothing twice
    got = runner.invoke(
        app, ["pacs", "find", "--patient-id", tag, "--instances", "--json"], env=env
    )
    assert got.exit_code == 0, got.output
    found = {uid for study in json.loads(got.stdout) for uid in study["sop_instance_uids"]}
    assert found == {good.sop_instance_uid, bad.sop_instance_uid}  # from Rekam's index


def test_sync_usage_errors(installation: Installation, orthanc: OrthancServer) -> None:
    embedded = runner.invoke(app, ["pacs", "sync"], env=_env(installation, "embedded", None))
    assert embedded.exit_code == 2 and "REKAM_PACS=orthanc" in embedded.output
    env = _env(installation, "dicomweb", orthanc)
    bad_date = runner.invoke(app, ["pacs", "sync", "--study-date", "2024-13-01"], env=env)
    assert bad_date.exit_code == 2


def test_sync_with_orthanc_down_says_so(installation: Installation, orthanc: OrthancServer) -> None:
    env = _env(installation, "dicomweb", orthanc)
    env["REKAM_ORTHANC_DICOMWEB_URL"] = "http://127.0.0.1:9/dicom-web"
    env["REKAM_PACS_TIMEOUT_SECONDS"] = "5"
    down = runner.invoke(app, ["pacs", "sync"], env=env)
    assert down.exit_code == 1
    assert "error:" in down.output
