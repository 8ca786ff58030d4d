"""Orthanc (or any DICOMweb server) over HTTP with httpx: STOW-RS, QIDO-RS, WADO-RS.

``base_url`` is the DICOMweb root, e.g. ``http://127.0.0.1:8042/dicom-web``. Objects are asked
for in the transfer syntax they were stored in (``transfer-syntax=*``), so a signed object comes
back byte for byte.

    >>> pacs = OrthancDicomWeb("http://127.0.0.1:8042/dicom-web", auth=("rekam", "secret"))
    >>> stored = pacs.store(Path("ecg.dcm").read_bytes())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import httpx

from rekam.dicom.errors import DicomError
from rekam.dicom.files import read_dicom
from rekam.dicom.pacs.errors import (
    InstanceNotFound,
    PacsRefused,
    PacsResponseInvalid,
    PacsUnavailable,
)
from rekam.dicom.pacs.interface import (
    InstanceSummary,
    SeriesSummary,
    StoredInstance,
    StudyQuery,
    StudySummary,
)
from rekam.dicom.pacs.multipart_related import encode_multipart_related, split_multipart_related

__all__ = ["OrthancDicomWeb"]

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
_STUDY_FIELDS = ("00100010", "00081030", "00080061", "00201208")
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_FAILURE_REASON = "00081197"

JsonObject = dict[str, Any]


def _value(item: JsonObject, tag: str) -> Any:
    element = item.get(tag)
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    if not isinstance(values, list) or not values:
        return None
    return values


def _text(item: JsonObject, tag: str) -> str | None:
    values = _value(item, tag)
    if values is None:
        return None
    first = values[0]
    if isinstance(first, dict):  # person name
        first = first.get("Alphabetic")
    text = str(first).strip() if first is not None else ""
    return text or None


def _number(item: JsonObject, tag: str) -> int | None:
    text = _text(item, tag)
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _required(item: JsonObject, tag: str, what: str) -> str:
    text = _text(item, tag)
    if text is None:
        raise PacsResponseInvalid(f"The PACS answered a query without the {what}.")
    return text


class OrthancDicomWeb:
    """The :class:`~rekam.dicom.pacs.Pacs` interface over DICOMweb."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, auth=auth, timeout=timeout, verify=verify
        )

    def __repr__(self) -> str:
        return f"OrthancDicomWeb({self.base_url})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OrthancDicomWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # HTTP --------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise PacsUnavailable(
                f"The PACS at {self.base_url} did not answer in time ({type(exc).__name__})."
            ) from exc
        except httpx.TransportError as exc:
            raise PacsUnavailable(
                f"The PACS at {self.base_url} cannot be reached ({exc}): is it running?"
            ) from exc
        if response.status_code in (401, 403):
            raise PacsRefused(
                f"The PACS at {self.base_url} refused Rekam's credentials "
                f"(HTTP {response.status_code}): check the PACS user name and password."
            )
        return response

    def _json_list(
        self, path: str, params: dict[str, str], *, missing_is_empty: bool = False
    ) -> list[JsonObject]:
        """``missing_is_empty``: a 404 means "no such study" (not a wrong URL)."""
        response = self._request("GET", path, params=params, headers={"Accept": DICOM_JSON})
        if response.status_code == 204:
            return []
        if response.status_code == 404:
            if missing_is_empty:
                return []
            raise PacsRefused(
                f"The PACS has no DICOMweb service at {self.base_url} (HTTP 404): check the "
                "DICOMweb URL."
            )
        if response.status_code != 200:
            raise PacsRefused(
                f"The PACS refused the query (HTTP {response.status_code}): {response.text[:200]}"
            )
        try:
            found = response.json()
        except ValueError as exc:
            raise PacsResponseInvalid("The PACS answered a query with something not JSON.") from exc
        if not isinstance(found, list) or not all(isinstance(item, dict) for item in found):
            raise PacsResponseInvalid(
                "The PACS answered a query with JSON that is not a list of DICOM objects."
            )
        return found

    # Store -------------------------------------------------------------------------------------

    def store(self, data: bytes) -> StoredInstance:
        """STOW-RS one Part 10 object (checked first: bad input never reaches the PACS)."""
        dataset = read_dicom(data)
        body, content_type = encode_multipart_related([data], DICOM)
        response = self._request(
            "POST",
            "/studies",
            content=body,
            headers={"Content-Type": content_type, "Accept": DICOM_JSON},
        )
        if response.status_code not in (200, 202):
            raise PacsRefused(
                f"The PACS refused to store the object (HTTP {response.status_code}): "
                f"{response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise PacsResponseInvalid("The PACS answered STOW-RS with something not JSON.") from exc
        if not isinstance(answer, dict):
            raise PacsResponseInvalid("The PACS answered STOW-RS with unexpected JSON.")
        failed = _value(answer, _FAILED_SOP_SEQUENCE)
        if failed:
            reason = _text(failed[0], _FAILURE_REASON) if isinstance(failed[0], dict) else None
            raise PacsRefused(
                "The PACS did not store the object"
                + (f" (failure reason {reason})." if reason else ".")
            )
        stored = _value(answer, _REFERENCED_SOP_SEQUENCE) or []
        uid = str(dataset.SOPInstanceUID)
        if not any(isinstance(s, dict) and _text(s, "00081155") == uid for s in stored):
            raise PacsResponseInvalid("The PACS's STOW-RS answer does not list the object.")
        return StoredInstance(
            sop_class_uid=str(dataset.SOPClassUID),
            sop_instance_uid=uid,
            study_instance_uid=str(dataset.StudyInstanceUID),
            series_instance_uid=str(dataset.SeriesInstanceUID),
        )

    # Find --------------------------------------------------------------------------------------

    def find_studies(self, query: StudyQuery) -> list[StudySummary]:
        """QIDO-RS ``/studies``."""
        params = {"includefield": ",".join(_STUDY_FIELDS)}
        for key, value in (
            ("PatientID", query.patient_id),
            ("StudyDate", query.study_date),
            ("AccessionNumber", query.accession_number),
            ("StudyInstanceUID", query.study_instance_uid),
        ):
            if value:
                params[key] = value
        return [
            StudySummary(
                study_instance_uid=_required(item, "0020000D", "Study Instance UID"),
                study_date=_text(item, "00080020"),
                accession_number=_text(item, "00080050"),
                patient_id=_text(item, "00100020"),
                patient_name=_text(item, "00100010"),
                study_description=_text(item, "00081030"),
                modalities=tuple(str(m) for m in (_value(item, "00080061") or [])),
                number_of_instances=_number(item, "00201208"),
            )
            for item in self._json_list("/studies", params)
        ]

    def find_series(self, study_instance_uid: str) -> list[SeriesSummary]:
        """QIDO-RS ``/studies/{uid}/series``."""
        items = self._json_list(
            f"/studies/{study_instance_uid}/series",
            {"includefield": "00201209"},
            missing_is_empty=True,
        )
        return [
            SeriesSummary(
                study_instance_uid=study_instance_uid,
                series_instance_uid=_required(item, "0020000E", "Series Instance UID"),
                modality=_text(item, "00080060"),
                series_number=_number(item, "00200011"),
                number_of_instances=_number(item, "00201209"),
            )
            for item in items
        ]

    def find_instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceSummary]:
        """QIDO-RS ``/studies/{uid}[/series/{uid}]/instances``."""
        path = f"/studies/{study_instance_uid}"
        if series_instance_uid:
            path += f"/series/{series_instance_uid}"
        return [
            self._instance(item, study_instance_uid)
            for item in self._json_list(f"{path}/instances", {}, missing_is_empty=True)
        ]

    def _instance(self, item: JsonObject, study_instance_uid: str | None = None) -> InstanceSummary:
        return InstanceSummary(
            study_instance_uid=_text(item, "0020000D")
            or study_instance_uid
            or _required(item, "0020000D", "Study Instance UID"),
            series_instance_uid=_required(item, "0020000E", "Series Instance UID"),
            sop_instance_uid=_required(item, "00080018", "SOP Instance UID"),
            sop_class_uid=_text(item, "00080016"),
            instance_number=_number(item, "00200013"),
        )

    def locate(self, sop_instance_uid: str) -> InstanceSummary:
        """Study and series of an instance known only by its SOP Instance UID."""
        found = [
            self._instance(item)
            for item in self._json_list("/instances", {"SOPInstanceUID": sop_instance_uid})
        ]
        found = [i for i in found if i.sop_instance_uid == sop_instance_uid]
        if not found:
            raise InstanceNotFound(
                f"The PACS holds no object with SOP Instance UID {sop_instance_uid}."
            )
        return found[0]

    # Get ---------------------------------------------------------------------------------------

    def get(self, sop_instance_uid: str) -> bytes:
        """WADO-RS the instance, as stored (``transfer-syntax=*``)."""
        where = self.locate(sop_instance_uid)
        response = self._request(
            "GET",
            f"/studies/{where.study_instance_uid}/series/{where.series_instance_uid}"
            f"/instances/{sop_instance_uid}",
            headers={"Accept": f'multipart/related; type="{DICOM}"; transfer-syntax=*'},
        )
        if response.status_code == 404:
            raise InstanceNotFound(
                f"The PACS holds no object with SOP Instance UID {sop_instance_uid}."
            )
        if response.status_code != 200:
            raise PacsRefused(
                f"The PACS refused to return the object (HTTP {response.status_code})."
            )
        parts = split_multipart_related(response.content, response.headers.get("content-type", ""))
        if len(parts) != 1:
            raise PacsResponseInvalid(
                f"The PACS returned {len(parts)} objects where one was asked for."
            )
        data = parts[0][1]
        try:
            dataset = read_dicom(data)
        except DicomError as exc:
            raise PacsResponseInvalid(f"The PACS sent back an unreadable object: {exc}") from exc
        if str(dataset.SOPInstanceUID) != sop_instance_uid:
            raise PacsResponseInvalid("The PACS sent back a different object than asked for.")
        return data
