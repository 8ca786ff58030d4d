"""JSON API for oversight: the audit trail (browse, verify) and break-glass grants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from rekam.his.audit import AuditEntryView, AuditFilter, AuditService, ChainReport
from rekam.his.break_glass import (
    DEFAULT_MINUTES,
    MAX_MINUTES,
    MAX_REASON,
    MIN_REASON,
    BreakGlassService,
    GrantView,
)
from rekam.his.rbac import Permission
from rekam.store.types import utc_now
from rekam.web.api import CsrfHeader
from rekam.web.context import RequestContext, require

router = APIRouter(prefix="/api/v1", tags=["oversight"])

Auditor = Annotated[RequestContext, Depends(require(Permission.AUDIT_READ))]
GlassBreaker = Annotated[RequestContext, Depends(require(Permission.BREAK_GLASS))]


class AuditEntryOut(BaseModel):
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
    break_glass: bool

    @classmethod
    def of(cls, entry: AuditEntryView) -> AuditEntryOut:
        return cls(**entry.__dict__, break_glass=entry.break_glass)


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    total: int
    page: int
    per_page: int
    pages: int


class ChainStatusOut(BaseModel):
    entries: int
    intact: bool
    first_broken_seq: int | None
    reason: str | None

    @classmethod
    def of(cls, report: ChainReport) -> ChainStatusOut:
        return cls(
            entries=report.entries,
            intact=report.intact,
            first_broken_seq=report.first_broken_seq,
            reason=report.reason,
        )


class BreakGlassIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=MIN_REASON, max_length=MAX_REASON)
    minutes: int = Field(default=DEFAULT_MINUTES, ge=1, le=MAX_MINUTES)


class GrantOut(BaseModel):
    id: str
    username: str
    patient_id: str
    medical_record_number: str
    reason: str
    granted_at: datetime
    expires_at: datetime
    active: bool
    reviewed: bool
    reviewed_by: str | None
    reviewed_at: datetime | None

    @classmethod
    def of(cls, grant: GrantView, now: datetime) -> GrantOut:
        return cls(
            id=grant.id,
            username=grant.username,
            patient_id=grant.patient_id,
            medical_record_number=grant.medical_record_number,
            reason=grant.reason,
            granted_at=grant.granted_at,
            expires_at=grant.expires_at,
            active=grant.active(now),
            reviewed=grant.reviewed,
            reviewed_by=grant.reviewed_by,
            reviewed_at=grant.reviewed_at,
        )


def day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


def audit_filter(
    patient_id: str | None,
    actor: str | None,
    action: str | None,
    since: date | None,
    until: date | None,
    break_glass: bool,
) -> AuditFilter:
    """The filter of the audit page and API; ``until`` is inclusive (a whole day)."""
    end = day_start(until + timedelta(days=1)) if until and until < date.max else None
    return AuditFilter(
        patient_id=patient_id or None,
        actor=actor or None,
        action=action or None,
        since=day_start(since),
        until=end,
        break_glass_only=break_glass,
    )


@router.get("/audit", response_model=AuditPageOut)
def list_audit(
    context: Auditor,
    patient_id: Annotated[str | None, Query(max_length=36)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[date | None, Query(description="first day (UTC), inclusive")] = None,
    until: Annotated[date | None, Query(description="last day (UTC), inclusive")] = None,
    break_glass: bool = False,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPageOut:
    """Audit entries, newest first. ``action`` is exact, or a prefix ending in "."."""
    criteria = audit_filter(patient_id, actor, action, since, until, break_glass)
    found = AuditService.for_clinic(context.clinic).browse(
        context.actor, criteria, page=page, per_page=per_page
    )
    return AuditPageOut(
        entries=[AuditEntryOut.of(e) for e in found.entries],
        total=found.total,
        page=found.page,
        per_page=found.per_page,
        pages=found.pages,
    )


@router.get("/audit/verify", response_model=ChainStatusOut)
def verify_audit(context: Auditor) -> ChainStatusOut:
    """Check the whole hash chain; names the first broken entry if any."""
    return ChainStatusOut.of(AuditService.for_clinic(context.clinic).verify(context.actor))


@router.post("/patients/{patient_id}/break-glass", response_model=GrantOut, status_code=201)
def open_break_glass(
    context: GlassBreaker,
    patient_id: Annotated[str, PathParam(max_length=36)],
    body: BreakGlassIn,
    x_csrf_token: CsrfHeader = None,
) -> GrantOut:
    """Emergency access to a patient outside your care: time-limited, audited, reviewed."""
    context.check_csrf(x_csrf_token)
    grant = BreakGlassService.for_clinic(context.clinic).open(
        context.actor, patient_id, body.reason, body.minutes
    )
    return GrantOut.of(grant, utc_now())


@router.get("/break-glass", response_model=list[GrantOut])
def list_break_glass(
    context: Auditor, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[GrantOut]:
    """Break-glass grants, unreviewed first."""
    now = utc_now()
    grants = BreakGlassService.for_clinic(context.clinic).grants(context.actor, limit=limit)
    return [GrantOut.of(g, now) for g in grants]


@router.post("/break-glass/{grant_id}/review", response_model=GrantOut)
def review_break_glass(
    context: Auditor,
    grant_id: Annotated[str, PathParam(max_length=36)],
    x_csrf_token: CsrfHeader = None,
) -> GrantOut:
    context.check_csrf(x_csrf_token)
    grant = BreakGlassService.for_clinic(context.clinic).review(context.actor, grant_id)
    return GrantOut.of(grant, utc_now())
