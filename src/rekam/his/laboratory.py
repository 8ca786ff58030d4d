"""Laboratory: tests ordered from a consultation, the lab's worklist, results, corrections, trends.

Everything clinical is an envelope ciphertext bound to (table, column, row id, patient id):

- ``test_enc``: JSON ``{"code": <catalogue code or null>, "name": <name or free text>}``
- ``result_value_enc``: the value as entered ("13.2", "positif")
- ``result_unit_enc``: the unit
- ``reference_range_enc``: JSON ``{"low": float|null, "high": float|null, "text": str}``
- ``abnormal_flag_enc``: JSON ``{"flag": "H"|"L"|"N"|"A"|"", "computed": ..., "reason": str|null}``

Flags: for numeric results the flag is computed from the reference range (H above, L below,
N inside); for qualitative results it is N when the value is one the catalogue lists as normal
and A (abnormal) otherwise. The lab may override the computed flag, giving a reason.

A result is entered once. A wrong result is changed only by an explicit *correction*, which keeps
the previous value (value, unit, range, flag, who, when) in an encrypted ``amendments`` row with
the reason, and sets the order's status to ``corrected``; entering a result twice is refused.

Every call that reads or writes patient data appends exactly one audit entry in its transaction.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from rekam.crypto import FieldCipher, FieldContext
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from rekam.his.field_sealing import ensure_not_erased, patient_text, unseal
from rekam.his.lab_catalogue import CatalogueTest, Range, catalogue_test
from rekam.his.rbac import Actor, Permission, Role, authorize
from rekam.his.record_access import check_patient_access
from rekam.store import Database
from rekam.store.models import Amendment, Consultation, LabOrder, Patient, new_id
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

STATUSES = ("ordered", "resulted", "corrected")
FLAGS = ("H", "L", "N", "A")
MAX_TESTS_PER_ORDER = 20
MAX_LIST = 200


@dataclass(frozen=True)
class RequestedTest:
    """A catalogue code, or a free-text test name (then ``code`` is None)."""

    code: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ResultInput:
    value: str
    unit: str | None = None
    reference_low: float | None = None
    reference_high: float | None = None
    #: override of the computed flag ("H", "L", "N", "A"), with a reason
    flag: str | None = None
    flag_reason: str | None = None


@dataclass(frozen=True)
class ReferenceRange:
    low: float | None
    high: float | None
    text: str


@dataclass(frozen=True)
class LabResult:
    value: str
    numeric: float | None
    unit: str
    reference: ReferenceRange | None
    flag: str
    computed_flag: str
    flag_reason: str | None
    resulted_by: str | None
    resulted_at: datetime | None


@dataclass(frozen=True)
class ResultCorrection:
    corrected_at: datetime
    corrected_by: str
    previous_value: str
    previous_unit: str
    previous_flag: str
    reason: str


@dataclass(frozen=True)
class LabOrderView:
    id: str
    patient_id: str
    consultation_id: str
    medical_record_number: str
    patient_name: str
    test_code: str | None
    test_name: str
    status: str
    ordered_by: str
    ordered_at: datetime
    result: LabResult | None
    corrections: tuple[ResultCorrection, ...]
    version: int


@dataclass(frozen=True)
class TrendPoint:
    at: datetime
    value: str
    numeric: float | None
    flag: str


@dataclass(frozen=True)
class LabTrend:
    patient_id: str
    test: str
    test_name: str
    unit: str
    reference: ReferenceRange | None
    points: tuple[TrendPoint, ...]


def parse_number(value: str) -> float | None:
    """A numeric result ("13.2", "13,2", "1.250" is not guessed: only one separator) or None."""
    text = value.strip().replace(" ", "")
    if text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def numeric_flag(number: float, low: float | None, high: float | None) -> str:
    if high is not None and number > high:
        return "H"
    if low is not None and number < low:
        return "L"
    return "N"


def compute_flag(value: str, reference: ReferenceRange | None, test: CatalogueTest | None) -> str:
    """H/L/N for a numeric value against its range; N/A for a catalogued qualitative test;
    "" when nothing can be said (no range, unknown qualitative test)."""
    number = parse_number(value)
    if test is not None and test.kind == "qualitative":
        return "N" if value.strip().lower() in test.normal_values else "A"
    if number is not None and reference is not None:
        return numeric_flag(number, reference.low, reference.high)
    return ""


_ROW_ID = re.compile(r"[0-9A-Za-z-]{1,36}", re.ASCII)
_T = TypeVar("_T")


def get_row(session: Session, model: type[_T], row_id: str | None) -> _T | None:
    """The row with this id; None for ids that cannot exist (so odd input never reaches SQL)."""
    if row_id is None or not _ROW_ID.fullmatch(row_id):
        return None
    return session.get(model, row_id)


def single_line(value: str, field: str) -> str:
    """The text with its whitespace collapsed; refused if it holds control characters or unpaired
    surrogates, which cannot be stored."""
    text = " ".join(value.split())
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise ValidationFailed(
            "this text contains characters that cannot be stored",
            field=field,
            key="orders.text_invalid",
        )
    return text


def trend_key(code: str | None, name: str) -> str:
    return code if code else " ".join(name.lower().split())


class LaboratoryService:
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
    def for_clinic(cls, clinic: Clinic) -> LaboratoryService:
        return cls(clinic.database, clinic.fields)

    # Encryption --------------------------------------------------------------------------------

    def _seal(self, table: str, column: str, row_id: str, patient_id: str, value: str) -> bytes:
        return self.fields.encrypt_field(value, FieldContext(table, column, row_id, patient_id))

    def _open(self, table: str, column: str, row_id: str, patient_id: str, sealed: bytes) -> str:
        return unseal(self.fields, table, column, row_id, patient_id, sealed) or ""

    # Ordering ----------------------------------------------------------------------------------

    @staticmethod
    def _validated_tests(tests: list[RequestedTest]) -> list[tuple[str | None, str]]:
        if not tests:
            raise ValidationFailed("choose at least one test", field="tests", key="lab.no_tests")
        if len(tests) > MAX_TESTS_PER_ORDER:
            raise ValidationFailed(
                f"at most {MAX_TESTS_PER_ORDER} tests per order",
                field="tests",
                key="lab.too_many_tests",
                limit=MAX_TESTS_PER_ORDER,
            )
        clean: list[tuple[str | None, str]] = []
        for test in tests:
            if test.code:
                known = catalogue_test(test.code.strip())
                if known is None:
                    raise ValidationFailed(
                        "this test is not in the catalogue", field="tests", key="lab.unknown_test"
                    )
                clean.append((known.code, known.name_en))
                continue
            name = single_line(test.name or "", "tests")
            if not 2 <= len(name) <= 200:
                raise ValidationFailed(
                    "name the test (2–200 characters)", field="tests", key="lab.test_name"
                )
            clean.append((None, name))
        return clean

    def order_tests(
        self,
        actor: Actor,
        consultation_id: str,
        tests: list[RequestedTest],
        patient_id: str | None = None,
    ) -> list[LabOrderView]:
        """Order tests from a consultation; with ``patient_id``, the consultation must be that
        patient's."""
        authorize(actor, Permission.LAB_ORDER)
        clean = self._validated_tests(tests)
        now = self.clock()
        with self.database.transaction(write=True) as session:
            consultation = get_row(session, Consultation, consultation_id)
            if consultation is None:
                raise NotFound("no such consultation", key="orders.consultation_not_found")
            if patient_id is not None and consultation.patient_id != patient_id:
                raise ValidationFailed(
                    "this consultation belongs to another patient",
                    field="consultation_id",
                    key="lab.wrong_patient",
                )
            patient = check_patient_access(
                session, actor, consultation.patient_id, Permission.LAB_ORDER
            )
            ensure_not_erased(patient)
            rows = []
            for code, name in clean:
                order_id = new_id()
                row = LabOrder(
                    id=order_id,
                    consultation_id=consultation.id,
                    patient_id=patient.id,
                    test_enc=self._seal(
                        "lab_orders",
                        "test",
                        order_id,
                        patient.id,
                        json.dumps({"code": code, "name": name}, ensure_ascii=False),
                    ),
                    status="ordered",
                    ordered_by=_who(actor),
                    ordered_at=now,
                )
                session.add(row)
                rows.append(row)
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent(
                    "lab.order",
                    patient_id=patient.id,
                    record=consultation.id,
                    detail="orders " + ",".join(r.id for r in rows),
                ),
            )
            return [self._view(session, r, patient, with_corrections=False) for r in rows]

    # Reading -----------------------------------------------------------------------------------

    def _test_of(self, row: LabOrder) -> tuple[str | None, str]:
        raw = json.loads(self._open("lab_orders", "test", row.id, row.patient_id, row.test_enc))
        code = raw.get("code")
        return (str(code) if code else None), str(raw.get("name", ""))

    def _result_of(self, row: LabOrder) -> LabResult | None:
        if row.result_value_enc is None:
            return None

        def opened(column: str, sealed: bytes | None) -> str | None:
            if sealed is None:
                return None
            return self._open("lab_orders", column, row.id, row.patient_id, sealed)

        value = opened("result_value", row.result_value_enc) or ""
        reference: ReferenceRange | None = None
        raw_range = opened("reference_range", row.reference_range_enc)
        if raw_range:
            parsed = json.loads(raw_range)
            reference = ReferenceRange(
                parsed.get("low"), parsed.get("high"), parsed.get("text", "")
            )
        raw_flag = json.loads(opened("abnormal_flag", row.abnormal_flag_enc) or "{}")
        return LabResult(
            value=value,
            numeric=parse_number(value),
            unit=opened("result_unit", row.result_unit_enc) or "",
            reference=reference,
            flag=str(raw_flag.get("flag", "")),
            computed_flag=str(raw_flag.get("computed", "")),
            flag_reason=raw_flag.get("reason"),
            resulted_by=row.resulted_by,
            resulted_at=row.resulted_at,
        )

    def _corrections_of(self, session: Session, row: LabOrder) -> tuple[ResultCorrection, ...]:
        found = []
        for amendment in session.scalars(
            select(Amendment)
            .where(Amendment.record_table == "lab_orders", Amendment.record_id == row.id)
            .order_by(Amendment.amended_at)
        ):
            old = json.loads(
                self._open(
                    "amendments",
                    "old_value",
                    amendment.id,
                    row.patient_id,
                    amendment.old_value_enc or b"",
                )
            )
            reason = self._open(
                "amendments", "reason", amendment.id, row.patient_id, amendment.reason_enc
            )
            found.append(
                ResultCorrection(
                    corrected_at=amendment.amended_at,
                    corrected_by=amendment.amended_by,
                    previous_value=str(old.get("value", "")),
                    previous_unit=str(old.get("unit", "")),
                    previous_flag=str(old.get("flag", "")),
                    reason=reason,
                )
            )
        return tuple(found)

    def _view(
        self, session: Session, row: LabOrder, patient: Patient, with_corrections: bool = True
    ) -> LabOrderView:
        code, name = self._test_of(row)
        return LabOrderView(
            id=row.id,
            patient_id=row.patient_id,
            consultation_id=row.consultation_id,
            medical_record_number=patient.medical_record_number,
            patient_name=patient_text(self.fields, patient, "name") or "",
            test_code=code,
            test_name=name,
            status=row.status,
            ordered_by=row.ordered_by,
            ordered_at=row.ordered_at,
            result=self._result_of(row),
            corrections=self._corrections_of(session, row) if with_corrections else (),
            version=row.version,
        )

    def get_order(self, actor: Actor, order_id: str) -> LabOrderView:
        with self.database.transaction(write=True) as session:
            row = get_row(session, LabOrder, order_id)
            if row is None:
                raise NotFound("no such lab order", key="lab.not_found")
            try:
                patient = check_patient_access(session, actor, row.patient_id, Permission.LAB_READ)
            except NotFound as exc:  # a patient probing other ids learns nothing
                raise NotFound("no such lab order", key="lab.not_found") from exc
            ensure_not_erased(patient)
            append_audit(
                session, actor, AuditEvent("lab.read", patient_id=row.patient_id, record=row.id)
            )
            return self._view(session, row, patient)

    def worklist(
        self, actor: Actor, status: str = "ordered", limit: int = 100
    ) -> list[LabOrderView]:
        """Orders in ``status`` across patients, oldest first (the lab's queue)."""
        authorize(actor, Permission.LAB_RESULT)
        _check_status(status)
        with self.database.transaction(write=True) as session:
            found = self._listing(session, actor, Permission.LAB_RESULT, status, limit, None)
            append_audit(
                session,
                actor,
                AuditEvent("lab.worklist", detail=f"{len(found)} orders, status {status}"),
            )
            return found

    def recent_results(self, actor: Actor, limit: int = 50) -> list[LabOrderView]:
        """Latest results: a doctor sees those of the tests they ordered; nurses and lab staff
        see the clinic's latest results (each only for patients in their care)."""
        authorize(actor, Permission.LAB_READ)
        with self.database.transaction(write=True) as session:
            found = self._recent(session, actor, limit)
            append_audit(
                session, actor, AuditEvent("lab.read", detail=f"{len(found)} recent results")
            )
            return found

    def overview(
        self, actor: Actor, limit: int = 50
    ) -> tuple[list[LabOrderView], list[LabOrderView]]:
        """The lab page in one call (and one audit entry): the pending worklist (empty for
        those who do not enter results) and the recent results."""
        authorize(actor, Permission.LAB_READ)
        with self.database.transaction(write=True) as session:
            pending: list[LabOrderView] = []
            if actor.can(Permission.LAB_RESULT):
                pending = self._listing(
                    session, actor, Permission.LAB_RESULT, "ordered", MAX_LIST, None
                )
            recent = self._recent(session, actor, limit)
            append_audit(
                session,
                actor,
                AuditEvent(
                    "lab.read", detail=f"{len(pending)} pending, {len(recent)} recent results"
                ),
            )
            return pending, recent

    def _recent(self, session: Session, actor: Actor, limit: int) -> list[LabOrderView]:
        ordered_by = _who(actor) if actor.role is Role.DOCTOR else None
        return self._listing(session, actor, Permission.LAB_READ, None, limit, ordered_by)

    def _listing(
        self,
        session: Session,
        actor: Actor,
        permission: Permission,
        status: str | None,
        limit: int,
        ordered_by: str | None,
    ) -> list[LabOrderView]:
        limit = max(1, min(limit, MAX_LIST))
        query = select(LabOrder, Patient).join(Patient, Patient.id == LabOrder.patient_id)
        query = query.where(Patient.erased_at.is_(None))
        if status is not None:
            query = query.where(LabOrder.status == status).order_by(LabOrder.ordered_at)
        else:
            query = query.where(LabOrder.status != "ordered").order_by(LabOrder.resulted_at.desc())
        if ordered_by is not None:
            query = query.where(LabOrder.ordered_by == ordered_by)
        rows = [
            (row, patient)
            for row, patient in session.execute(query.limit(limit)).all()
            if may_access(session, actor, patient.id, permission)
        ]
        return [self._view(session, row, patient, with_corrections=False) for row, patient in rows]

    # Results -----------------------------------------------------------------------------------

    def _reference_for(
        self, patient: Patient, test: CatalogueTest | None, data: ResultInput, today: date
    ) -> ReferenceRange | None:
        if data.reference_low is not None or data.reference_high is not None:
            for bound in (data.reference_low, data.reference_high):
                if bound is not None and not math.isfinite(bound):
                    raise ValidationFailed(
                        "the reference range is not a number",
                        field="reference_low",
                        key="lab.reference_range",
                    )
            if (
                data.reference_low is not None
                and data.reference_high is not None
                and data.reference_low > data.reference_high
            ):
                raise ValidationFailed(
                    "the reference range's lower bound is above its upper bound",
                    field="reference_low",
                    key="lab.reference_range",
                )
            given = Range(data.reference_low, data.reference_high)
            return ReferenceRange(given.low, given.high, given.text)
        if test is None or test.kind != "numeric":
            return None
        sex = patient_text(self.fields, patient, "sex")
        born = patient_text(self.fields, patient, "birth_date")
        adult = True
        if born:
            birth = date.fromisoformat(born)
            age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
            adult = age >= 18
        found = test.reference_for(sex, adult)
        return ReferenceRange(found.low, found.high, found.text) if found else None

    @staticmethod
    def _validated_result(data: ResultInput, test: CatalogueTest | None) -> ResultInput:
        value = single_line(data.value, "value")
        if not 1 <= len(value) <= 100:
            raise ValidationFailed(
                "enter the result (1–100 characters)", field="value", key="lab.value_required"
            )
        if test is not None and test.kind == "numeric" and parse_number(value) is None:
            raise ValidationFailed(
                "this test's result is a number", field="value", key="lab.value_number"
            )
        unit = single_line(data.unit or "", "unit")
        if len(unit) > 30:
            raise ValidationFailed(
                "the unit is longer than 30 characters",
                field="unit",
                key="field.too_long",
                limit=30,
            )
        flag = (data.flag or "").strip().upper() or None
        reason = single_line(data.flag_reason or "", "flag_reason") or None
        if flag is not None and flag not in FLAGS:
            raise ValidationFailed("the flag is H, L, N or A", field="flag", key="lab.flag_invalid")
        if reason is not None and len(reason) > 500:
            raise ValidationFailed(
                "the reason is longer than 500 characters",
                field="flag_reason",
                key="field.too_long",
                limit=500,
            )
        return ResultInput(
            value=value,
            unit=unit or (test.unit if test else ""),
            reference_low=data.reference_low,
            reference_high=data.reference_high,
            flag=flag,
            flag_reason=reason,
        )

    def _write_result(
        self, row: LabOrder, patient: Patient, data: ResultInput, test: CatalogueTest | None
    ) -> None:
        now = self.clock()
        reference = self._reference_for(patient, test, data, now.date())
        computed = compute_flag(data.value, reference, test)
        flag = computed
        reason = None
        if data.flag is not None and data.flag != computed:
            if not data.flag_reason or len(data.flag_reason) < 3:
                raise ValidationFailed(
                    "give the reason for changing the computed flag",
                    field="flag_reason",
                    key="lab.flag_reason_required",
                )
            flag, reason = data.flag, data.flag_reason

        def seal(column: str, value: str) -> bytes:
            return self._seal("lab_orders", column, row.id, row.patient_id, value)

        row.result_value_enc = seal("result_value", data.value)
        row.result_unit_enc = seal("result_unit", data.unit or "")
        row.reference_range_enc = (
            seal(
                "reference_range",
                json.dumps(
                    {"low": reference.low, "high": reference.high, "text": reference.text},
                    ensure_ascii=False,
                ),
            )
            if reference is not None
            else None
        )
        row.abnormal_flag_enc = seal(
            "abnormal_flag", json.dumps({"flag": flag, "computed": computed, "reason": reason})
        )
        row.resulted_at = now

    def _order_for_result(
        self, session: Session, actor: Actor, order_id: str
    ) -> tuple[LabOrder, Patient, CatalogueTest | None]:
        row = get_row(session, LabOrder, order_id)
        if row is None:
            raise NotFound("no such lab order", key="lab.not_found")
        patient = check_patient_access(session, actor, row.patient_id, Permission.LAB_RESULT)
        ensure_not_erased(patient)
        code, _ = self._test_of(row)
        return row, patient, catalogue_test(code) if code else None

    def enter_result(self, actor: Actor, order_id: str, data: ResultInput) -> LabOrderView:
        """Record the result of an ordered test (once; see ``correct_result``)."""
        authorize(actor, Permission.LAB_RESULT)
        with self.database.transaction(write=True) as session:
            row, patient, test = self._order_for_result(session, actor, order_id)
            if row.status != "ordered":
                raise Conflict(
                    "this test already has a result; enter a correction instead",
                    key="lab.already_resulted",
                )
            clean = self._validated_result(data, test)
            self._write_result(row, patient, clean, test)
            row.status = "resulted"
            row.resulted_by = _who(actor)
            session.flush()
            append_audit(
                session, actor, AuditEvent("lab.result", patient_id=row.patient_id, record=row.id)
            )
            return self._view(session, row, patient)

    def correct_result(
        self,
        actor: Actor,
        order_id: str,
        data: ResultInput,
        reason: str,
        expected_version: int,
    ) -> LabOrderView:
        """Replace a result, keeping the previous one (encrypted) with the reason."""
        authorize(actor, Permission.LAB_RESULT)
        reason = single_line(reason, "reason")
        if not 5 <= len(reason) <= 500:
            raise ValidationFailed(
                "give the reason for the correction (5–500 characters)",
                field="reason",
                key="lab.correction_reason_invalid",
            )
        with self.database.transaction(write=True) as session:
            row, patient, test = self._order_for_result(session, actor, order_id)
            if row.status == "ordered":
                raise Conflict(
                    "this test has no result yet to correct", key="lab.nothing_to_correct"
                )
            if row.version != expected_version:
                raise Conflict(
                    "someone else changed this result meanwhile; reload and try again",
                    key="error.409",
                )
            clean = self._validated_result(data, test)
            previous = self._result_of(row)
            assert previous is not None
            amendment_id = new_id()
            old = {
                "value": previous.value,
                "unit": previous.unit,
                "reference": previous.reference.text if previous.reference else "",
                "flag": previous.flag,
                "resulted_by": previous.resulted_by,
                "resulted_at": previous.resulted_at.isoformat() if previous.resulted_at else None,
            }
            self._write_result(row, patient, clean, test)
            new = {"value": clean.value, "unit": clean.unit}
            session.add(
                Amendment(
                    id=amendment_id,
                    record_table="lab_orders",
                    record_id=row.id,
                    patient_id=row.patient_id,
                    field="result",
                    old_value_enc=self._seal(
                        "amendments",
                        "old_value",
                        amendment_id,
                        row.patient_id,
                        json.dumps(old, ensure_ascii=False),
                    ),
                    new_value_enc=self._seal(
                        "amendments",
                        "new_value",
                        amendment_id,
                        row.patient_id,
                        json.dumps(new, ensure_ascii=False),
                    ),
                    reason_enc=self._seal(
                        "amendments", "reason", amendment_id, row.patient_id, reason
                    ),
                    amended_by=_who(actor),
                    amended_at=row.resulted_at or self.clock(),
                )
            )
            row.status = "corrected"
            row.resulted_by = _who(actor)
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent(
                    "lab.result_correct",
                    patient_id=row.patient_id,
                    record=row.id,
                    detail=f"amendment {amendment_id}",
                ),
            )
            return self._view(session, row, patient)

    # Trend -------------------------------------------------------------------------------------

    def trend(self, actor: Actor, patient_id: str, test: str) -> LabTrend:
        """A patient's results of one test (catalogue code or free-text name), oldest first."""
        wanted = test.strip() if catalogue_test(test.strip()) else trend_key(None, test)
        if not 1 <= len(wanted) <= 200:
            raise ValidationFailed("name the test", field="test", key="lab.test_name")
        if not _ROW_ID.fullmatch(patient_id):
            raise NotFound("no such patient", key="patient.not_found")
        with self.database.transaction(write=True) as session:
            patient = check_patient_access(session, actor, patient_id, Permission.LAB_READ)
            ensure_not_erased(patient)
            rows = list(
                session.scalars(
                    select(LabOrder)
                    .where(LabOrder.patient_id == patient_id, LabOrder.status != "ordered")
                    .order_by(LabOrder.resulted_at, LabOrder.id)
                )
            )
            append_audit(
                session,
                actor,
                AuditEvent("lab.read", patient_id=patient_id, detail="trend"),
            )
        points: list[TrendPoint] = []
        name = test
        unit = ""
        reference: ReferenceRange | None = None
        for row in rows:
            code, test_name = self._test_of(row)
            if trend_key(code, test_name) != wanted:
                continue
            result = self._result_of(row)
            if result is None or result.resulted_at is None:
                continue
            name, unit, reference = test_name, result.unit, result.reference or reference
            points.append(TrendPoint(result.resulted_at, result.value, result.numeric, result.flag))
        known = catalogue_test(wanted)
        if known is not None:
            name = known.name_en
        return LabTrend(patient_id, wanted, name, unit, reference, tuple(points))


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValidationFailed(
            "unknown status", field="status", key="lab.status_invalid", choices=", ".join(STATUSES)
        )


def may_access(session: Session, actor: Actor, patient_id: str, permission: Permission) -> bool:
    """Whether ``check_patient_access`` admits the actor (listings leave out the patients that
    are not in the actor's care instead of failing as a whole)."""
    try:
        check_patient_access(session, actor, patient_id, permission)
    except (PermissionDenied, NotFound):
        return False
    return True


def _who(actor: Actor) -> str:
    """What is stored as 'by': the user id, or the name of a system actor."""
    return (actor.user_id or actor.username)[:36]
