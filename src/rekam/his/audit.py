"""The audit trail: an append-only, hash-chained log of who did what to which patient's data.

Each entry's hash is SHA-256 over its canonical JSON and the previous entry's hash, so editing,
deleting or reordering any entry breaks the chain at that point. Entries carry identifiers, never
clinical content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.record_access import break_glass_grant_in_use
from rekam.store.counters import next_counter
from rekam.store.models import AuditEntry
from rekam.store.types import utc_now

if TYPE_CHECKING:
    from rekam.his.installation import Clinic
    from rekam.store import Database

AUDIT_COUNTER = "audit"

GENESIS = "0" * 64

#: outcome of opening a break-glass grant, and the start of the detail of every entry written
#: while a grant admitted the access
BREAK_GLASS_MARKER = "break-glass"


def is_break_glass(outcome: str, detail: str) -> bool:
    """Whether an audit entry records emergency access (opening a grant or using one)."""
    return outcome == BREAK_GLASS_MARKER or detail.startswith(BREAK_GLASS_MARKER)


@dataclass(frozen=True)
class AuditEvent:
    action: str
    outcome: str = "success"
    patient_id: str | None = None
    record: str | None = None
    detail: str = ""


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    patient_id: str | None,
    record: str | None,
    source: str,
    outcome: str,
    detail: str,
    previous_hash: str,
) -> str:
    canonical = json.dumps(
        [
            seq,
            at.isoformat(),
            actor,
            role,
            action,
            patient_id,
            record,
            source,
            outcome,
            detail,
            previous_hash,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def append_audit(
    session: Session, actor: Actor, event: AuditEvent, at: datetime | None = None
) -> AuditEntry:
    """Append one entry in the caller's transaction (so it commits or rolls back with the work)."""
    seq = next_counter(session, AUDIT_COUNTER)  # row lock: appends are serialised
    # (plain SQL on the session's connection: every entry is flushed as it is appended, so the
    # previous one is in the database, and a column needs none of the ORM's handling)
    previous = (
        session.connection().scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq - 1))
        or GENESIS
    )
    when = at or utc_now()
    actor_name, role, source = actor.username[:64], actor.role.value, actor.source_address[:64]
    action, outcome, detail = event.action[:64], event.outcome[:32], event.detail
    grant = break_glass_grant_in_use(session, event.patient_id)
    if grant is not None and not detail.startswith(BREAK_GLASS_MARKER):
        # this transaction reached the patient through an emergency grant: say so in the entry
        detail = f"{BREAK_GLASS_MARKER} grant={grant}" + (f"; {detail}" if detail else "")
    detail = detail[:500]
    record = event.record[:120] if event.record else None
    digest = entry_hash(
        seq,
        when,
        actor_name,
        role,
        action,
        event.patient_id,
        record,
        source,
        outcome,
        detail,
        previous,
    )
    entry = AuditEntry(
        seq=seq,
        at=when,
        actor=actor_name,
        role=role,
        action=action,
        patient_id=event.patient_id,
        record=record,
        source=source,
        outcome=outcome,
        detail=detail,
        previous_hash=previous,
        entry_hash=digest,
    )
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_broken_seq: int | None
    reason: str | None

    @property
    def intact(self) -> bool:
        return self.first_broken_seq is None


def verify_audit_chain(session: Session) -> ChainReport:
    previous = GENESIS
    expected_seq = 1
    count = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
        count += 1
        if entry.seq != expected_seq:
            return ChainReport(count, expected_seq, f"entry {expected_seq} is missing")
        if entry.previous_hash != previous:
            return ChainReport(
                count, entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}"
            )
        recomputed = entry_hash(
            entry.seq,
            entry.at,
            entry.actor,
            entry.role,
            entry.action,
            entry.patient_id,
            entry.record,
            entry.source,
            entry.outcome,
            entry.detail,
            entry.previous_hash,
        )
        if recomputed != entry.entry_hash:
            return ChainReport(
                count, entry.seq, f"entry {entry.seq} was altered after it was written"
            )
        previous = entry.entry_hash
        expected_seq += 1
    return ChainReport(count, None, None)


# Reading the trail (administrators) -------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to show: every given criterion must hold."""

    patient_id: str | None = None
    actor: str | None = None
    action: str | None = None  # exact action, or a prefix ending in "." ("patient.")
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    break_glass_only: bool = False


@dataclass(frozen=True)
class AuditEntryView:
    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    patient_id: str | None
    record: str | None
    source: str
    outcome: str
    detail: str
    entry_hash: str

    @property
    def break_glass(self) -> bool:
        return is_break_glass(self.outcome, self.detail)

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        return cls(
            seq=entry.seq,
            at=entry.at,
            actor=entry.actor,
            role=entry.role,
            action=entry.action,
            patient_id=entry.patient_id,
            record=entry.record,
            source=entry.source,
            outcome=entry.outcome,
            detail=entry.detail,
            entry_hash=entry.entry_hash,
        )


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntryView]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


_Query = TypeVar("_Query", bound=Select[Any])


def filtered(query: _Query, criteria: AuditFilter) -> _Query:
    if criteria.patient_id:
        query = query.where(AuditEntry.patient_id == criteria.patient_id)
    if criteria.actor:
        query = query.where(AuditEntry.actor == criteria.actor)
    if criteria.action:
        if criteria.action.endswith("."):
            query = query.where(AuditEntry.action.startswith(criteria.action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == criteria.action)
    if criteria.since:
        query = query.where(AuditEntry.at >= criteria.since)
    if criteria.until:
        query = query.where(AuditEntry.at < criteria.until)
    if criteria.break_glass_only:
        query = query.where(
            or_(
                AuditEntry.outcome == BREAK_GLASS_MARKER,
                AuditEntry.detail.startswith(BREAK_GLASS_MARKER, autoescape=True),
            )
        )
    return query


def iter_audit_entries(
    session: Session, criteria: AuditFilter, batch: int = 1000
) -> Iterator[AuditEntryView]:
    """Matching entries in chain order, read in batches (constant memory for exports)."""
    after = 0
    while True:
        rows = list(
            session.scalars(
                filtered(select(AuditEntry), criteria)
                .where(AuditEntry.seq > after)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
        )
        for row in rows:
            yield AuditEntryView.of(row)
        if len(rows) < batch:
            return
        after = rows[-1].seq


class AuditService:
    """The trail for administrators (AUDIT_READ): browse, verify, export."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @classmethod
    def for_clinic(cls, clinic: Clinic) -> AuditService:
        return cls(clinic.database)

    def browse(
        self, actor: Actor, criteria: AuditFilter, page: int = 1, per_page: int = 50
    ) -> AuditPage:
        """One page of matching entries, newest first."""
        authorize(actor, Permission.AUDIT_READ)
        per_page = max(1, min(per_page, 500))
        page = max(1, page)
        with self.database.transaction() as session:
            total = session.scalar(filtered(select(func.count()).select_from(AuditEntry), criteria))
            rows = session.scalars(
                filtered(select(AuditEntry), criteria)
                .order_by(AuditEntry.seq.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            )
            entries = [AuditEntryView.of(r) for r in rows]
        return AuditPage(entries, int(total or 0), page, per_page)

    def verify(self, actor: Actor) -> ChainReport:
        authorize(actor, Permission.AUDIT_READ)
        with self.database.transaction() as session:
            return verify_audit_chain(session)

    def entries(self, actor: Actor, criteria: AuditFilter) -> Iterator[AuditEntryView]:
        """Every matching entry, oldest first, streamed in batches."""
        authorize(actor, Permission.AUDIT_READ)
        with self.database.transaction() as session:
            yield from iter_audit_entries(session, criteria)
