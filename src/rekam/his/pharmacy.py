"""Pharmacy: the formulary, prescriptions from a consultation, allergy warnings, dispensing.

The formulary (``medicines``) is reference data, stored in clear. A prescription's details (dose,
route, frequency, duration, instructions) are one encrypted JSON value (``details_enc``); the
quantity stays in clear because stock is counted from it. An allergy override reason is
encrypted (``allergy_override_enc``).

Allergy warning: the patient's recorded allergies (free text, comma/semicolon separated) are
decrypted and matched against the medicine's name. An entry matches when it names the medicine
itself (in English or Indonesian spelling, see ``SAME_MEDICINE``) or a class the medicine belongs
to (``ALLERGY_CLASSES``): for example "penisilin" or "penicillin" matches amoxicillin /
amoksisilin and ampicillin / ampisilin, and "sulfa" matches cotrimoxazole / kotrimoksazol. A match
refuses the prescription with ``AllergyWarning`` unless the prescriber confirms with a reason.

Dispensing decrements stock with a guarded ``UPDATE ... SET stock = stock - q WHERE stock >= q``
in the same transaction that marks the prescription dispensed (itself a guarded update on its
status), so concurrent dispensers can neither oversell nor dispense one prescription twice.
Stock receipts are an atomic increment; formulary edits (name, form, strength, active) use
optimistic concurrency on ``version``. Stock changes do not bump ``version``, so a dispense does
not invalidate a pharmacist's open edit form.

Every call that reads or writes patient data appends exactly one audit entry in its transaction;
formulary changes are audited too (without a patient).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, select, update

from rekam.crypto import FieldCipher, FieldContext
from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, ValidationFailed
from rekam.his.field_sealing import ensure_not_erased, patient_text, unseal
from rekam.his.laboratory import get_row, may_access, single_line
from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.record_access import check_patient_access
from rekam.store import Database
from rekam.store.models import Consultation, Medicine, Patient, Prescription, new_id
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

STATUSES = ("prescribed", "dispensed")
ROUTES = (
    "oral",
    "sublingual",
    "topical",
    "inhalation",
    "intravenous",
    "intramuscular",
    "subcutaneous",
    "rectal",
    "vaginal",
    "ophthalmic",
    "otic",
    "nasal",
)
MAX_QUANTITY = 10_000
MAX_STOCK_RECEIPT = 1_000_000
MAX_LIST = 200

#: Allergy classes: the words that name the class in an allergy entry, and the medicines (both
#: spellings) that belong to it. Matching is on whole words of the medicine's name.
ALLERGY_CLASSES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "penicillin": (
        frozenset({"penisilin", "penicillin", "penicilin", "penisillin", "betalaktam"}),
        frozenset(
            {
                "penicillin",
                "penisilin",
                "amoxicillin",
                "amoksisilin",
                "amoxycillin",
                "amoxisilin",
                "ampicillin",
                "ampisilin",
                "amoxiclav",
                "benzathine",
                "benzatin",
                "phenoxymethylpenicillin",
                "fenoksimetilpenisilin",
                "cloxacillin",
                "kloksasilin",
                "dicloxacillin",
                "dikloksasilin",
                "piperacillin",
                "piperasilin",
            }
        ),
    ),
    "sulfonamide": (
        frozenset({"sulfa", "sulfonamid", "sulfonamide", "sulphonamide", "sulfonamida"}),
        frozenset(
            {
                "cotrimoxazole",
                "kotrimoksazol",
                "cotrimoxazol",
                "kotrimoxazol",
                "sulfamethoxazole",
                "sulfametoksazol",
                "sulfadiazine",
                "sulfadiazin",
                "sulfasalazine",
                "sulfasalazin",
                "sulfadoxine",
                "sulfadoksin",
            }
        ),
    ),
    "cephalosporin": (
        frozenset({"sefalosporin", "cephalosporin", "cefalosporin"}),
        frozenset(
            {
                "cefadroxil",
                "sefadroksil",
                "cefixime",
                "sefiksim",
                "ceftriaxone",
                "seftriakson",
                "cefotaxime",
                "sefotaksim",
                "cephalexin",
                "sefaleksin",
                "cefalexin",
            }
        ),
    ),
    "nsaid": (
        frozenset({"nsaid", "nsaids", "oains", "ains", "antiinflamasi"}),
        frozenset(
            {
                "ibuprofen",
                "mefenamic",
                "mefenamat",
                "diclofenac",
                "diklofenak",
                "naproxen",
                "naproksen",
                "piroxicam",
                "piroksikam",
                "meloxicam",
                "meloksikam",
                "ketoprofen",
                "aspirin",
                "asetosal",
                "acetylsalicylic",
            }
        ),
    ),
    "quinolone": (
        frozenset({"kuinolon", "quinolone", "fluorokuinolon", "fluoroquinolone"}),
        frozenset(
            {
                "ciprofloxacin",
                "siprofloksasin",
                "levofloxacin",
                "levofloksasin",
                "ofloxacin",
                "ofloksasin",
            }
        ),
    ),
    "macrolide": (
        frozenset({"makrolid", "macrolide"}),
        frozenset(
            {
                "erythromycin",
                "eritromisin",
                "azithromycin",
                "azitromisin",
                "clarithromycin",
                "klaritromisin",
            }
        ),
    ),
    "tetracycline": (
        frozenset({"tetrasiklin", "tetracycline"}),
        frozenset({"tetracycline", "tetrasiklin", "doxycycline", "doksisiklin"}),
    ),
    "pyrazolone": (
        frozenset({"pirazolon", "pyrazolone", "metamizol", "metamizole", "antalgin"}),
        frozenset({"metamizole", "metamizol", "antalgin", "dipyrone", "dipiron"}),
    ),
}

#: The same medicine under its English and Indonesian names.
SAME_MEDICINE: tuple[frozenset[str], ...] = (
    frozenset({"amoxicillin", "amoksisilin", "amoxycillin", "amoxisilin"}),
    frozenset({"ampicillin", "ampisilin"}),
    frozenset({"cotrimoxazole", "kotrimoksazol", "cotrimoxazol", "kotrimoxazol"}),
    frozenset({"paracetamol", "parasetamol", "acetaminophen", "asetaminofen"}),
    frozenset({"aspirin", "asetosal", "acetylsalicylic"}),
    frozenset({"ciprofloxacin", "siprofloksasin"}),
    frozenset({"ceftriaxone", "seftriakson"}),
    frozenset({"cefadroxil", "sefadroksil"}),
    frozenset({"metamizole", "metamizol", "antalgin", "dipyrone", "dipiron"}),
    frozenset({"diclofenac", "diklofenak"}),
    frozenset({"mefenamic", "mefenamat"}),
    frozenset({"erythromycin", "eritromisin"}),
    frozenset({"azithromycin", "azitromisin"}),
    frozenset({"doxycycline", "doksisiklin"}),
)


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.lower()).split()


def allergy_entries(allergies: str | None) -> list[str]:
    if not allergies:
        return []
    pieces = allergies.replace(";", ",").replace("\n", ",").split(",")
    return [" ".join(p.split()) for p in pieces if p.strip()]


def matching_allergy(allergies: str | None, medicine_name: str) -> str | None:
    """The first allergy entry that matches the medicine (by name or class), else None."""
    medicine_words = set(_words(medicine_name))
    # "co-amoxiclav" and similar compounds: also match the words glued without the hyphen
    medicine_words |= {w for w in _words(medicine_name.replace("-", "")) if len(w) > 4}
    for entry in allergy_entries(allergies):
        names: set[str] = set()
        for word in _words(entry):
            names.add(word)
            for group in SAME_MEDICINE:
                if word in group:
                    names |= group
            for class_names, members in ALLERGY_CLASSES.values():
                if word in class_names:
                    names |= members
        names = {n for n in names if len(n) >= 4}
        if medicine_words & names:
            return entry
    return None


class AllergyWarning(Conflict):
    """The medicine matches a recorded allergy; confirm with a reason to prescribe anyway."""

    code = "allergy_warning"


@dataclass(frozen=True)
class MedicineInput:
    name: str
    form: str
    strength: str
    active: bool = True


@dataclass(frozen=True)
class MedicineView:
    id: str
    name: str
    form: str
    strength: str
    stock: int
    active: bool
    version: int

    @property
    def label(self) -> str:
        return f"{self.name} {self.strength} ({self.form})"


@dataclass(frozen=True)
class PrescriptionInput:
    medicine_id: str
    dose: str
    route: str
    frequency: str
    duration: str
    quantity: int
    instructions: str | None = None
    allergy_override_reason: str | None = None


@dataclass(frozen=True)
class PrescriptionView:
    id: str
    patient_id: str
    consultation_id: str
    medical_record_number: str
    patient_name: str
    medicine_id: str
    medicine_name: str
    medicine_form: str
    medicine_strength: str
    quantity: int
    dose: str
    route: str
    frequency: str
    duration: str
    instructions: str | None
    status: str
    prescribed_by: str
    prescribed_at: datetime
    allergy_override_reason: str | None
    dispensed_by: str | None
    dispensed_at: datetime | None
    version: int


def _medicine_view(row: Medicine) -> MedicineView:
    return MedicineView(
        row.id, row.name, row.form, row.strength, row.stock, row.active, row.version
    )


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class PharmacyService:
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
    def for_clinic(cls, clinic: Clinic) -> PharmacyService:
        return cls(clinic.database, clinic.fields)

    # Encryption --------------------------------------------------------------------------------

    def _seal(self, table: str, column: str, row_id: str, patient_id: str, value: str) -> bytes:
        return self.fields.encrypt_field(value, FieldContext(table, column, row_id, patient_id))

    def _open(self, table: str, column: str, row_id: str, patient_id: str, sealed: bytes) -> str:
        return unseal(self.fields, table, column, row_id, patient_id, sealed) or ""

    # Formulary ---------------------------------------------------------------------------------

    @staticmethod
    def _validated_medicine(data: MedicineInput) -> MedicineInput:
        clean = {}
        for column, low, high in (("name", 2, 200), ("form", 1, 60), ("strength", 1, 60)):
            value = single_line(str(getattr(data, column)), column)
            if not low <= len(value) <= high:
                raise ValidationFailed(
                    f"{column} must have {low}–{high} characters",
                    field=column,
                    key=f"medicine.{column}_invalid",
                )
            clean[column] = value
        return MedicineInput(active=bool(data.active), **clean)

    def list_medicines(self, actor: Actor, include_inactive: bool = False) -> list[MedicineView]:
        """The formulary (any staff member may read it: it is not patient data)."""
        authorize(actor, Permission.PRACTITIONERS_READ)
        query = select(Medicine).order_by(Medicine.name, Medicine.strength)
        if not include_inactive:
            query = query.where(Medicine.active.is_(True))
        with self.database.transaction() as session:
            return [_medicine_view(m) for m in session.scalars(query)]

    def get_medicine(self, actor: Actor, medicine_id: str) -> MedicineView:
        authorize(actor, Permission.PRACTITIONERS_READ)
        with self.database.transaction() as session:
            row = get_row(session, Medicine, medicine_id)
            if row is None:
                raise NotFound("no such medicine", key="medicine.not_found")
            return _medicine_view(row)

    def create_medicine(self, actor: Actor, data: MedicineInput, stock: int = 0) -> MedicineView:
        authorize(actor, Permission.FORMULARY_WRITE)
        clean = self._validated_medicine(data)
        if not 0 <= stock <= MAX_STOCK_RECEIPT:
            raise ValidationFailed(
                "the opening stock is out of range", field="stock", key="medicine.stock"
            )
        with self.database.transaction(write=True) as session:
            duplicate = session.scalar(
                select(Medicine.id).where(
                    Medicine.name == clean.name,
                    Medicine.form == clean.form,
                    Medicine.strength == clean.strength,
                )
            )
            if duplicate is not None:
                raise Conflict(
                    "this medicine, form and strength is already in the formulary",
                    field="name",
                    key="medicine.duplicate",
                )
            row = Medicine(
                id=new_id(),
                name=clean.name,
                form=clean.form,
                strength=clean.strength,
                stock=stock,
                active=clean.active,
            )
            session.add(row)
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent("medicine.create", record=row.id, detail=f"stock {stock}"),
            )
            return _medicine_view(row)

    def update_medicine(
        self, actor: Actor, medicine_id: str, data: MedicineInput, expected_version: int
    ) -> MedicineView:
        """Change name, form, strength or active; refused if someone else saved meanwhile."""
        authorize(actor, Permission.FORMULARY_WRITE)
        clean = self._validated_medicine(data)
        with self.database.transaction(write=True) as session:
            row = get_row(session, Medicine, medicine_id)
            if row is None:
                raise NotFound("no such medicine", key="medicine.not_found")
            if row.version != expected_version:
                raise Conflict(
                    "someone else changed this medicine meanwhile; reload and try again",
                    key="error.409",
                )
            row.name, row.form, row.strength, row.active = (
                clean.name,
                clean.form,
                clean.strength,
                clean.active,
            )
            session.flush()  # the version check of the mapper guards a concurrent save too
            append_audit(session, actor, AuditEvent("medicine.update", record=row.id))
            return _medicine_view(row)

    def receive_stock(self, actor: Actor, medicine_id: str, quantity: int) -> MedicineView:
        """Add delivered stock (an atomic increment: concurrent receipts all count)."""
        authorize(actor, Permission.FORMULARY_WRITE)
        if not 1 <= quantity <= MAX_STOCK_RECEIPT:
            raise ValidationFailed(
                f"the quantity received must be 1–{MAX_STOCK_RECEIPT}",
                field="quantity",
                key="medicine.receipt_quantity",
                limit=MAX_STOCK_RECEIPT,
            )
        with self.database.transaction(write=True) as session:
            if get_row(session, Medicine, medicine_id) is None:
                raise NotFound("no such medicine", key="medicine.not_found")
            changed = session.execute(
                update(Medicine)
                .where(Medicine.id == medicine_id)
                .values(stock=Medicine.stock + quantity)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(changed) != 1:
                raise NotFound("no such medicine", key="medicine.not_found")
            append_audit(
                session,
                actor,
                AuditEvent("medicine.receive", record=medicine_id, detail=f"+{quantity}"),
            )
            row = session.get(Medicine, medicine_id, populate_existing=True)
            assert row is not None
            return _medicine_view(row)

    # Prescriptions -----------------------------------------------------------------------------

    @staticmethod
    def _validated_prescription(data: PrescriptionInput) -> PrescriptionInput:
        texts: dict[str, str] = {}
        for column, high in (("dose", 100), ("frequency", 100), ("duration", 60)):
            value = single_line(str(getattr(data, column)), column)
            if not 1 <= len(value) <= high:
                raise ValidationFailed(
                    f"{column} must have 1–{high} characters",
                    field=column,
                    key=f"prescription.{column}_invalid",
                    limit=high,
                )
            texts[column] = value
        route = data.route.strip().lower()
        if route not in ROUTES:
            raise ValidationFailed(
                "unknown route",
                field="route",
                key="prescription.route_invalid",
                choices=", ".join(ROUTES),
            )
        if not isinstance(data.quantity, int) or not 1 <= data.quantity <= MAX_QUANTITY:
            raise ValidationFailed(
                f"the quantity must be 1–{MAX_QUANTITY}",
                field="quantity",
                key="prescription.quantity",
                limit=MAX_QUANTITY,
            )
        instructions = single_line(data.instructions or "", "instructions") or None
        if instructions is not None and len(instructions) > 500:
            raise ValidationFailed(
                "the instructions are longer than 500 characters",
                field="instructions",
                key="field.too_long",
                limit=500,
            )
        override = (
            single_line(data.allergy_override_reason or "", "allergy_override_reason") or None
        )
        if override is not None and not 5 <= len(override) <= 500:
            raise ValidationFailed(
                "the allergy override reason must have 5–500 characters",
                field="allergy_override_reason",
                key="prescription.override_reason_invalid",
            )
        return PrescriptionInput(
            medicine_id=data.medicine_id,
            route=route,
            quantity=data.quantity,
            instructions=instructions,
            allergy_override_reason=override,
            **texts,
        )

    def prescribe(
        self,
        actor: Actor,
        consultation_id: str,
        data: PrescriptionInput,
        patient_id: str | None = None,
    ) -> PrescriptionView:
        """One prescription line from a consultation. Refused with ``AllergyWarning`` if the
        medicine matches the patient's recorded allergies, unless an override reason is given."""
        authorize(actor, Permission.PRESCRIPTIONS_WRITE)
        clean = self._validated_prescription(data)
        now = self.clock()
        with self.database.transaction(write=True) as session:
            consultation = get_row(session, Consultation, consultation_id)
            if consultation is None:
                raise NotFound("no such consultation", key="orders.consultation_not_found")
            if patient_id is not None and consultation.patient_id != patient_id:
                raise ValidationFailed(
                    "this consultation belongs to another patient",
                    field="consultation_id",
                    key="prescription.wrong_patient",
                )
            patient = check_patient_access(
                session, actor, consultation.patient_id, Permission.PRESCRIPTIONS_WRITE
            )
            ensure_not_erased(patient)
            medicine = get_row(session, Medicine, clean.medicine_id)
            if medicine is None or not medicine.active:
                raise ValidationFailed(
                    "choose a medicine from the formulary",
                    field="medicine_id",
                    key="prescription.medicine",
                )
            allergy = matching_allergy(
                patient_text(self.fields, patient, "allergies"), medicine.name
            )
            if allergy is not None and clean.allergy_override_reason is None:
                raise AllergyWarning(
                    f"{medicine.name} matches the recorded allergy '{allergy}'; "
                    "confirm with a reason to prescribe it anyway",
                    key="prescription.allergy_warning",
                    allergy=allergy,
                    medicine=medicine.name,
                )
            prescription_id = new_id()
            details = {
                "dose": clean.dose,
                "route": clean.route,
                "frequency": clean.frequency,
                "duration": clean.duration,
                "instructions": clean.instructions,
            }
            row = Prescription(
                id=prescription_id,
                consultation_id=consultation.id,
                patient_id=patient.id,
                medicine_id=medicine.id,
                quantity=clean.quantity,
                details_enc=self._seal(
                    "prescriptions",
                    "details",
                    prescription_id,
                    patient.id,
                    json.dumps(details, ensure_ascii=False),
                ),
                status="prescribed",
                prescribed_by=_who(actor),
                prescribed_at=now,
                allergy_override_enc=(
                    self._seal(
                        "prescriptions",
                        "allergy_override",
                        prescription_id,
                        patient.id,
                        clean.allergy_override_reason,
                    )
                    if allergy is not None and clean.allergy_override_reason is not None
                    else None
                ),
            )
            session.add(row)
            session.flush()
            append_audit(
                session,
                actor,
                AuditEvent(
                    "prescription.create",
                    patient_id=patient.id,
                    record=row.id,
                    detail="allergy override" if row.allergy_override_enc else "",
                ),
            )
            return self._view(row, patient, medicine)

    def _view(self, row: Prescription, patient: Patient, medicine: Medicine) -> PrescriptionView:
        details = json.loads(
            self._open("prescriptions", "details", row.id, row.patient_id, row.details_enc)
        )
        override = (
            self._open(
                "prescriptions",
                "allergy_override",
                row.id,
                row.patient_id,
                row.allergy_override_enc,
            )
            if row.allergy_override_enc is not None
            else None
        )
        return PrescriptionView(
            id=row.id,
            patient_id=row.patient_id,
            consultation_id=row.consultation_id,
            medical_record_number=patient.medical_record_number,
            patient_name=patient_text(self.fields, patient, "name") or "",
            medicine_id=medicine.id,
            medicine_name=medicine.name,
            medicine_form=medicine.form,
            medicine_strength=medicine.strength,
            quantity=row.quantity,
            dose=str(details.get("dose", "")),
            route=str(details.get("route", "")),
            frequency=str(details.get("frequency", "")),
            duration=str(details.get("duration", "")),
            instructions=details.get("instructions"),
            status=row.status,
            prescribed_by=row.prescribed_by,
            prescribed_at=row.prescribed_at,
            allergy_override_reason=override,
            dispensed_by=row.dispensed_by,
            dispensed_at=row.dispensed_at,
            version=row.version,
        )

    def get_prescription(self, actor: Actor, prescription_id: str) -> PrescriptionView:
        with self.database.transaction(write=True) as session:
            row = get_row(session, Prescription, prescription_id)
            if row is None:
                raise NotFound("no such prescription", key="prescription.not_found")
            try:
                patient = check_patient_access(
                    session, actor, row.patient_id, Permission.PRESCRIPTIONS_READ
                )
            except NotFound as exc:
                raise NotFound("no such prescription", key="prescription.not_found") from exc
            ensure_not_erased(patient)
            medicine = session.get(Medicine, row.medicine_id)
            assert medicine is not None
            append_audit(
                session,
                actor,
                AuditEvent("prescription.read", patient_id=row.patient_id, record=row.id),
            )
            return self._view(row, patient, medicine)

    def worklist(
        self, actor: Actor, status: str = "prescribed", limit: int = 100
    ) -> list[PrescriptionView]:
        """Prescriptions in ``status`` across patients (the pharmacy's queue, oldest first)."""
        authorize(actor, Permission.PRESCRIPTIONS_READ)
        if status not in STATUSES:
            raise ValidationFailed(
                "unknown status",
                field="status",
                key="prescription.status_invalid",
                choices=", ".join(STATUSES),
            )
        limit = max(1, min(limit, MAX_LIST))
        query = (
            select(Prescription, Patient, Medicine)
            .join(Patient, Patient.id == Prescription.patient_id)
            .join(Medicine, Medicine.id == Prescription.medicine_id)
            .where(Prescription.status == status, Patient.erased_at.is_(None))
        )
        if status == "prescribed":
            query = query.order_by(Prescription.prescribed_at, Prescription.id)
        else:
            query = query.order_by(Prescription.dispensed_at.desc(), Prescription.id)
        with self.database.transaction(write=True) as session:
            rows = [
                (prescription, patient, medicine)
                for prescription, patient, medicine in session.execute(query.limit(limit)).all()
                if may_access(session, actor, patient.id, Permission.PRESCRIPTIONS_READ)
            ]
            append_audit(
                session,
                actor,
                AuditEvent(
                    "prescription.worklist", detail=f"{len(rows)} prescriptions, status {status}"
                ),
            )
            return [self._view(p, patient, m) for p, patient, m in rows]

    def for_consultation(self, actor: Actor, consultation_id: str) -> list[PrescriptionView]:
        """The prescriptions written in one consultation."""
        with self.database.transaction(write=True) as session:
            consultation = get_row(session, Consultation, consultation_id)
            if consultation is None:
                raise NotFound("no such consultation", key="orders.consultation_not_found")
            patient = check_patient_access(
                session, actor, consultation.patient_id, Permission.PRESCRIPTIONS_READ
            )
            ensure_not_erased(patient)
            rows = list(
                session.execute(
                    select(Prescription, Medicine)
                    .join(Medicine, Medicine.id == Prescription.medicine_id)
                    .where(Prescription.consultation_id == consultation_id)
                    .order_by(Prescription.prescribed_at, Prescription.id)
                ).all()
            )
            append_audit(
                session,
                actor,
                AuditEvent("prescription.read", patient_id=patient.id, record=consultation_id),
            )
            return [self._view(p, patient, m) for p, m in rows]

    def dispense(self, actor: Actor, prescription_id: str) -> PrescriptionView:
        """Hand out a prescription: stock goes down by its quantity, in the same transaction."""
        authorize(actor, Permission.PRESCRIPTIONS_DISPENSE)
        now = self.clock()
        with self.database.transaction(write=True) as session:
            row = get_row(session, Prescription, prescription_id)
            if row is None:
                raise NotFound("no such prescription", key="prescription.not_found")
            patient = check_patient_access(
                session, actor, row.patient_id, Permission.PRESCRIPTIONS_DISPENSE
            )
            ensure_not_erased(patient)
            marked = session.execute(
                update(Prescription)
                .where(Prescription.id == row.id, Prescription.status == "prescribed")
                .values(
                    status="dispensed",
                    dispensed_by=_who(actor),
                    dispensed_at=now,
                    version=Prescription.version + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if _rowcount(marked) != 1:
                raise Conflict(
                    "this prescription was already dispensed",
                    key="prescription.already_dispensed",
                )
            taken = session.execute(
                update(Medicine)
                .where(Medicine.id == row.medicine_id, Medicine.stock >= row.quantity)
                .values(stock=Medicine.stock - row.quantity)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(taken) != 1:
                medicine = session.get(Medicine, row.medicine_id, populate_existing=True)
                raise Conflict(
                    f"not enough stock: {row.quantity} needed, "
                    f"{medicine.stock if medicine else 0} in stock",
                    key="prescription.insufficient_stock",
                    needed=row.quantity,
                    available=medicine.stock if medicine else 0,
                )
            append_audit(
                session,
                actor,
                AuditEvent("prescription.dispense", patient_id=row.patient_id, record=row.id),
            )
            session.refresh(row)
            medicine = session.get(Medicine, row.medicine_id, populate_existing=True)
            assert medicine is not None
            return self._view(row, patient, medicine)


def _who(actor: Actor) -> str:
    """What is stored as 'by': the user id, or the name of a system actor."""
    return (actor.user_id or actor.username)[:36]
