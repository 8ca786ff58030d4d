"""The embedded PACS archive on a real installation: encrypted files, index, signature status,
crypto-erasure, bad input — on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime
import io
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import func, select

from rekam.crypto import FieldContext, KeyErased
from rekam.dicom import dataset_to_bytes, verify_dataset
from rekam.dicom.pacs import StudyQuery
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import PatientErased
from rekam.his.installation import Clinic, open_clinic
from rekam.his.pacs_archive import PacsArchiveService, SignatureCheck
from rekam.his.patients import PatientInput
from rekam.his.rbac import Actor, Role
from rekam.pki import Identity, KeyAlgorithm, create_root_ca, issue_doctor_certificate
from rekam.store.models import AuditEntry, PacsInstance
from support.pacs_objects import PATIENT_NAME, ecg_object
from support.servers import make_installation

NURSE = Actor(user_id=None, username="nurse-pacs", role=Role.NURSE, source_address="test")
PHARMACIST = Actor(user_id=None, username="pharm-pacs", role=Role.PHARMACIST)
ADMIN = Actor.system()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def clinic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Clinic]:
    """A clinic (RSA CA) of its own on each database engine, PostgreSQL on a real server."""
    overrides = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres").create_database()
    inst = make_installation(tmp_path_factory.mktemp("pacs-archive"), **overrides)
    clinic = open_clinic(inst.settings)
    assert clinic.database.engine.dialect.name == request.param
    yield clinic
    clinic.close()


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


def test_stored_blob_holds_no_patient_name_or_waveform_bytes_in_plaintext(
    clinic: Clinic, archive: PacsArchiveService, doctor: Identity
) -> None:
    data = ecg_object(2, doctor, patient_id="RAW-2")
    waveform = bytes(pydicom.dcmread(io.BytesIO(data)).WaveformSequence[0].WaveformData)
    probe = waveform[1000:1032]  # a run of interleaved samples from the middle
    assert probe in data and PATIENT_NAME.encode() in data  # the probes are really in the file
    before = set(_blob_files(clinic))
    stored = archive.store(NURSE, data)
    new = set(_blob_files(clinic)) - before
    assert len(new) == 1
    raw = new.pop().read_bytes()
    assert len(raw) > len(data) - 1000  # the whole object is there, encrypted
    for secret in (PATIENT_NAME.encode(), b"RAW-2", probe, stored.sop_instance_uid.encode()):
        assert secret not in raw
    with clinic.database.transaction() as session:
        row = session.scalar(
            select(PacsInstance).where(PacsInstance.sop_instance_uid == stored.sop_instance_uid)
        )
        assert row is not None
        assert PATIENT_NAME.encode() not in (row.dicom_patient_name_enc or b"")
        assert b"RAW-2" not in (row.dicom_patient_id_enc or b"")


def test_signature_status_valid_tampered_unsigned_and_foreign(
    clinic: Clinic, archive: PacsArchiveService, doctor: Identity
) -> None:
    valid = archive.store(NURSE, ecg_object(3, doctor))
    signed = ecg_object(4, doctor)
    dataset = pydicom.dcmread(io.BytesIO(signed))
    # tamper one signed sample byte in place (same length, so the file stays well formed)
    waveform = bytes(dataset.WaveformSequence[0].WaveformData)
    at = signed.index(waveform[2000:2032]) + 8
    tampered = signed[:at] + bytes([signed[at] ^ 0x55]) + signed[at + 1 :]
    bad = archive.store(NURSE, tampered)
    unsigned = archive.store(NURSE, ecg_object(5))
    other_root = create_root_ca("Elsewhere Root", "Elsewhere", KeyAlgorithm.ECDSA_P256)
    stranger = issue_doctor_certificate(
        other_root, "Dr Stranger", "LIC-9", None, KeyAlgorithm.RSA3072
    )
    foreign = archive.store(NURSE, ecg_object(6, stranger))
    assert valid.signature_status is SignatureCheck.VALID
    assert bad.signature_status is SignatureCheck.INVALID
    assert bad.signature_reason is not None and "INVALID_DATA_CHANGED" in bad.signature_reason
    assert unsigned.signature_status is SignatureCheck.UNSIGNED and unsigned.signer is None
    assert foreign.signature_status is SignatureCheck.INVALID
    assert foreign.signature_reason is not None
    assert "CERTIFICATE_UNTRUSTED" in foreign.signature_reason
    # the status is in the database, not only in the returned value
    for item in (valid, bad, unsigned, foreign):
        assert archive.instance(NURSE, item.sop_instance_uid).signature_status is (
            item.signature_status
        )
    # the tampered object comes back exactly as received (evidence is kept, not repaired)
    assert archive.open(NURSE, bad.sop_instance_uid) == tampered


def test_find_by_patient_id_date_accession_and_worklist(
    archive: PacsArchiveService, doctor: Identity
) -> None:
    first = archive.store(
        NURSE,
        ecg_object(7, doctor, patient_id="FIND-7", accession="ACC-77",
                   study_date=datetime.date(2024, 1, 5)),
    )  # fmt: skip
    second = archive.store(
        NURSE,
        ecg_object(8, None, patient_id="FIND-7", accession="ACC-88",
                   study_date=datetime.date(2024, 2, 9)),
    )  # fmt: skip
    by_patient = archive.find(NURSE, StudyQuery(patient_id="FIND-7"))
    assert {i.sop_instance_uid for i in by_patient} == {
        first.sop_instance_uid,
        second.sop_instance_uid,
    }
    assert [
        i.sop_instance_uid for i in archive.find(NURSE, StudyQuery(accession_number="ACC-88"))
    ] == [second.sop_instance_uid]
    january = archive.find(NURSE, StudyQuery(patient_id="FIND-7", study_date="20240101-20240131"))
    assert [i.sop_instance_uid for i in january] == [first.sop_instance_uid]
    assert archive.find(NURSE, StudyQuery(patient_id="find-nobody")) == []
    by_study = archive.find(NURSE, StudyQuery(study_instance_uid=first.study_instance_uid))
    assert [i.sop_instance_uid for i in by_study] == [first.sop_instance_uid]
    studies = archive.worklist(NURSE, limit=500)
    uids = [s.study_instance_uid for s in studies]
    assert uids.index(second.study_instance_uid) < uids.index(first.study_instance_uid)
    unsigned_only = archive.worklist(NURSE, signature_status=SignatureCheck.UNSIGNED, limit=500)
    assert second.study_instance_uid in {s.study_instance_uid for s in unsigned_only}
    assert first.study_instance_uid not in {s.study_instance_uid for s in unsigned_only}
    with pytest.raises(ValueError, match="not a study date"):
        StudyQuery(study_date="2024-01-01")


def test_matched_patient_is_crypto_erased_with_their_ecg_files(
    clinic: Clinic, archive: PacsArchiveService, doctor: Identity
) -> None:
    patient = clinic.patients.register(
        NURSE,
        PatientInput("Kartika Sulistyowati", datetime.date(1970, 5, 17), "F", "3174055705700003"),
    )
    stored = archive.store(NURSE, ecg_object(9, doctor, patient_id=patient.medical_record_number))
    assert stored.patient_id == patient.id  # matched by medical record number
    assert archive.open(NURSE, stored.sop_instance_uid)[128:132] == b"DICM"
    clinic.patients.erase(ADMIN, patient.id, "patient asked for erasure (test)")
    with pytest.raises(PatientErased, match="crypto-erased"):
        archive.open(NURSE, stored.sop_instance_uid)
    described = archive.instance(NURSE, stored.sop_instance_uid)
    assert described.erased and described.dicom_patient_name is None
    # and the raw key is gone: even bypassing the erased flag the file does not decrypt
    with clinic.database.transaction() as session:
        row = session.scalar(
            select(PacsInstance).where(PacsInstance.sop_instance_uid == stored.sop_instance_uid)
        )
        assert row is not None
        name, owner = row.object_name, row.key_patient_id
    with pytest.raises(KeyErased):
        clinic.files.load_to(name, FieldContext("pacs_instances", "content", row.id, owner),
                             io.BytesIO())  # fmt: skip
    with pytest.raises(PatientErased):
        archive.store(NURSE, ecg_object(10, doctor, patient_id=patient.medical_record_number))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: b"%PDF-1.7 not a dicom file" * 20, "not a DICOM file"),
        (lambda good: good[: len(good) // 2], "incomplete"),
        (lambda good: good[:200], "no transfer syntax|incomplete"),
        (lambda good: b"", "not a DICOM file"),
    ],
    ids=["pdf", "truncated-half", "truncated-header", "empty"],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    clinic: Clinic, archive: PacsArchiveService, make: object, message: str
) -> None:
    good = ecg_object(11)
    bad = make(good)  # type: ignore[operator]
    rows, blobs = _count(clinic), len(_blob_files(clinic))
    with pytest.raises(ValidationFailed, match=message):
        archive.store(NURSE, bad)
    assert _count(clinic) == rows and len(_blob_files(clinic)) == blobs


def test_huge_object_duplicate_and_permissions(clinic: Clinic, archive: PacsArchiveService) -> None:
    small = PacsArchiveService(
        archive.database, archive.fields, archive.indexer, archive.files, archive.trust,
        max_object_bytes=100_000,
    )  # fmt: skip
    rows, blobs = _count(clinic), len(_blob_files(clinic))
    with pytest.raises(ValidationFailed, match="more than the"):
        small.store(NURSE, ecg_object(12))  # ~250 KB
    assert _count(clinic) == rows and len(_blob_files(clinic)) == blobs
    data = ecg_object(13)
    archive.store(NURSE, data)
    blobs = len(_blob_files(clinic))
    with pytest.raises(Conflict, match="already in the archive"):
        archive.store(NURSE, data)
    assert len(_blob_files(clinic)) == blobs
    with pytest.raises(PermissionDenied):
        archive.store(PHARMACIST, ecg_object(14))
    with pytest.raises(PermissionDenied):
        archive.worklist(ADMIN)
    with pytest.raises(NotFound):
        archive.open(NURSE, "1.2.3.4.5.6.7.8.9")


def test_every_operation_is_audited(clinic: Clinic, archive: PacsArchiveService) -> None:
    def actions() -> list[str]:
        with clinic.database.transaction() as session:
            return list(
                session.scalars(
                    select(AuditEntry.action)
                    .where(AuditEntry.actor == NURSE.username)
                    .order_by(AuditEntry.seq)
                )
            )

    before = len(actions())
    stored = archive.store(NURSE, ecg_object(15))
    archive.open(NURSE, stored.sop_instance_uid)
    archive.find(NURSE, StudyQuery(patient_id="PAC-0001"))
    archive.worklist(NURSE)
    assert actions()[before:] == ["pacs.store", "pacs.read", "pacs.search", "pacs.worklist"]


def _with_values(data: bytes, **values: str) -> bytes:
    """``data`` re-encoded with some elements set to (possibly malformed) raw values."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in values.items():
        dataset.data_element(keyword).value = value  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid values we want
        return dataset_to_bytes(dataset)


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_control_characters_in_clear_index_values_are_dropped_not_stored(
    clinic: Clinic, archive: PacsArchiveService
) -> None:
    """Malformed values with NUL bytes inside (PostgreSQL refuses NUL in text) or non-digits
    in the study date are left out of the clear index; the file itself is kept as received."""
    data = _with_values(
        ecg_object(16, patient_id="NUL-16"), Modality="E\x00CG", StudyDate="2025\x00314"
    )
    assert b"E\x00CG" in data and b"2025\x00314" in data  # the malformed values really are there
    stored = archive.store(NURSE, data)
    assert stored.modality is None and stored.study_date is None
    assert archive.open(NURSE, stored.sop_instance_uid) == data
    assert [i.sop_instance_uid for i in archive.find(NURSE, StudyQuery(patient_id="NUL-16"))] == [
        stored.sop_instance_uid
    ]
    letters = archive.store(
        NURSE, _with_values(ecg_object(17), StudyDate="2025031A", Modality="ecg lower")
    )
    assert letters.study_date is None and letters.modality is None
    good = archive.store(NURSE, ecg_object(18))
    assert (good.study_date, good.modality) == ("20250314", "ECG")


def test_concurrent_stores_of_one_object_keep_exactly_one(
    clinic: Clinic, archive: PacsArchiveService
) -> None:
    """Two stores of the same SOP Instance UID racing: one is kept, the other is refused as a
    duplicate, and no ciphertext is left behind for the refused one."""
    data = ecg_object(19)
    blobs, rows = len(_blob_files(clinic)), _count(clinic)
    start = threading.Barrier(4)

    def attempt() -> str:
        start.wait()
        try:
            archive.store(NURSE, data)
        except Conflict:
            return "duplicate"
        return "stored"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(lambda _n: attempt(), range(4)))
    assert outcomes == ["duplicate", "duplicate", "duplicate", "stored"]
    assert _count(clinic) == rows + 1
    assert len(_blob_files(clinic)) == blobs + 1
