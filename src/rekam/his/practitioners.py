"""Practitioners: the clinic's doctors, nurses, midwives, pharmacists and lab analysts.

Practitioner data is staff data (not patient data), so it is stored in the clear and searched
directly. Licence numbers are checked for a plausible shape only (there is no public registry
API to verify them against):

* **STR** (*Surat Tanda Registrasi*, issued by KKI for doctors and dentists and by KTKI/the
  Ministry for other health workers): 16 digits. Spaces, dots and hyphens between digit groups are
  accepted and dropped.
* **SIP** (*Surat Izin Praktik*, issued per practice place by the district/city health office or
  its one-stop licensing office): formats differ per region, e.g.
  ``503/0123/SIP-DU/DPMPTSP/2024`` or ``446/77/SIPB/DINKES/X/2023``. Accepted: 5–60 characters of
  letters, digits, ``/``, ``.``, ``-`` and single spaces, starting and ending with a letter or
  digit and holding at least two digits. It is kept upper-cased.

Updates carry the version the client saw; if someone else saved in between, ``Conflict``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rekam.his.audit import AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, ValidationFailed
from rekam.his.rbac import Actor, Permission, authorize
from rekam.store import Database
from rekam.store.models import Practitioner, User
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

STR_FORMAT = re.compile(r"^[0-9]{16}$")
SIP_FORMAT = re.compile(r"^[A-Z0-9](?:[A-Z0-9./\-]| (?! ))*[A-Z0-9]$")


class Profession(StrEnum):
    DOCTOR = "doctor"
    NURSE = "nurse"
    MIDWIFE = "midwife"
    PHARMACIST = "pharmacist"
    LAB_ANALYST = "lab_analyst"
    OTHER = "other"


#: professions that may hold a consultation (see ``rekam.his.consultations``)
CLINICIANS = frozenset({Profession.DOCTOR, Profession.NURSE, Profession.MIDWIFE})


@dataclass(frozen=True)
class PractitionerInput:
    name: str
    profession: str
    specialty: str | None = None
    str_number: str | None = None
    sip_number: str | None = None
    user_id: str | None = None
    active: bool = True


@dataclass(frozen=True)
class PractitionerRecord:
    id: str
    name: str
    profession: Profession
    specialty: str | None
    str_number: str | None
    sip_number: str | None
    user_id: str | None
    active: bool
    created_at: datetime
    version: int


def validate_str_number(value: str) -> str:
    """A plausible STR number: 16 digits (separators dropped)."""
    digits = re.sub(r"[\s.\-]", "", value)
    if not STR_FORMAT.match(digits):
        raise ValidationFailed(
            "an STR number has 16 digits", field="str_number", key="practitioner.str_number"
        )
    return digits


def validate_sip_number(value: str) -> str:
    """A plausible SIP number (see the module documentation), upper-cased."""
    text = " ".join(value.split()).upper()
    if not (
        5 <= len(text) <= 60 and SIP_FORMAT.match(text) and sum(c.isdigit() for c in text) >= 2
    ):
        raise ValidationFailed(
            "an SIP number has 5–60 letters, digits and / . - (e.g. 503/0123/SIP-DU/DPMPTSP/2024)",
            field="sip_number",
            key="practitioner.sip_number",
        )
    return text


def _record(row: Practitioner) -> PractitionerRecord:
    return PractitionerRecord(
        id=row.id,
        name=row.name,
        profession=Profession(row.profession),
        specialty=row.specialty,
        str_number=row.str_number,
        sip_number=row.sip_number,
        user_id=row.user_id,
        active=row.active,
        created_at=row.created_at,
        version=row.version,
    )


class PractitionerService:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self.database = database
        self.clock = clock

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> PractitionerService:
        return cls(clinic.database)

    # Validation --------------------------------------------------------------------------------

    @staticmethod
    def _validated(data: PractitionerInput) -> PractitionerInput:
        name = " ".join(data.name.split())
        if not 2 <= len(name) <= 200:
            raise ValidationFailed(
                "the name must have 2–200 characters", field="name", key="practitioner.name"
            )
        if data.profession not in {p.value for p in Profession}:
            raise ValidationFailed(
                "unknown profession", field="profession", key="practitioner.profession"
            )
        specialty = " ".join((data.specialty or "").split()) or None
        if specialty and len(specialty) > 100:
            raise ValidationFailed(
                "specialty is longer than 100 characters",
                field="specialty",
                key="field.too_long",
                limit=100,
            )
        str_number = validate_str_number(data.str_number) if data.str_number else None
        sip_number = validate_sip_number(data.sip_number) if data.sip_number else None
        user_id = (data.user_id or "").strip() or None
        return PractitionerInput(
            name=name,
            profession=data.profession,
            specialty=specialty,
            str_number=str_number,
            sip_number=sip_number,
            user_id=user_id,
            active=bool(data.active),
        )

    @staticmethod
    def _check_user(session: Session, user_id: str | None, practitioner_id: str | None) -> None:
        if user_id is None:
            return
        if session.get(User, user_id) is None:
            raise ValidationFailed(
                "no such user account", field="user_id", key="practitioner.no_such_user"
            )
        holder = session.scalar(select(Practitioner.id).where(Practitioner.user_id == user_id))
        if holder is not None and holder != practitioner_id:
            raise Conflict(
                "this user account is already linked to another practitioner",
                field="user_id",
                key="practitioner.user_taken",
            )

    # Operations --------------------------------------------------------------------------------

    def create(self, actor: Actor, data: PractitionerInput) -> PractitionerRecord:
        authorize(actor, Permission.PRACTITIONERS_WRITE)
        clean = self._validated(data)
        try:
            with self.database.transaction(write=True) as session:
                self._check_user(session, clean.user_id, None)
                row = Practitioner(
                    name=clean.name,
                    profession=clean.profession,
                    specialty=clean.specialty,
                    str_number=clean.str_number,
                    sip_number=clean.sip_number,
                    user_id=clean.user_id,
                    active=clean.active,
                    created_at=self.clock(),
                )
                session.add(row)
                session.flush()
                append_audit(session, actor, AuditEvent("practitioner.create", record=row.id))
                return _record(row)
        except IntegrityError as exc:  # a concurrent link of the same account won
            raise Conflict(
                "this user account is already linked to another practitioner",
                field="user_id",
                key="practitioner.user_taken",
            ) from exc

    def update(
        self, actor: Actor, practitioner_id: str, data: PractitionerInput, version: int
    ) -> PractitionerRecord:
        """Replace the practitioner's details; ``version`` is the one the client saw."""
        authorize(actor, Permission.PRACTITIONERS_WRITE)
        clean = self._validated(data)
        try:
            with self.database.transaction(write=True) as session:
                row = session.get(Practitioner, practitioner_id)
                if row is None:
                    raise NotFound("no such practitioner", key="practitioner.not_found")
                if row.version != version:
                    raise Conflict(
                        "someone else changed this practitioner; reload and try again",
                        key="encounters.stale",
                    )
                self._check_user(session, clean.user_id, row.id)
                row.name = clean.name
                row.profession = clean.profession
                row.specialty = clean.specialty
                row.str_number = clean.str_number
                row.sip_number = clean.sip_number
                row.user_id = clean.user_id
                row.active = clean.active
                session.flush()
                append_audit(session, actor, AuditEvent("practitioner.update", record=row.id))
                return _record(row)
        except StaleDataError as exc:
            raise Conflict(
                "someone else changed this practitioner; reload and try again",
                key="encounters.stale",
            ) from exc
        except IntegrityError as exc:
            raise Conflict(
                "this user account is already linked to another practitioner",
                field="user_id",
                key="practitioner.user_taken",
            ) from exc

    def get(self, actor: Actor, practitioner_id: str) -> PractitionerRecord:
        authorize(actor, Permission.PRACTITIONERS_READ)
        with self.database.transaction() as session:
            row = session.get(Practitioner, practitioner_id)
            if row is None:
                raise NotFound("no such practitioner", key="practitioner.not_found")
            return _record(row)

    def list(
        self,
        actor: Actor,
        search: str | None = None,
        profession: str | None = None,
        active_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[PractitionerRecord]:
        """Practitioners by name; ``search`` matches name, specialty, STR or SIP (substring)."""
        authorize(actor, Permission.PRACTITIONERS_READ)
        query = select(Practitioner)
        if search and search.strip():
            pattern = "%" + search.strip().lower().replace("%", "").replace("_", "") + "%"
            query = query.where(
                or_(
                    func.lower(Practitioner.name).like(pattern),
                    func.lower(func.coalesce(Practitioner.specialty, "")).like(pattern),
                    func.lower(func.coalesce(Practitioner.str_number, "")).like(pattern),
                    func.lower(func.coalesce(Practitioner.sip_number, "")).like(pattern),
                )
            )
        if profession:
            query = query.where(Practitioner.profession == profession)
        if active_only:
            query = query.where(Practitioner.active.is_(True))
        limit = max(1, min(limit, 500))
        with self.database.transaction() as session:
            rows = session.scalars(
                query.order_by(Practitioner.name, Practitioner.id)
                .limit(limit)
                .offset(max(0, offset))
            )
            return [_record(r) for r in rows]

    def practitioner_for_user(self, user_id: str | None) -> PractitionerRecord | None:
        """The practitioner linked to a user account, if any (active or not)."""
        if user_id is None:
            return None
        with self.database.transaction() as session:
            row = session.scalar(select(Practitioner).where(Practitioner.user_id == user_id))
            return None if row is None else _record(row)


def practitioner_of_actor(session: Session, actor: Actor) -> Practitioner | None:
    """The active practitioner linked to the acting user, inside the caller's transaction."""
    if actor.user_id is None:
        return None
    return session.scalar(
        select(Practitioner).where(
            Practitioner.user_id == actor.user_id, Practitioner.active.is_(True)
        )
    )
