"""The embedded PACS archive on a real installation: encrypted files, index, signature status,
crypto-erasure, bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select

from rekam.dicom import verify_dataset
from rekam.dicom.pacs import StudyQuery
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import PatientErased
from rekam.his.installation import Clinic
from rekam.his.pacs_archive import PacsArchiveService, SignatureCheck
from rekam.his.patients import PatientInput
from rekam.his.rbac import Actor, Role
from rekam.pki import Identity, KeyAlgorithm
from rekam.store.models import AuditEntry, PacsInstance
from support.pacs_objects import PATIENT_NAME, ecg_object

NURSE = Actor(user_id=None, username="nurse-pacs", role=Role.NURSE, source_address="test")
PHARMACIST = Actor(user_id=None, username="pharm-pacs", role=Role.PHARMACIST)
ADMIN = Actor.system()


@pytest.fixture(scope="module")
def doctor(clinic: Clinic) -> Identity:
    """A doctor certified by the clinic's own CA (RSA, as dcmsign verifies it)."""
    return clinic.pki.issue_doctor("Dr Ana Cardio", "LIC-7001", None, KeyAlgorithm.RSA3072)


@pytest.fixture
def archive(clinic: Clinic) -> PacsArchiveService:
    return PacsArchiveService.for_clinic(clinic)


def _count(clinic: Clinic) -> int:
    with clinic.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(PacsInstance)) or 0)


def _blob_files(clinic: Clinic) -> list[Path]:
    return [p for p in clinic.settings.effective_blob_dir.rglob("*") if p.is_file()]


def test_signed_object_round_trip_is_byte_identical_and_still_verifies(
    clinic: Clinic, archive: PacsArchiveService, doctor: Identity
) -> None:
    data = ecg_object(1, doctor, patient_id="RT-1")
    stored = archive.store(NURSE, data)
    assert stored.signature_status is SignatureCheck.VALID
    assert stored.signer == "Dr Ana Cardio (licence LIC-7001)"
    assert stored.dicom_patient_name == PATIENT_NAME
    assert stored.dicom_patient_id == "RT-1"
    back = archive.open(NURSE, stored.sop_instance_uid)
    assert back == data
    verdicts = verify_dataset(back, [clinic.pki.load_root_certificate()], [doctor.chain[0]])
    assert [v.valid for v in verdicts] == [True]
    dataset = pydicom.dcmread(io.BytesIO(back))
    assert stored.study_instance_uid == dataset.StudyInstanceUID
    assert stored.series_instance_uid == dataset.SeriesInstanceUID
