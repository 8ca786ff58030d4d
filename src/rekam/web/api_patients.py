"""JSON API for patients (the clinic forms build on the same service)."""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Literal

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, StreamingResponse

from rekam.his.medical_record import MedicalRecordService
from rekam.his.patients import PatientFileInfo, PatientInput, PatientRecord, PatientSummary
from rekam.his.rbac import Permission
from rekam.web.api import CsrfHeader as CsrfToken
from rekam.web.context import RequestContext, logged_in_context, require

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])

Reader = Annotated[RequestContext, Depends(require(Permission.PATIENTS_READ))]
Writer = Annotated[RequestContext, Depends(require(Permission.PATIENTS_WRITE))]
Eraser = Annotated[RequestContext, Depends(require(Permission.PATIENTS_ERASE))]
# Reading one patient's data: the service decides (staff by role, a patient account its own).
Anyone = Annotated[RequestContext, Depends(logged_in_context)]


class PatientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=200)
    birth_date: date
    sex: Literal["M", "F"]
    nik: str = Field(min_length=16, max_length=24, description="16 digits (spaces/dots allowed)")
    bpjs: str | None = Field(default=None, max_length=20, description="13 digits")
    address: str | None = Field(default=None, max_length=500)
    phone: str | None = Field(default=None, max_length=32)
    emergency_contact: str | None = Field(default=None, max_length=200)
    allergies: str | None = Field(default=None, max_length=1000)
    medical_history: str | None = Field(default=None, max_length=10_000)


class PatientOut(BaseModel):
    id: str
    medical_record_number: str
    name: str
    birth_date: date
    sex: Literal["M", "F"]
    nik: str
    bpjs: str | None
    address: str | None
    phone: str | None
    emergency_contact: str | None
    allergies: str | None
    medical_history: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, record: PatientRecord) -> PatientOut:
        return cls(**record.__dict__)


class PatientSummaryOut(BaseModel):
    id: str
    medical_record_number: str
    name: str
    birth_date: date
    sex: Literal["M", "F"]

    @classmethod
    def of(cls, summary: PatientSummary) -> PatientSummaryOut:
        return cls(**summary.__dict__)


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=5, max_length=500)


class ErasureOut(BaseModel):
    erased_at: datetime


def _csrf(context: RequestContext, token: str | None) -> None:
    context.check_csrf(token)


@router.post("", response_model=PatientOut, status_code=201)
def register_patient(context: Writer, body: PatientIn, csrf: CsrfToken = None) -> PatientOut:
    _csrf(context, csrf)
    record = context.clinic.patients.register(context.actor, PatientInput(**body.model_dump()))
    return PatientOut.of(record)


@router.get("", response_model=list[PatientSummaryOut])
def search_patients(
    context: Reader,
    nik: Annotated[str | None, Query(max_length=24)] = None,
    bpjs: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    mrn: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[PatientSummaryOut]:
    found = context.clinic.patients.find(
        context.actor,
        nik=nik,
        bpjs=bpjs,
        name=name,
        medical_record_number=mrn,
        limit=limit,
        offset=offset,
    )
    return [PatientSummaryOut.of(s) for s in found]


@router.get("/{patient_id}", response_model=PatientOut)
def read_patient(
    context: Anyone, patient_id: Annotated[str, PathParam(max_length=36)]
) -> PatientOut:
    return PatientOut.of(context.clinic.patients.get(context.actor, patient_id))


@router.post("/{patient_id}/erasure", response_model=ErasureOut)
def erase_patient(
    context: Eraser,
    patient_id: Annotated[str, PathParam(max_length=36)],
    body: ErasureIn,
    csrf: CsrfToken = None,
) -> ErasureOut:
    _csrf(context, csrf)
    return ErasureOut(
        erased_at=context.clinic.patients.erase(context.actor, patient_id, body.reason)
    )


class FileOut(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, info: PatientFileInfo) -> FileOut:
        return cls(
            id=info.id,
            filename=info.filename,
            content_type=info.content_type,
            size=info.size,
            sha256=info.sha256,
            created_at=info.created_at,
        )


class _RequestBodyReader(io.RawIOBase):
    """The request body as a blocking file for the file store, read in a worker thread from the
    event loop's stream: nothing is spooled to disk, memory stays constant."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self._stream = stream
        self._buffer = b""
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            return b""

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._done:
            chunk = anyio.from_thread.run(self._next)
            if chunk == b"":
                self._done = True
            self._buffer = chunk
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


@router.put("/{patient_id}/files", response_model=FileOut, status_code=201)
async def upload_file(
    context: Writer,
    request: Request,
    patient_id: Annotated[str, PathParam(max_length=36)],
    filename: Annotated[str, Query(min_length=1, max_length=200)],
    csrf: CsrfToken = None,
) -> FileOut:
    """Upload a file as the raw request body (its Content-Type is kept). It is encrypted as it
    streams in; nothing unencrypted touches the disk."""
    _csrf(context, csrf)
    content_type = request.headers.get("content-type", "application/octet-stream")
    reader = io.BufferedReader(_RequestBodyReader(request.stream()), buffer_size=64 * 1024)
    info = await anyio.to_thread.run_sync(
        context.clinic.patients.attach_file,
        context.actor,
        patient_id,
        reader,
        filename,
        content_type,
    )
    return FileOut.of(info)


@router.get("/{patient_id}/files", response_model=list[FileOut])
def list_files(
    context: Anyone, patient_id: Annotated[str, PathParam(max_length=36)]
) -> list[FileOut]:
    return [FileOut.of(f) for f in context.clinic.patients.list_files(context.actor, patient_id)]


@router.get("/{patient_id}/files/{file_id}", response_class=StreamingResponse)
def download_file(
    context: Anyone,
    patient_id: Annotated[str, PathParam(max_length=36)],
    file_id: Annotated[str, PathParam(max_length=36)],
) -> StreamingResponse:
    """The decrypted file. Each chunk is authenticated before it is sent; if a stored file was
    altered, the transfer stops short of Content-Length, so clients never take it as complete."""
    info, chunks = context.clinic.patients.open_file(context.actor, patient_id, file_id)
    quoted = urllib.parse.quote(info.filename)
    return StreamingResponse(
        chunks,
        media_type=info.content_type,
        headers={
            "content-length": str(info.size),
            "content-disposition": f"attachment; filename*=UTF-8''{quoted}",
            "x-content-sha256": info.sha256,
        },
    )


@router.get("/{patient_id}/record")
def read_medical_record(
    context: Anyone, patient_id: Annotated[str, PathParam(max_length=36)]
) -> JSONResponse:
    """The whole medical record as one timeline (newest first): consultations with diagnoses,
    vital signs and amendments, procedures, lab orders and results, prescriptions, files."""
    record = MedicalRecordService.for_clinic(context.clinic).timeline(context.actor, patient_id)
    return JSONResponse(jsonable_encoder(record))
