"""JSON API for ECG studies: the worklist, one study with its signature verdicts (verified again
when it is read), uploading a DICOM object, and reporting (with the audited signature override).

Thin: parse, call ``rekam.his.ecg_studies``, answer. The same in every PACS mode: the index is
Rekam's database, the bytes come from the configured PACS; an unreachable PACS is a 503
(``pacs_unavailable``) with nothing changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from rekam.dicom import SignatureVerdict
from rekam.his.ecg_studies import (
    MAX_INTERPRETATION_CHARS,
    MAX_OVERRIDE_REASON_CHARS,
    EcgStudyService,
    OpenedStudy,
    StudyReport,
    WorklistEntry,
)
from rekam.his.errors import ValidationFailed
from rekam.his.pacs_archive import ArchivedInstance, SignatureCheck
from rekam.his.rbac import Permission
from rekam.web.api import CsrfHeader
from rekam.web.context import RequestContext, require

router = APIRouter(prefix="/api/v1/ecg-studies", tags=["ecg-studies"])

Reader = Annotated[RequestContext, Depends(require(Permission.ECG_STUDIES_READ))]
Sender = Annotated[RequestContext, Depends(require(Permission.ECG_STUDIES_SEND))]
Reporter = Annotated[RequestContext, Depends(require(Permission.ECG_STUDIES_REPORT))]
Uid = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]
Status = Literal["valid", "invalid", "unsigned"]

#: the largest DICOM object the upload takes (as the send form; a 10 s 12-lead ECG is ~250 KB)
MAX_UPLOAD_BYTES = 16 * 1024 * 1024


def studies_of(context: RequestContext) -> EcgStudyService:
    return EcgStudyService.for_clinic(context.clinic)


class InstanceOut(BaseModel):
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    modality: str | None
    study_date: str | None
    signature_status: Status = Field(description="as found when the object was stored")
    signer: str | None
    size: int
    stored_by: str
    stored_at: datetime

    @classmethod
    def of(cls, item: ArchivedInstance) -> InstanceOut:
        return cls(
            sop_instance_uid=item.sop_instance_uid,
            sop_class_uid=item.sop_class_uid,
            study_instance_uid=item.study_instance_uid,
            series_instance_uid=item.series_instance_uid,
            modality=item.modality,
            study_date=item.study_date,
            signature_status=item.signature_status.value,
            signer=item.signer,
            size=item.size,
            stored_by=item.stored_by,
            stored_at=item.stored_at,
        )


class PatientOut(BaseModel):
    """Who the study is of; names are given only to those who may see that patient."""

    visible: bool
    patient_id: str | None = Field(description="the Rekam patient, when matched")
    dicom_patient_name: str | None
    dicom_patient_id: str | None

    @classmethod
    def of(
        cls, visible: bool, patient_id: str | None, name: str | None, dicom_id: str | None
    ) -> PatientOut:
        return cls(
            visible=visible,
            patient_id=patient_id,
            dicom_patient_name=name if visible else None,
            dicom_patient_id=dicom_id if visible else None,
        )


class WorklistStudyOut(BaseModel):
    study_instance_uid: str
    study_date: str | None
    accession_number: str | None
    study_description: str | None
    patient: PatientOut
    signature_status: Status = Field(description="as found when stored (worst of its objects)")
    reported: bool
    sent_by: str
    last_stored_at: datetime
    instances: list[InstanceOut]

    @classmethod
    def of(cls, entry: WorklistEntry) -> WorklistStudyOut:
        study = entry.study
        visible = entry.patient_visible
        return cls(
            study_instance_uid=study.study_instance_uid,
            study_date=study.study_date,
            accession_number=study.accession_number if visible else None,
            study_description=study.study_description,
            patient=PatientOut.of(
                visible, study.patient_id, study.dicom_patient_name, study.dicom_patient_id
            ),
            signature_status=study.signature_status.value,
            reported=entry.reported,
            sent_by=entry.sent_by,
            last_stored_at=study.last_stored_at,
            instances=[InstanceOut.of(i) for i in study.instances],
        )


class VerdictOut(BaseModel):
    """One DICOM signature, verified when the study was read."""

    status: str
    valid: bool
    reason: str
    signer_name: str | None
    licence_number: str | None
    signed_at: datetime | None
    mac_algorithm: str | None
    signature_uid: str | None
    findings: list[str]

    @classmethod
    def of(cls, verdict: SignatureVerdict) -> VerdictOut:
        return cls(
            status=verdict.status.value,
            valid=verdict.valid,
            reason=verdict.reason,
            signer_name=verdict.signer_name,
            licence_number=verdict.licence_number,
            signed_at=verdict.signed_at,
            mac_algorithm=verdict.mac_algorithm,
            signature_uid=verdict.signature_uid,
            findings=list(verdict.findings),
        )


class SignatureOut(BaseModel):
    status: Status = Field(description="found now: valid only if signed and every signature holds")
    recorded_status: Status = Field(description="as found when the object was stored")
    needs_override: bool
    verification_error: str | None
    object_altered: bool = Field(description="the PACS returned an object other than the stored")
    verdicts: list[VerdictOut]


class RecordingOut(BaseModel):
    leads: list[str]
    sampling_rate: float
    duration_seconds: float


class ReportOut(BaseModel):
    id: str
    sop_instance_uid: str
    interpretation: str | None
    signature_status: Status = Field(description="found when the report was written")
    signature_override: bool
    override_reason: str | None
    reported_by: str
    reported_at: datetime

    @classmethod
    def of(cls, report: StudyReport) -> ReportOut:
        return cls(
            id=report.id,
            sop_instance_uid=report.sop_instance_uid,
            interpretation=report.interpretation,
            signature_status=report.signature_status.value,
            signature_override=report.signature_override,
            override_reason=report.override_reason,
            reported_by=report.reported_by,
            reported_at=report.reported_at,
        )


class StudyOut(BaseModel):
    study_instance_uid: str
    instance: InstanceOut = Field(description="the object read and verified")
    instances: list[InstanceOut]
    patient: PatientOut
    accession_number: str | None
    study_description: str | None
    signature: SignatureOut
    recording: RecordingOut | None
    recording_error: str | None
    reports: list[ReportOut]

    @classmethod
    def of(cls, opened: OpenedStudy) -> StudyOut:
        chosen = opened.instance
        visible = opened.patient_visible
        recording = opened.recording
        return cls(
            study_instance_uid=opened.study_instance_uid,
            instance=InstanceOut.of(chosen),
            instances=[InstanceOut.of(i) for i in opened.instances],
            patient=PatientOut.of(
                visible, chosen.patient_id, chosen.dicom_patient_name, chosen.dicom_patient_id
            ),
            accession_number=chosen.accession_number if visible else None,
            study_description=chosen.study_description,
            signature=SignatureOut(
                status=opened.status.value,
                recorded_status=chosen.signature_status.value,
                needs_override=opened.needs_override,
                verification_error=opened.verification_error,
                object_altered=opened.object_altered,
                verdicts=[VerdictOut.of(v) for v in opened.verdicts],
            ),
            recording=RecordingOut(
                leads=list(recording.lead_names),
                sampling_rate=recording.fs,
                duration_seconds=round(recording.duration_s, 3),
            )
            if recording is not None
            else None,
            recording_error=opened.recording_error,
            reports=[ReportOut.of(r) for r in opened.reports],
        )


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sop_instance_uid: str = Field(
        min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$", description="the object"
    )
    interpretation: str = Field(min_length=1, max_length=MAX_INTERPRETATION_CHARS)
    override_reason: str | None = Field(
        default=None,
        max_length=MAX_OVERRIDE_REASON_CHARS,
        description="required (at least 10 characters, and the signature override permission) "
        "when the object's signature does not verify or it is unsigned",
    )


@router.get("", response_model=list[WorklistStudyOut])
def worklist(
    context: Reader,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[WorklistStudyOut]:
    """Incoming studies, newest first (statuses as found when stored)."""
    chosen = SignatureCheck(status) if status is not None else None
    entries = studies_of(context).worklist(context.actor, status=chosen, limit=limit)
    return [WorklistStudyOut.of(e) for e in entries]


@router.get(
    "/{study_uid}",
    response_model=StudyOut,
    responses={503: {"description": "pacs_unavailable: the PACS cannot be reached"}},
)
def read_study(
    context: Reader,
    study_uid: Uid,
    instance: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")
    ] = None,
) -> StudyOut:
    """One study: the object (newest, or ``instance``) fetched from the PACS and its signatures
    verified now."""
    return StudyOut.of(studies_of(context).open_study(context.actor, study_uid, instance))


@router.post(
    "/objects",
    response_model=InstanceOut,
    status_code=201,
    responses={
        409: {"description": "duplicate: the object is already stored"},
        413: {"description": "the file is too large"},
        503: {"description": "pacs_unavailable: the PACS cannot be reached; nothing stored"},
    },
)
async def upload_object(
    context: Sender,
    file: Annotated[UploadFile, File(description="one DICOM Part 10 object")],
    patient_id: Annotated[
        str | None,
        Form(max_length=36, description="the Rekam patient (default: matched by Patient ID)"),
    ] = None,
    csrf: CsrfHeader = None,
) -> InstanceOut:
    """Store one DICOM object as it is (signed or not): verified, indexed, kept in the PACS."""
    context.check_csrf(csrf)
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationFailed(
            f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
            field="file",
            key="ecg_studies.too_large",
        )
    stored = studies_of(context).send(
        context.actor,
        data,
        filename="object.dcm",  # DICOM only here: anything else is refused as not DICOM
        patient_id=patient_id or None,
    )
    return InstanceOut.of(stored)


@router.post(
    "/{study_uid}/reports",
    response_model=ReportOut,
    status_code=201,
    responses={503: {"description": "pacs_unavailable: the PACS cannot be reached"}},
)
def submit_report(
    context: Reporter, study_uid: Uid, body: ReportIn, csrf: CsrfHeader = None
) -> ReportOut:
    """Report on one object of the study; its signatures are verified again first."""
    context.check_csrf(csrf)
    report = studies_of(context).report(
        context.actor,
        body.sop_instance_uid,
        body.interpretation,
        override_reason=body.override_reason,
        study_instance_uid=study_uid,
    )
    return ReportOut.of(report)
