"""The audit trail: an append-only, hash-chained log of who did what to which patient's data.

Each entry's hash is SHA-256 over its canonical JSON and the previous entry's hash, so editing,
deleting or reordering any entry breaks the chain at that point. Entries carry identifiers, never
clinical content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rekam.his.rbac import Actor
from rekam.store.counters import next_counter
from rekam.store.models import AuditEntry
from rekam.store.types import utc_now

AUDIT_COUNTER = "audit"

GENESIS = "0" * 64


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
    previous = (
        session.scalar(select(AuditEntry.entry_hash).where(AuditEntry.seq == seq - 1)) or GENESIS
    )
    when = at or utc_now()
    actor_name, role, source = actor.username[:64], actor.role.value, actor.source_address[:64]
    action, outcome, detail = event.action[:64], event.outcome[:32], event.detail[:500]
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
