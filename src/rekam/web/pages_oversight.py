"""HTML pages for oversight: the audit trail, break-glass review, and opening break-glass."""

from __future__ import annotations

import urllib.parse
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from fastapi import Path as PathParam
from starlette.responses import RedirectResponse, Response

from rekam.his.audit import AuditService
from rekam.his.break_glass import DEFAULT_MINUTES, MAX_MINUTES, BreakGlassService
from rekam.his.errors import ValidationFailed
from rekam.his.rbac import Permission
from rekam.store.types import utc_now
from rekam.web.api_oversight import audit_filter
from rekam.web.context import RequestContext, require
from rekam.web.error_messages import his_error_text
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

Auditor = Annotated[RequestContext, Depends(require(Permission.AUDIT_READ))]
GlassBreaker = Annotated[RequestContext, Depends(require(Permission.BREAK_GLASS))]
CsrfField = Annotated[str, Form(max_length=128)]
PER_PAGE = 50


def _optional_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@router.get("/audit")
def audit_page(
    context: Auditor,
    patient_id: Annotated[str, Query(max_length=36)] = "",
    actor: Annotated[str, Query(max_length=64)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    break_glass: Annotated[str, Query(max_length=3)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    criteria = audit_filter(
        patient_id.strip(),
        actor.strip(),
        action.strip(),
        _optional_date(since),
        _optional_date(until),
        bool(break_glass),
    )
    service = AuditService.for_clinic(context.clinic)
    found = service.browse(context.actor, criteria, page=page, per_page=PER_PAGE)
    chain = service.verify(context.actor)
    filters = {
        "patient_id": patient_id,
        "actor": actor,
        "action": action,
        "since": since,
        "until": until,
        "break_glass": break_glass,
    }
    query = urllib.parse.urlencode({k: v for k, v in filters.items() if v})
    unreviewed = BreakGlassService.for_clinic(context.clinic).count_unreviewed(context.actor)
    return render(
        context,
        "oversight_audit.html",
        found=found,
        chain=chain,
        filters=filters,
        query=query,
        unreviewed=unreviewed,
    )


def _grants_page(
    context: RequestContext, status_code: int = 200, messages: list[tuple[str, str]] | None = None
) -> Response:
    grants = BreakGlassService.for_clinic(context.clinic).grants(context.actor)
    return render(
        context,
        "oversight_break_glass.html",
        status_code,
        messages=messages,
        grants=grants,
        now=utc_now(),
    )


@router.get("/audit/break-glass")
def break_glass_page(context: Auditor) -> Response:
    return _grants_page(context)


@router.post("/audit/break-glass/{grant_id}/review")
def review_grant(
    context: Auditor,
    grant_id: Annotated[str, PathParam(max_length=36)],
    csrf_token: CsrfField,
) -> Response:
    context.check_csrf(csrf_token)
    BreakGlassService.for_clinic(context.clinic).review(context.actor, grant_id)
    return RedirectResponse("/audit/break-glass", status_code=303)


@router.get("/break-glass/{patient_id}")
def break_glass_form(
    context: GlassBreaker, patient_id: Annotated[str, PathParam(max_length=36)]
) -> Response:
    return render(
        context,
        "oversight_break_glass_open.html",
        patient_id=patient_id,
        minutes=DEFAULT_MINUTES,
        max_minutes=MAX_MINUTES,
        reason="",
    )


@router.post("/break-glass/{patient_id}")
def break_glass_open(
    context: GlassBreaker,
    patient_id: Annotated[str, PathParam(max_length=36)],
    reason: Annotated[str, Form(max_length=500)],
    csrf_token: CsrfField,
    minutes: Annotated[int, Form(ge=1, le=MAX_MINUTES)] = DEFAULT_MINUTES,
) -> Response:
    context.check_csrf(csrf_token)
    try:
        grant = BreakGlassService.for_clinic(context.clinic).open(
            context.actor, patient_id, reason, minutes
        )
    except ValidationFailed as exc:
        return render(
            context,
            "oversight_break_glass_open.html",
            422,
            messages=[("error", his_error_text(context.t, exc))],
            patient_id=patient_id,
            minutes=minutes,
            max_minutes=MAX_MINUTES,
            reason=reason,
        )
    text = context.t("break_glass.opened", until=f"{grant.expires_at:%H:%M} UTC")
    return render(
        context,
        "oversight_break_glass_open.html",
        messages=[("warning", text)],
        patient_id=patient_id,
        minutes=minutes,
        max_minutes=MAX_MINUTES,
        reason="",
        opened=grant,
    )
