"""HTML pages for ECG studies: the specialist's worklist (/ecg-studies), a study with its
signature verdict first and then the 12-lead chart (/ecg-studies/<study uid>), the report form
(with the audited signature override), and the GP's form to send a recording.

Thin: the rules live in ``rekam.his.ecg_studies``; the chart comes from ``rekam.ecg.chart_svg``.
The worklist reads only Rekam's index, so it works while the PACS is down; a study page that
needs the object says so when the PACS cannot be reached (503), and a send keeps the form.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi import Path as PathParam
from starlette.responses import RedirectResponse, Response

from rekam.dicom import DicomError, DicomSigner, load_pkcs12_signer
from rekam.ecg.chart_svg import ChartTexts, ecg_chart_svg
from rekam.his.ecg_studies import EcgStudyService, OpenedStudy
from rekam.his.errors import HisError, NotFound, ValidationFailed
from rekam.his.field_sealing import DataUnreadable
from rekam.his.pacs_archive import PacsUnreachable, SignatureCheck
from rekam.his.rbac import Permission
from rekam.store.types import utc_now
from rekam.web.context import RequestContext, require
from rekam.web.error_messages import his_error_text, status_for
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

Reader = Annotated[RequestContext, Depends(require(Permission.ECG_STUDIES_READ))]
Sender = Annotated[RequestContext, Depends(require(Permission.ECG_STUDIES_SEND))]
Reporter = Annotated[RequestContext, Depends(require(Permission.ECG_STUDIES_REPORT))]
Uid = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[0-9.]+$")]
CsrfField = Annotated[str, Form(max_length=128)]

#: the largest file the send form reads (a 10 s 12-lead DICOM ECG is about 250 KB)
MAX_SEND_BYTES = 16 * 1024 * 1024
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_SIGNAL_FILES = 4


def studies_of(context: RequestContext) -> EcgStudyService:
    return EcgStudyService.for_clinic(context.clinic)


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _chart(context: RequestContext, opened: OpenedStudy) -> str | None:
    if opened.recording is None:
        return None
    t = context.t
    return ecg_chart_svg(
        opened.recording,
        ChartTexts(
            title=t("ecg_studies.chart_title"),
            not_recorded=t("ecg_studies.not_recorded"),
            rhythm=t("ecg_studies.rhythm"),
            legend=t("ecg_studies.legend"),
            calibration=t("ecg_studies.calibration"),
        ),
    )


def _local(context: RequestContext) -> Callable[..., str]:
    """Moments in the clinic's time zone."""
    zone = ZoneInfo(context.clinic.settings.timezone)

    def local(moment: datetime | None, fmt: str = "%d-%m-%Y %H:%M:%S") -> str:
        return moment.astimezone(zone).strftime(fmt) if moment is not None else ""

    return local


# The worklist ------------------------------------------------------------------------------------


@router.get("/ecg-studies")
def worklist_page(context: Reader, status: str = "") -> Response:
    chosen = SignatureCheck(status) if status in {s.value for s in SignatureCheck} else None
    entries = studies_of(context).worklist(context.actor, status=chosen)
    return render(
        context,
        "ecg_studies_worklist.html",
        entries=entries,
        status=chosen.value if chosen else "",
        statuses=[s.value for s in SignatureCheck],
        local=_local(context),
        can_send=context.actor.can(Permission.ECG_STUDIES_SEND),
    )


# Sending a recording -----------------------------------------------------------------------------


def _send_page(
    context: RequestContext,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
) -> Response:
    return render(
        context,
        "ecg_studies_send.html",
        status_code,
        messages=messages,
        values=values or {},
        error_field=error_field,
    )


@router.get("/ecg-studies/send")
def send_page(context: Sender) -> Response:
    return _send_page(context)


async def _read_limited(upload: UploadFile, limit: int, field: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ValidationFailed(
            f"the file is larger than {limit // 1024} KB",
            field=field,
            key="ecg_studies.too_large",
        )
    return data


def _patient_id(context: RequestContext, patient: str) -> str | None:
    text = patient.strip().upper()
    if not text:
        return None
    found = context.clinic.patients.find(context.actor, medical_record_number=text)
    if not found:
        raise NotFound("no such patient", key="patient.not_found")
    return found[0].id


def _signer(key_file: bytes, passphrase: str) -> DicomSigner | None:
    if not key_file:
        return None
    try:
        signer, _chain = load_pkcs12_signer(key_file, passphrase.encode() or None)
    except DicomError as exc:
        raise ValidationFailed(
            f"the signing key cannot be opened: {exc}",
            field="signing_key",
            key="ecg_studies.key_unreadable",
        ) from exc
    return signer


@router.post("/ecg-studies/send")
async def send_submit(
    context: Sender,
    csrf_token: CsrfField,
    file: Annotated[UploadFile, File()],
    patient: Annotated[str, Form(max_length=40)] = "",
    sampling_rate: Annotated[str, Form(max_length=10)] = "",
    signing_passphrase: Annotated[str, Form(max_length=200)] = "",
    signing_key: Annotated[UploadFile | None, File()] = None,
    signal_files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    context.check_csrf(csrf_token)
    values = {"patient": patient, "sampling_rate": sampling_rate}
    try:
        data = await _read_limited(file, MAX_SEND_BYTES, "file")
        key_file = (
            await _read_limited(signing_key, MAX_KEY_FILE_BYTES, "signing_key")
            if signing_key is not None and signing_key.filename
            else b""
        )
        companions = {}
        chosen = [f for f in signal_files or [] if f.filename]
        if len(chosen) > MAX_SIGNAL_FILES:
            raise ValidationFailed(
                f"a WFDB record needs at most {MAX_SIGNAL_FILES} signal files",
                field="signal_files",
                key="ecg_studies.too_many_files",
                limit=MAX_SIGNAL_FILES,
            )
        for extra in chosen:
            companions[extra.filename or ""] = await _read_limited(
                extra, MAX_SEND_BYTES, "signal_files"
            )
        try:
            fs = float(sampling_rate) if sampling_rate.strip() else None
        except ValueError:
            raise ValidationFailed(
                "the sampling rate must be a number of samples per second",
                field="sampling_rate",
                key="ecg_studies.bad_rate",
            ) from None
        stored = studies_of(context).send(
            context.actor,
            data,
            filename=file.filename or "",
            companions=companions,
            patient_id=_patient_id(context, patient),
            fs=fs,
            signer=_signer(key_file, signing_passphrase),
        )
    except HisError as exc:
        field = exc.field if isinstance(exc, ValidationFailed) else None
        return _send_page(
            context,
            status_for(exc),
            [("error", his_error_text(context.t, exc))],
            values=values,
            error_field=field,
        )
    return _redirect(
        f"/ecg-studies/{stored.study_instance_uid}?instance={stored.sop_instance_uid}&sent=1"
    )


# One study ---------------------------------------------------------------------------------------


def _study_page(
    context: RequestContext,
    study_uid: str,
    instance: str | None,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    values: dict[str, str] | None = None,
    error_field: str | None = None,
) -> Response:
    opened = studies_of(context).open_study(context.actor, study_uid, instance)
    return render(
        context,
        "ecg_studies_study.html",
        status_code,
        messages=messages,
        study=opened,
        verdict_status=opened.status.value,
        chart=_chart(context, opened),
        local=_local(context),
        now=utc_now(),
        values=values or {},
        error_field=error_field,
        can_report=context.actor.can(Permission.ECG_STUDIES_REPORT),
        can_override=context.actor.can(Permission.ECG_SIGNATURE_OVERRIDE),
    )


@router.get("/ecg-studies/{study_uid}")
def study_page(
    context: Reader,
    study_uid: Uid,
    instance: str | None = None,
    reported: int = 0,
    sent: int = 0,
) -> Response:
    messages = [("ok", context.t("ecg_studies.reported_ok"))] if reported else []
    if sent:
        messages.append(("ok", context.t("ecg_studies.sent_ok")))
    try:
        return _study_page(context, study_uid, instance, messages=messages)
    except (NotFound, PacsUnreachable, DataUnreadable) as exc:
        return _error_page(context, exc)


def _error_page(context: RequestContext, exc: HisError) -> Response:
    """The study cannot be shown: no such study, the PACS is down, or the object is gone."""
    return render(
        context, "error.html", status_for(exc), messages=[("error", his_error_text(context.t, exc))]
    )


@router.post("/ecg-studies/{study_uid}/report")
def report_submit(
    context: Reporter,
    study_uid: Uid,
    csrf_token: CsrfField,
    sop_instance_uid: Annotated[str, Form(min_length=1, max_length=64)],
    interpretation: Annotated[str, Form(max_length=20_000)] = "",
    override_reason: Annotated[str, Form(max_length=2_000)] = "",
) -> Response:
    context.check_csrf(csrf_token)
    try:
        studies_of(context).report(
            context.actor,
            sop_instance_uid,
            interpretation,
            override_reason=override_reason or None,
        )
    except HisError as exc:
        field = exc.field if isinstance(exc, ValidationFailed) else None
        try:
            return _study_page(
                context,
                study_uid,
                sop_instance_uid,
                status_for(exc),
                [("error", his_error_text(context.t, exc))],
                values={"interpretation": interpretation, "override_reason": override_reason},
                error_field=field,
            )
        except (NotFound, PacsUnreachable, DataUnreadable) as again:
            return _error_page(context, again)
    return _redirect(f"/ecg-studies/{study_uid}?instance={sop_instance_uid}&reported=1")
