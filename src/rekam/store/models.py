"""Rekam's tables. Clinical tables join here as their issues land."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rekam.store.types import UTCDateTime, utc_now


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class User(Base):
    """A person who logs in: staff or patient."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class WebSession(Base):
    """A server-side login session; only the hash of its token is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    second_factor_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    source_address: Mapped[str] = mapped_column(String(64), default="")


class LoginThrottle(Base):
    """Failed-login counters per (account, source) and per source."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DataKey(Base):
    """A data key, wrapped by the keyring's KEK; NULL ``wrapped`` means crypto-erased."""

    __tablename__ = "data_keys"

    key_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120), unique=True)
    kek_id: Mapped[str] = mapped_column(String(64))
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    destroyed_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Patient(Base):
    """A patient. Every identifying or clinical value is an envelope ciphertext (``*_enc``);
    NIK, BPJS number and name words are findable through blind indexes only."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    medical_record_number: Mapped[str] = mapped_column(String(20), unique=True)
    name_enc: Mapped[bytes] = mapped_column(LargeBinary)
    birth_date_enc: Mapped[bytes] = mapped_column(LargeBinary)
    sex_enc: Mapped[bytes] = mapped_column(LargeBinary)
    nik_enc: Mapped[bytes] = mapped_column(LargeBinary)
    nik_index: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)
    bpjs_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    bpjs_index: Mapped[bytes | None] = mapped_column(LargeBinary(16), index=True, nullable=True)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    emergency_contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    allergies_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    medical_history_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class PatientNameToken(Base):
    """Blind index of each word of a patient's name, for search by name without decryption."""

    __tablename__ = "patient_name_tokens"

    patient_id: Mapped[str] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True
    )
    token_index: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True, index=True)


class PatientFile(Base):
    """A file attached to a patient; its bytes live encrypted in the blob store."""

    __tablename__ = "patient_files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True
    )
    object_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    filename_enc: Mapped[bytes] = mapped_column(LargeBinary)
    sha256_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Counter(Base):
    """Named sequences (medical record numbers)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Base):
    """One line of the hash-chained audit trail (kept apart from the clinical tables)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(36), index=True, nullable=True)
    record: Mapped[str | None] = mapped_column(String(120), nullable=True)
    source: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500), default="")
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


# --- The clinic's forms ------------------------------------------------------------------------
# Columns ending in _enc hold envelope ciphertexts bound to (table, column, row id, patient id);
# everything else is either an identifier, a time, a status or non-clinical reference data.


class Practitioner(Base):
    """A doctor, nurse, midwife, pharmacist or lab analyst (staff data, not patient data)."""

    __tablename__ = "practitioners"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    profession: Mapped[str] = mapped_column(String(32))
    specialty: Mapped[str | None] = mapped_column(String(100), nullable=True)
    str_number: Mapped[str | None] = mapped_column(String(40), nullable=True)
    sip_number: Mapped[str | None] = mapped_column(String(60), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Consultation(Base):
    """An encounter: complaint, examination, vital signs, plan; signed off by its doctor."""

    __tablename__ = "consultations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    practitioner_id: Mapped[str] = mapped_column(ForeignKey("practitioners.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    complaint_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    examination_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    vital_signs_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    plan_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    signed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Diagnosis(Base):
    """An ICD-10 coded diagnosis of a consultation (code and text encrypted)."""

    __tablename__ = "diagnoses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consultation_id: Mapped[str] = mapped_column(
        ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer, default=1)
    code_enc: Mapped[bytes] = mapped_column(LargeBinary)
    text_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class Amendment(Base):
    """A correction of a signed record: the original value stays visible (struck through)."""

    __tablename__ = "amendments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    record_table: Mapped[str] = mapped_column(String(40))
    record_id: Mapped[str] = mapped_column(String(36), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    field: Mapped[str] = mapped_column(String(40))
    old_value_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    new_value_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason_enc: Mapped[bytes] = mapped_column(LargeBinary)
    amended_by: Mapped[str] = mapped_column(String(36))
    amended_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LabOrder(Base):
    """A laboratory test ordered in a consultation, and its result once entered."""

    __tablename__ = "lab_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    test_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="ordered")
    ordered_by: Mapped[str] = mapped_column(String(36))
    ordered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    result_value_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    result_unit_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reference_range_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    abnormal_flag_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    resulted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    resulted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Medicine(Base):
    """The formulary: a medicine the clinic stocks (reference data, not patient data)."""

    __tablename__ = "medicines"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    form: Mapped[str] = mapped_column(String(60))
    strength: Mapped[str] = mapped_column(String(60))
    stock: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Prescription(Base):
    """A prescription line from a consultation; dispensed by a pharmacist."""

    __tablename__ = "prescriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    medicine_id: Mapped[str] = mapped_column(ForeignKey("medicines.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    details_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="prescribed")
    prescribed_by: Mapped[str] = mapped_column(String(36))
    prescribed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    allergy_override_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    dispensed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    dispensed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Procedure(Base):
    """A procedure (tindakan), ICD-9-CM coded, performed in a consultation."""

    __tablename__ = "procedures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    consultation_id: Mapped[str] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    code_enc: Mapped[bytes] = mapped_column(LargeBinary)
    description_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    performer_id: Mapped[str] = mapped_column(ForeignKey("practitioners.id"))
    performed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utc_now)


class BreakGlassGrant(Base):
    """Emergency access to one patient's record outside normal access: time-limited, audited."""

    __tablename__ = "break_glass_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    #: unused since format 0005 (kept empty); the reason is in ``reason_enc``
    reason: Mapped[str] = mapped_column(String(500))
    reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- Heart monitoring ----------------------------------------------------------------------------


class MonitorDevice(Base):
    """A wearable ECG device paired with one patient. The device key and the label are sealed
    under the patient's data key; thresholds are per patient (``MonitorThresholds``)."""

    __tablename__ = "monitor_devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    label_enc: Mapped[bytes] = mapped_column(LargeBinary)
    key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    paired_by: Mapped[str] = mapped_column(String(36))
    paired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    unpaired_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    unpaired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: the highest packet sequence number accepted under this pairing (replay protection that
    #: outlives the server; not patient data)
    accepted_sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class MonitorThresholds(Base):
    """One patient's alarm limits (sealed JSON: brady, tachy, hysteresis, minimum duration)."""

    __tablename__ = "monitor_thresholds"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    limits_enc: Mapped[bytes] = mapped_column(LargeBinary)
    set_by: Mapped[str] = mapped_column(String(36))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MonitorAlert(Base):
    """One alert episode (raised, updated and ended phases merged by ``episode_id``).
    Kind, rates and device times are sealed JSON; the triggering ECG strip is sealed too."""

    __tablename__ = "monitor_alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    episode_id: Mapped[str] = mapped_column(String(36), unique=True)
    device_id: Mapped[str] = mapped_column(String(36), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    details_enc: Mapped[bytes] = mapped_column(LargeBinary)
    strip_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class HeartRateMinute(Base):
    """Heart-rate trend: one patient's readings in one minute (sealed JSON: count, sum, min,
    max, readings without a reliable rate)."""

    __tablename__ = "heart_rate_minutes"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    summary_enc: Mapped[bytes] = mapped_column(LargeBinary)


class PacsInstance(Base):
    """One DICOM object in the embedded PACS archive: its UIDs and signature status in the
    clear for the worklist, the DICOM patient name, patient ID and accession number sealed (with
    blind indexes for search), the file itself encrypted in the blob store under the data key of
    ``key_patient_id`` (the Rekam patient when matched, else a key of the DICOM patient's own)."""

    __tablename__ = "pacs_instances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_date: Mapped[str | None] = mapped_column(String(8), nullable=True, index=True)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    patient_id: Mapped[str | None] = mapped_column(
        ForeignKey("patients.id"), nullable=True, index=True
    )
    key_patient_id: Mapped[str] = mapped_column(String(80))
    dicom_patient_name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    dicom_patient_id_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    dicom_patient_id_index: Mapped[bytes | None] = mapped_column(
        LargeBinary(32), nullable=True, index=True
    )
    accession_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    accession_index: Mapped[bytes | None] = mapped_column(
        LargeBinary(32), nullable=True, index=True
    )
    study_description_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signature_status: Mapped[str] = mapped_column(String(16))
    signer: Mapped[str | None] = mapped_column(String(300), nullable=True)
    signature_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    object_name: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(Integer)
    sha256_enc: Mapped[bytes] = mapped_column(LargeBinary)
    stored_by: Mapped[str] = mapped_column(String(64))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EcgStudyReport(Base):
    """A specialist's interpretation of one archived ECG object (sealed under the data key of
    the archived file's owner), with the signature status found when it was written and, for an
    object whose signature failed, the override and its reason (sealed)."""

    __tablename__ = "ecg_study_reports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str | None] = mapped_column(
        ForeignKey("patients.id"), nullable=True, index=True
    )
    key_patient_id: Mapped[str] = mapped_column(String(80))
    interpretation_enc: Mapped[bytes] = mapped_column(LargeBinary)
    signature_status: Mapped[str] = mapped_column(String(16))
    signature_override: Mapped[bool] = mapped_column(Boolean, default=False)
    override_reason_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reported_by: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
