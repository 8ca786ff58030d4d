"""Consultations (encounters): drafts, sign-off by their own doctor, amendments after sign-off.

A consultation holds the complaint (anamnesis), the examination, the vital signs (one encrypted
JSON value), ICD-10 coded diagnoses (primary first) and the plan; each value is encrypted with
the patient's data key, bound to (table, column, row id, patient id).

Rules:

* a draft may be updated by clinicians with ``CONSULTATIONS_WRITE``; updates carry the version
  the client saw (a stale version is a ``Conflict``);
* only the consultation's own practitioner, holding ``CONSULTATIONS_SIGN``, signs it off, and only
  once it has at least one diagnosis;
* a signed consultation is never updated in place by an edit: each correction is an
  ``Amendment`` keeping the old value, the new value and the reason (all encrypted), who and
  when. Only the consultation's own practitioner amends it. Readers get the current values and
  the amendment history, so pages show the original struck through next to the correction;
* every call touching patient data is one transaction and appends exactly one audit entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rekam.crypto import FieldCipher
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import ensure_not_erased, seal, unseal
from rekam.his.icd import normalise_icd10
from rekam.his.practitioners import CLINICIANS, Profession, practitioner_of_actor
from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.record_access import check_patient_access
from rekam.store import Database
from rekam.store.models import (
    Amendment,
    Consultation,
    Diagnosis,
    Patient,
    Practitioner,
    User,
    new_id,
)
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

DRAFT = "draft"
SIGNED = "signed"

TEXT_LIMITS = {"complaint": 5000, "examination": 10_000, "plan": 5000}
AMENDABLE_FIELDS = ("complaint", "examination", "vital_signs", "diagnoses", "plan")
MAX_DIAGNOSES = 20
EARLIEST_START = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(minutes=10)

#: plausible (not normal) ranges: a value outside is almost certainly a typing error
VITAL_RANGES: dict[str, tuple[float, float, str]] = {
    "systolic": (50, 300, "mmHg"),
    "diastolic": (20, 200, "mmHg"),
    "heart_rate": (20, 300, "bpm"),
    "temperature": (30.0, 45.0, "°C"),
    "spo2": (50, 100, "%"),
    "weight": (0.3, 400, "kg"),
    "height": (20, 260, "cm"),
}
WHOLE_NUMBER_VITALS = frozenset({"systolic", "diastolic", "heart_rate", "spo2"})


@dataclass(frozen=True)
class VitalSigns:
    systolic: float | None = None
    diastolic: float | None = None
    heart_rate: float | None = None
    temperature: float | None = None
    spo2: float | None = None
    weight: float | None = None
    height: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k in VITAL_RANGES if (v := getattr(self, k)) is not None}

    @property
    def empty(self) -> bool:
        return not self.as_dict()

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> VitalSigns:
        return cls(**{k: v for k, v in values.items() if k in VITAL_RANGES})


@dataclass(frozen=True)
class DiagnosisInput:
    code: str
    text: str | None = None
    rank: int | None = None


@dataclass(frozen=True)
class ConsultationInput:
    started_at: datetime | None = None
    complaint: str | None = None
    examination: str | None = None
    vital_signs: VitalSigns | None = None
    diagnoses: Sequence[DiagnosisInput] = ()
    plan: str | None = None


@dataclass(frozen=True)
class DiagnosisRecord:
    rank: int
    code: str
    text: str | None


@dataclass(frozen=True)
class AmendmentRecord:
    id: str
    field: str
    old_value: str | None
    new_value: str | None
    reason: str
    amended_by: str
    amended_by_name: str
    amended_at: datetime


@dataclass(frozen=True)
class ConsultationRecord:
    id: str
    patient_id: str
    practitioner_id: str
    practitioner_name: str
    started_at: datetime
    status: str
    complaint: str | None
    examination: str | None
    vital_signs: VitalSigns | None
    diagnoses: list[DiagnosisRecord]
    plan: str | None
    signed_at: datetime | None
    signed_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    amendments: list[AmendmentRecord] = field(default_factory=list)


@dataclass(frozen=True)
class ConsultationSummary:
    id: str
    patient_id: str
    patient_name: str
    medical_record_number: str
    practitioner_id: str
    practitioner_name: str
    started_at: datetime
    status: str
    primary_diagnosis: str | None


@dataclass(frozen=True)
class Worklist:
    drafts: list[ConsultationSummary]
    recent: list[ConsultationSummary]


# Validation ------------------------------------------------------------------------------------


def validate_vital_signs(vitals: VitalSigns | None) -> VitalSigns | None:
    """The vital signs if each given value is within its plausible range; None if all empty."""
    if vitals is None:
        return None
    for name, (low, high, unit) in VITAL_RANGES.items():
        value = getattr(vitals, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValidationFailed(
                f"{name} must be a number", field=name, key=f"vitals.{name}", min=low, max=high
            )
        if not low <= value <= high:
            raise ValidationFailed(
                f"{name.replace('_', ' ')} must be between {low} and {high} {unit}",
                field=name,
                key=f"vitals.{name}",
                min=low,
                max=high,
            )
    if (
        vitals.systolic is not None
        and vitals.diastolic is not None
        and vitals.diastolic >= vitals.systolic
    ):
        raise ValidationFailed(
            "the diastolic pressure must be lower than the systolic pressure",
            field="diastolic",
            key="vitals.pressure_order",
        )
    clean = {
        k: (int(v) if k in WHOLE_NUMBER_VITALS and float(v).is_integer() else float(v))
        for k, v in vitals.as_dict().items()
    }
    return VitalSigns.from_dict(clean) if clean else None


def validate_diagnoses(diagnoses: Sequence[DiagnosisInput]) -> list[DiagnosisRecord]:
    """Diagnoses with canonical codes, ranked 1..n (1 is the primary diagnosis)."""
    if len(diagnoses) > MAX_DIAGNOSES:
        raise ValidationFailed(
            f"at most {MAX_DIAGNOSES} diagnoses",
            field="diagnoses",
            key="diagnosis.too_many",
            limit=MAX_DIAGNOSES,
        )
    ranked: list[tuple[int, int, DiagnosisRecord]] = []
    seen_codes: set[str] = set()
    seen_ranks: set[int] = set()
    for position, item in enumerate(diagnoses):
        code = normalise_icd10(item.code)
        if code in seen_codes:
            raise ValidationFailed(
                f"diagnosis {code} is listed twice",
                field="diagnoses",
                key="diagnosis.duplicate",
                value=code,
            )
        seen_codes.add(code)
        text = " ".join((item.text or "").split()) or None
        if text and len(text) > 500:
            raise ValidationFailed(
                "a diagnosis text is longer than 500 characters",
                field="diagnoses",
                key="field.too_long",
                limit=500,
            )
        rank = item.rank if item.rank is not None else position + 1
        if rank < 1 or rank in seen_ranks:
            raise ValidationFailed(
                "diagnosis ranks must be distinct positive numbers (1 = primary)",
                field="diagnoses",
                key="diagnosis.rank",
            )
        seen_ranks.add(rank)
        ranked.append((rank, position, DiagnosisRecord(rank, code, text)))
    ranked.sort(key=lambda entry: (entry[0], entry[1]))
    return [DiagnosisRecord(i + 1, d.code, d.text) for i, (_, _, d) in enumerate(ranked)]


def _clean_text(name: str, value: str | None) -> str | None:
    text = (value or "").strip()
    limit = TEXT_LIMITS[name]
    if len(text) > limit:
        raise ValidationFailed(
            f"{name} is longer than {limit} characters",
            field=name,
            key="field.too_long",
            limit=limit,
        )
    return text or None


@dataclass(frozen=True)
class _Clean:
    started_at: datetime
    complaint: str | None
    examination: str | None
    vital_signs: VitalSigns | None
    diagnoses: list[DiagnosisRecord]
    plan: str | None


def _validated(data: ConsultationInput, now: datetime) -> _Clean:
    started = data.started_at or now
    if started.tzinfo is None:
        raise ValidationFailed(
            "the time needs a time zone", field="started_at", key="consultation.started_at"
        )
    started = started.astimezone(UTC)
    if not EARLIEST_START <= started <= now + FUTURE_TOLERANCE:
        raise ValidationFailed(
            "the consultation time is not plausible (in the future or before 2000)",
            field="started_at",
            key="consultation.started_at",
        )
    return _Clean(
        started_at=started,
        complaint=_clean_text("complaint", data.complaint),
        examination=_clean_text("examination", data.examination),
        vital_signs=validate_vital_signs(data.vital_signs),
        diagnoses=validate_diagnoses(data.diagnoses),
        plan=_clean_text("plan", data.plan),
    )


# Serialised values (for the vital-signs column and the amendment history) ---------------------


def vital_signs_json(vitals: VitalSigns | None) -> str | None:
    return None if vitals is None else json.dumps(vitals.as_dict(), sort_keys=True)


def diagnoses_json(diagnoses: Sequence[DiagnosisRecord]) -> str | None:
    if not diagnoses:
        return None
    return json.dumps(
        [{"rank": d.rank, "code": d.code, "text": d.text} for d in diagnoses], ensure_ascii=False
    )


def parse_vital_signs(text: str | None) -> VitalSigns | None:
    return None if not text else VitalSigns.from_dict(json.loads(text))


def parse_diagnoses(text: str | None) -> list[DiagnosisRecord]:
    if not text:
        return []
    return [
        DiagnosisRecord(int(d["rank"]), str(d["code"]), d.get("text")) for d in json.loads(text)
    ]


def display_value(field_name: str, value: str | None) -> str:
    """A stored (amendment) value as one line of text for a page."""
    if not value:
        return "—"
    if field_name == "vital_signs":
        vitals = parse_vital_signs(value)
        assert vitals is not None
        return ", ".join(
            f"{name} {number:g} {VITAL_RANGES[name][2]}"
            for name, number in vitals.as_dict().items()
        )
    if field_name == "diagnoses":
        return "; ".join(
            f"{d.rank}. {d.code}" + (f" {d.text}" if d.text else "") for d in parse_diagnoses(value)
        )
    return value


# Encryption ------------------------------------------------------------------------------------


def live_patient(
    session: Session, actor: Actor, patient_id: str, permission: Permission
) -> Patient:
    """``check_patient_access``, and refuse a crypto-erased patient."""
    patient = check_patient_access(session, actor, patient_id, permission)
    ensure_not_erased(patient)
    return patient


def stale() -> Conflict:
    return Conflict(
        "someone else changed this consultation; reload and try again", key="encounters.stale"
    )


# The service -----------------------------------------------------------------------------------


class ConsultationService:
    def __init__(
        self,
        database: Database,
        fields: FieldCipher,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.database = database
        self.fields = fields
        self.clock = clock

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> ConsultationService:
        return cls(clinic.database, clinic.fields)

    # helpers -----------------------------------------------------------------------------------

    def _seal(self, row: Consultation, column: str, value: str | None) -> bytes | None:
        return seal(self.fields, "consultations", column, row.id, row.patient_id, value)

    def _open(self, row: Consultation, column: str) -> str | None:
        sealed: bytes | None = getattr(row, f"{column}_enc")
        return unseal(self.fields, "consultations", column, row.id, row.patient_id, sealed)

    def _load(
        self, session: Session, actor: Actor, consultation_id: str, permission: Permission
    ) -> Consultation:
        # writers lock the row (PostgreSQL: SELECT ... FOR UPDATE; SQLite's write transaction
        # already holds the database lock), so a concurrent writer sees the new version
        locking = permission is not Permission.CONSULTATIONS_READ
        row = session.get(Consultation, consultation_id, with_for_update=locking)
        if row is None:
            raise NotFound("no such consultation", key="consultation.not_found")
        live_patient(session, actor, row.patient_id, permission)
        return row

    def _write_diagnoses(
        self, session: Session, row: Consultation, diagnoses: Sequence[DiagnosisRecord]
    ) -> None:
        session.execute(delete(Diagnosis).where(Diagnosis.consultation_id == row.id))
        for item in diagnoses:
            diagnosis_id = new_id()
            code = seal(self.fields, "diagnoses", "code", diagnosis_id, row.patient_id, item.code)
            assert code is not None
            session.add(
                Diagnosis(
                    id=diagnosis_id,
                    consultation_id=row.id,
                    patient_id=row.patient_id,
                    rank=item.rank,
                    code_enc=code,
                    text_enc=seal(
                        self.fields, "diagnoses", "text", diagnosis_id, row.patient_id, item.text
                    ),
                    created_at=self.clock(),
                )
            )

    def _diagnoses(
        self, session: Session, row: Consultation, prefetched: list[Diagnosis] | None = None
    ) -> list[DiagnosisRecord]:
        found = (
            prefetched
            if prefetched is not None
            else session.scalars(
                select(Diagnosis)
                .where(Diagnosis.consultation_id == row.id)
                .order_by(Diagnosis.rank)
            )
        )
        return [
            DiagnosisRecord(
                d.rank,
                unseal(self.fields, "diagnoses", "code", d.id, d.patient_id, d.code_enc) or "",
                unseal(self.fields, "diagnoses", "text", d.id, d.patient_id, d.text_enc),
            )
            for d in found
        ]

    def _amendments(
        self, session: Session, row: Consultation, prefetched: list[Amendment] | None = None
    ) -> list[AmendmentRecord]:
        found = (
            prefetched
            if prefetched is not None
            else session.scalars(
                select(Amendment)
                .where(Amendment.record_table == "consultations", Amendment.record_id == row.id)
                .order_by(Amendment.amended_at, Amendment.id)
            )
        )
        records = []
        for a in found:
            user = session.get(User, a.amended_by)
            records.append(
                AmendmentRecord(
                    id=a.id,
                    field=a.field,
                    old_value=unseal(
                        self.fields, "amendments", "old_value", a.id, a.patient_id, a.old_value_enc
                    ),
                    new_value=unseal(
                        self.fields, "amendments", "new_value", a.id, a.patient_id, a.new_value_enc
                    ),
                    reason=unseal(
                        self.fields, "amendments", "reason", a.id, a.patient_id, a.reason_enc
                    )
                    or "",
                    amended_by=a.amended_by,
                    amended_by_name=user.display_name if user is not None else a.amended_by,
                    amended_at=a.amended_at,
                )
            )
        return records

    def records_for_patient(self, session: Session, patient_id: str) -> list[ConsultationRecord]:
        """Every consultation of a patient, decrypted, in three queries (not three per visit).

        For callers that have already checked access and write their own audit entry (the
        medical record); it neither checks nor audits."""
        visits = list(
            session.scalars(select(Consultation).where(Consultation.patient_id == patient_id))
        )
        diagnoses: dict[str, list[Diagnosis]] = {v.id: [] for v in visits}
        for d in session.scalars(
            select(Diagnosis).where(Diagnosis.patient_id == patient_id).order_by(Diagnosis.rank)
        ):
            diagnoses.setdefault(d.consultation_id, []).append(d)
        amendments: dict[str, list[Amendment]] = {v.id: [] for v in visits}
        for a in session.scalars(
            select(Amendment)
            .where(Amendment.patient_id == patient_id, Amendment.record_table == "consultations")
            .order_by(Amendment.amended_at, Amendment.id)
        ):
            amendments.setdefault(a.record_id, []).append(a)
        return [self._record(session, v, diagnoses[v.id], amendments[v.id]) for v in visits]

    def _record(
        self,
        session: Session,
        row: Consultation,
        diagnoses: list[Diagnosis] | None = None,
        amendments: list[Amendment] | None = None,
    ) -> ConsultationRecord:
        practitioner = session.get(Practitioner, row.practitioner_id)
        return ConsultationRecord(
            id=row.id,
            patient_id=row.patient_id,
            practitioner_id=row.practitioner_id,
            practitioner_name=practitioner.name if practitioner else "",
            started_at=row.started_at,
            status=row.status,
            complaint=self._open(row, "complaint"),
            examination=self._open(row, "examination"),
            vital_signs=parse_vital_signs(self._open(row, "vital_signs")),
            diagnoses=self._diagnoses(session, row, diagnoses),
            plan=self._open(row, "plan"),
            signed_at=row.signed_at,
            signed_by=row.signed_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            version=row.version,
            amendments=self._amendments(session, row, amendments),
        )

    @staticmethod
    def _practitioner(session: Session, actor: Actor, practitioner_id: str | None) -> Practitioner:
        if practitioner_id is None:
            own = practitioner_of_actor(session, actor)
            if own is None:
                raise ValidationFailed(
                    "your account is not linked to a practitioner; choose the practitioner",
                    field="practitioner_id",
                    key="consultation.no_practitioner",
                )
            chosen: Practitioner | None = own
        else:
            chosen = session.get(Practitioner, practitioner_id)
        if chosen is None or not chosen.active:
            raise ValidationFailed(
                "no such active practitioner",
                field="practitioner_id",
                key="consultation.no_practitioner",
            )
        if Profession(chosen.profession) not in CLINICIANS:
            raise ValidationFailed(
                "consultations are held by doctors, nurses or midwives",
                field="practitioner_id",
                key="consultation.practitioner_profession",
            )
        return chosen

    @staticmethod
    def _own_practitioner_only(session: Session, actor: Actor, row: Consultation) -> None:
        own = practitioner_of_actor(session, actor)
        if own is None or own.id != row.practitioner_id:
            raise PermissionDenied(
                "only the consultation's own practitioner may do this",
                key="consultation.not_own",
            )

    def _store_fields(self, session: Session, row: Consultation, clean: _Clean) -> None:
        # the diagnoses first: their DELETE flushes the session, and the row's changes must
        # reach the database in one UPDATE (one version step)
        self._write_diagnoses(session, row, clean.diagnoses)
        row.started_at = clean.started_at
        row.complaint_enc = self._seal(row, "complaint", clean.complaint)
        row.examination_enc = self._seal(row, "examination", clean.examination)
        row.vital_signs_enc = self._seal(row, "vital_signs", vital_signs_json(clean.vital_signs))
        row.plan_enc = self._seal(row, "plan", clean.plan)

    # Operations --------------------------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        patient_id: str,
        data: ConsultationInput,
        practitioner_id: str | None = None,
    ) -> ConsultationRecord:
        """A draft consultation; the practitioner defaults to the actor's own."""
        now = self.clock()
        clean = _validated(data, now)
        with self.database.transaction(write=True) as session:
            live_patient(session, actor, patient_id, Permission.CONSULTATIONS_WRITE)
            practitioner = self._practitioner(session, actor, practitioner_id)
            row = Consultation(
                id=new_id(),
                patient_id=patient_id,
                practitioner_id=practitioner.id,
                status=DRAFT,
                created_at=now,
                updated_at=now,
            )
            self._store_fields(session, row, clean)
            session.add(row)
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent("consultation.create", patient_id=patient_id, record=row.id),
            )
            return self._record(session, row)

    def get(self, actor: Actor, consultation_id: str) -> ConsultationRecord:
        """Current values plus the amendment history."""
        with self.database.transaction(write=True) as session:
            row = self._load(session, actor, consultation_id, Permission.CONSULTATIONS_READ)
            record = self._record(session, row)
            append_audit(
                session,
                actor,
                AuditEvent("consultation.read", patient_id=row.patient_id, record=row.id),
            )
            return record

    def update(
        self, actor: Actor, consultation_id: str, data: ConsultationInput, version: int
    ) -> ConsultationRecord:
        """Replace a draft's values; ``version`` is the one the client saw."""
        now = self.clock()
        clean = _validated(data, now)
        try:
            with self.database.transaction(write=True) as session:
                row = self._load(session, actor, consultation_id, Permission.CONSULTATIONS_WRITE)
                if row.status != DRAFT:
                    raise Conflict(
                        "this consultation is signed: correct it with an amendment",
                        key="consultation.signed",
                    )
                if row.version != version:
                    raise stale()
                self._store_fields(session, row, clean)
                row.updated_at = now
                session.flush()
                append_audit(
                    session,
                    actor,
                    AuditEvent("consultation.update", patient_id=row.patient_id, record=row.id),
                )
                return self._record(session, row)
        except StaleDataError as exc:
            raise stale() from exc

    def sign(
        self, actor: Actor, consultation_id: str, version: int | None = None
    ) -> ConsultationRecord:
        """Sign a draft off: only its own practitioner, with CONSULTATIONS_SIGN."""
        now = self.clock()
        try:
            with self.database.transaction(write=True) as session:
                row = self._load(session, actor, consultation_id, Permission.CONSULTATIONS_SIGN)
                self._own_practitioner_only(session, actor, row)
                if row.status != DRAFT:
                    raise Conflict("this consultation is already signed", key="consultation.signed")
                if version is not None and row.version != version:
                    raise stale()
                if not session.scalar(
                    select(Diagnosis.id).where(Diagnosis.consultation_id == row.id).limit(1)
                ):
                    raise ValidationFailed(
                        "give at least one diagnosis before signing",
                        field="diagnoses",
                        key="consultation.sign_needs_diagnosis",
                    )
                row.status = SIGNED
                row.signed_at = now
                row.signed_by = actor.user_id or actor.username[:36]
                row.updated_at = now
                session.flush()
                append_audit(
                    session,
                    actor,
                    AuditEvent("consultation.sign", patient_id=row.patient_id, record=row.id),
                )
                return self._record(session, row)
        except StaleDataError as exc:
            raise stale() from exc

    def amend(
        self,
        actor: Actor,
        consultation_id: str,
        field_name: str,
        value: str | VitalSigns | Sequence[DiagnosisInput] | None,
        reason: str,
        version: int | None = None,
    ) -> ConsultationRecord:
        """Correct one field of a signed consultation, keeping the original in the history."""
        if field_name not in AMENDABLE_FIELDS:
            raise ValidationFailed(
                "this field cannot be amended", field="field", key="amendment.field"
            )
        reason = " ".join(reason.split())
        if not 5 <= len(reason) <= 500:
            raise ValidationFailed(
                "give the reason for the correction (5–500 characters)",
                field="reason",
                key="amendment.reason",
            )
        new_diagnoses: list[DiagnosisRecord] = []
        if field_name == "vital_signs":
            if value is not None and not isinstance(value, VitalSigns):
                raise ValidationFailed("vital signs expected", field="value", key="amendment.value")
            new_value = vital_signs_json(validate_vital_signs(value))
        elif field_name == "diagnoses":
            if isinstance(value, str | VitalSigns) or value is None:
                raise ValidationFailed("diagnoses expected", field="value", key="amendment.value")
            new_diagnoses = validate_diagnoses(value)
            new_value = diagnoses_json(new_diagnoses)
        else:
            if value is not None and not isinstance(value, str):
                raise ValidationFailed("text expected", field="value", key="amendment.value")
            new_value = _clean_text(field_name, value)
        now = self.clock()
        try:
            with self.database.transaction(write=True) as session:
                row = self._load(session, actor, consultation_id, Permission.CONSULTATIONS_WRITE)
                self._own_practitioner_only(session, actor, row)
                if row.status != SIGNED:
                    raise Conflict(
                        "a draft is edited directly, not amended", key="consultation.not_signed"
                    )
                if version is not None and row.version != version:
                    raise stale()
                if field_name == "diagnoses":
                    old_value = diagnoses_json(self._diagnoses(session, row))
                else:
                    old_value = self._open(row, field_name)
                if old_value == new_value:
                    raise ValidationFailed(
                        "the new value is the same as the current one",
                        field="value",
                        key="amendment.unchanged",
                    )
                amendment = Amendment(
                    id=new_id(),
                    record_table="consultations",
                    record_id=row.id,
                    patient_id=row.patient_id,
                    field=field_name,
                    amended_by=actor.user_id or actor.username[:36],
                    amended_at=now,
                )
                sealed_reason = seal(
                    self.fields, "amendments", "reason", amendment.id, row.patient_id, reason
                )
                assert sealed_reason is not None
                amendment.reason_enc = sealed_reason
                amendment.old_value_enc = seal(
                    self.fields, "amendments", "old_value", amendment.id, row.patient_id, old_value
                )
                amendment.new_value_enc = seal(
                    self.fields, "amendments", "new_value", amendment.id, row.patient_id, new_value
                )
                session.add(amendment)
                if field_name == "diagnoses":
                    self._write_diagnoses(session, row, new_diagnoses)
                else:
                    setattr(row, f"{field_name}_enc", self._seal(row, field_name, new_value))
                row.updated_at = now
                session.flush()
                append_audit(
                    session,
                    actor,
                    AuditEvent(
                        "consultation.amend",
                        patient_id=row.patient_id,
                        record=row.id,
                        detail=field_name,
                    ),
                )
                return self._record(session, row)
        except StaleDataError as exc:
            raise stale() from exc

    def _summaries(
        self, session: Session, actor: Actor, rows: Sequence[Consultation]
    ) -> list[ConsultationSummary]:
        names: dict[str, tuple[str, str]] = {}
        summaries = []
        for row in rows:
            if row.patient_id not in names:
                patient = live_patient(
                    session, actor, row.patient_id, Permission.CONSULTATIONS_READ
                )
                name = unseal(
                    self.fields, "patients", "name", patient.id, patient.id, patient.name_enc
                )
                names[row.patient_id] = (name or "", patient.medical_record_number)
            practitioner = session.get(Practitioner, row.practitioner_id)
            primary = session.scalar(
                select(Diagnosis).where(Diagnosis.consultation_id == row.id, Diagnosis.rank == 1)
            )
            summaries.append(
                ConsultationSummary(
                    id=row.id,
                    patient_id=row.patient_id,
                    patient_name=names[row.patient_id][0],
                    medical_record_number=names[row.patient_id][1],
                    practitioner_id=row.practitioner_id,
                    practitioner_name=practitioner.name if practitioner else "",
                    started_at=row.started_at,
                    status=row.status,
                    primary_diagnosis=None
                    if primary is None
                    else unseal(
                        self.fields,
                        "diagnoses",
                        "code",
                        primary.id,
                        primary.patient_id,
                        primary.code_enc,
                    ),
                )
            )
        return summaries

    def list_for_patient(
        self, actor: Actor, patient_id: str, limit: int = 50
    ) -> list[ConsultationSummary]:
        """The patient's consultations, newest first."""
        with self.database.transaction(write=True) as session:
            live_patient(session, actor, patient_id, Permission.CONSULTATIONS_READ)
            rows = list(
                session.scalars(
                    select(Consultation)
                    .where(Consultation.patient_id == patient_id)
                    .order_by(Consultation.started_at.desc(), Consultation.id)
                    .limit(max(1, min(limit, 200)))
                )
            )
            summaries = self._summaries(session, actor, rows)
            append_audit(
                session,
                actor,
                AuditEvent("consultation.list", patient_id=patient_id, detail=f"{len(rows)} found"),
            )
            return summaries

    def worklist(self, actor: Actor) -> Worklist:
        """The clinician's list: open drafts (own, and everyone's from the last 24 hours) and
        recent signed consultations (own, or everyone's for staff without a practitioner)."""
        now = self.clock()
        with self.database.transaction(write=True) as session:
            authorize(actor, Permission.CONSULTATIONS_READ)
            own = practitioner_of_actor(session, actor)
            drafts_query = select(Consultation).where(Consultation.status == DRAFT)
            recent_query = select(Consultation).where(
                Consultation.status == SIGNED,
                Consultation.started_at >= now - timedelta(days=30),
            )
            if own is not None:
                drafts_query = drafts_query.where(
                    or_(
                        Consultation.started_at >= now - timedelta(hours=24),
                        Consultation.practitioner_id == own.id,
                    )
                )
                recent_query = recent_query.where(Consultation.practitioner_id == own.id)
            else:
                drafts_query = drafts_query.where(
                    Consultation.started_at >= now - timedelta(hours=24)
                )
            drafts = list(
                session.scalars(drafts_query.order_by(Consultation.started_at).limit(100))
            )
            recent = list(
                session.scalars(recent_query.order_by(Consultation.started_at.desc()).limit(20))
            )
            patients = {
                r.patient_id
                for r in drafts + recent
                if (p := session.get(Patient, r.patient_id)) is not None and p.erased_at is None
            }
            drafts = [r for r in drafts if r.patient_id in patients]
            recent = [r for r in recent if r.patient_id in patients]
            result = Worklist(
                drafts=self._summaries(session, actor, drafts),
                recent=self._summaries(session, actor, recent),
            )
            append_audit(
                session,
                actor,
                AuditEvent(
                    "consultation.worklist",
                    detail=f"{len(result.drafts)} drafts, {len(result.recent)} recent",
                ),
            )
            return result
