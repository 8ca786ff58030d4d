"""Break-glass: a doctor's time-limited emergency access to a patient outside their care.

Opening a grant needs the BREAK_GLASS permission and a written reason; it is audited with
outcome ``break-glass``. While the grant is active, ``check_patient_access`` admits that doctor to
that patient and every audit entry of such an access carries the break-glass marker. Administrators
(AUDIT_READ) list the grants, unreviewed first, and mark them reviewed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from rekam.crypto import FieldCipher, FieldContext, KeyErased
from rekam.his.audit import BREAK_GLASS_MARKER, AuditEvent, append_audit
from rekam.his.errors import Conflict, NotFound, ValidationFailed
from rekam.his.rbac import Actor, Permission, authorize
from rekam.store import Database
from rekam.store.models import BreakGlassGrant, Patient, User, new_id
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic

DEFAULT_MINUTES = 60
MAX_MINUTES = 240
MIN_REASON = 10
MAX_REASON = 500


@dataclass(frozen=True)
class GrantView:
    id: str
    user_id: str
    username: str
    patient_id: str
    medical_record_number: str
    reason: str
    granted_at: datetime
    expires_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.granted_at <= now < self.expires_at

    @property
    def reviewed(self) -> bool:
        return self.reviewed_at is not None


class BreakGlassService:
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
    def for_clinic(cls, clinic: Clinic) -> BreakGlassService:
        return cls(clinic.database, clinic.fields)

    def open(
        self, actor: Actor, patient_id: str, reason: str, minutes: int = DEFAULT_MINUTES
    ) -> GrantView:
        """Open emergency access to one patient for ``minutes`` (audited, reviewed later)."""
        authorize(actor, Permission.BREAK_GLASS)
        reason = " ".join(reason.split())
        if not MIN_REASON <= len(reason) <= MAX_REASON:
            raise ValidationFailed(
                f"give the reason for emergency access ({MIN_REASON}–{MAX_REASON} characters)",
                field="reason",
                key="break_glass.reason_error",
                minimum=MIN_REASON,
            )
        if not 1 <= minutes <= MAX_MINUTES:
            raise ValidationFailed(
                f"emergency access lasts 1–{MAX_MINUTES} minutes",
                field="minutes",
                key="break_glass.minutes_error",
                maximum=MAX_MINUTES,
            )
        if actor.user_id is None:
            raise ValidationFailed(
                "emergency access is for a logged-in doctor", key="break_glass.no_user"
            )
        now = self.clock()
        with self.database.transaction(write=True) as session:
            if session.get(Patient, patient_id) is None:
                raise NotFound("no such patient", key="patient.not_found")
            grant = BreakGlassGrant(
                id=new_id(),
                user_id=actor.user_id,
                patient_id=patient_id,
                reason="",
                granted_at=now,
                expires_at=now + timedelta(minutes=minutes),
            )
            # the reason may mention clinical context: encrypted like the record it opens
            grant.reason_enc = self.fields.encrypt_field(reason, _reason_context(grant))
            session.add(grant)
            session.flush()
            # the reason may mention clinical context: it stays in the grant, not the audit line
            append_audit(
                session,
                actor,
                AuditEvent(
                    "break-glass.open",
                    outcome=BREAK_GLASS_MARKER,
                    patient_id=patient_id,
                    record=grant.id,
                    detail=f"{BREAK_GLASS_MARKER} grant={grant.id}; {minutes} min",
                ),
                at=now,
            )
            return self._views(session, [grant])[0]

    def _reason(self, grant: BreakGlassGrant) -> str:
        if grant.reason_enc is None:
            return grant.reason
        try:
            return self.fields.decrypt_text(grant.reason_enc, _reason_context(grant))
        except KeyErased:
            return "—"  # the patient was crypto-erased: so is the reason

    def grants(self, actor: Actor, limit: int = 200) -> list[GrantView]:
        """Every grant, unreviewed first, newest first within each group."""
        authorize(actor, Permission.AUDIT_READ)
        unreviewed_first = case((BreakGlassGrant.reviewed_at.is_(None), 0), else_=1)
        with self.database.transaction() as session:
            grants = list(
                session.scalars(
                    select(BreakGlassGrant)
                    .order_by(unreviewed_first, BreakGlassGrant.granted_at.desc())
                    .limit(max(1, min(limit, 1000)))
                )
            )
            return self._views(session, grants)

    def count_unreviewed(self, actor: Actor) -> int:
        return sum(1 for g in self.grants(actor, limit=1000) if not g.reviewed)

    def review(self, actor: Actor, grant_id: str) -> GrantView:
        """Mark a grant as reviewed by an administrator (audited)."""
        authorize(actor, Permission.AUDIT_READ)
        now = self.clock()
        with self.database.transaction(write=True) as session:
            grant = session.get(BreakGlassGrant, grant_id)
            if grant is None:
                raise NotFound("no such break-glass grant", key="break_glass.not_found")
            if grant.reviewed_at is not None:
                raise Conflict("this grant was already reviewed", key="break_glass.reviewed")
            grant.reviewed_by = actor.username[:36]
            grant.reviewed_at = now
            append_audit(
                session,
                actor,
                AuditEvent("break-glass.review", patient_id=grant.patient_id, record=grant.id),
                at=now,
            )
            return self._views(session, [grant])[0]

    def _views(self, session: Session, grants: list[BreakGlassGrant]) -> list[GrantView]:
        user_ids = {g.user_id for g in grants}
        patient_ids = {g.patient_id for g in grants}
        names: dict[str, str] = {
            row.id: row.username
            for row in session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
        }
        numbers: dict[str, str] = {
            row.id: row.medical_record_number
            for row in session.execute(
                select(Patient.id, Patient.medical_record_number).where(Patient.id.in_(patient_ids))
            )
        }
        return [
            GrantView(
                id=g.id,
                user_id=g.user_id,
                username=names.get(g.user_id, "?"),
                patient_id=g.patient_id,
                medical_record_number=numbers.get(g.patient_id, "?"),
                reason=self._reason(g),
                granted_at=g.granted_at,
                expires_at=g.expires_at,
                reviewed_by=g.reviewed_by,
                reviewed_at=g.reviewed_at,
            )
            for g in grants
        ]


def _reason_context(grant: BreakGlassGrant) -> FieldContext:
    return FieldContext("break_glass_grants", "reason", grant.id, grant.patient_id)
