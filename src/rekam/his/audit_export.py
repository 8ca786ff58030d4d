"""Export the audit trail: JSON lines, or a FHIR R4 Bundle of ``AuditEvent`` resources.

Mapping choices (FHIR R4, http://hl7.org/fhir/R4/auditevent.html):

- ``type`` (required Coding): DICOM DCM ``110110`` *Patient Record* when the entry names a
  patient, ``110114`` *User Authentication* for ``session.*``/``login*`` actions, else ``110100``
  *Application Activity*. Rekam's own action name goes in ``subtype`` (system
  ``urn:rekam:audit-action``).
- ``action`` (C | R | U | D | E) from the last word of Rekam's action: create/open/register/
  link/upload → C; read/list/download/view/export → R; update/amend/sign/result/dispense/review/
  cancel → U; erase/delete → D; everything else (search, login, logout, verify) → E, as the
  standard puts queries and searches under E.
- ``outcome``: ``success`` and ``break-glass`` → ``0`` (success); ``denied``/``refused``/
  ``failure``/``minor-failure`` → ``4`` (minor failure); anything else → ``8`` (serious failure).
- ``agent``: one requestor, ``who`` an identifier (system ``urn:rekam:username``) since user
  names, not ids, are what the trail keeps; ``role`` with Rekam's role code (system
  ``urn:rekam:role``); ``network`` with the source address and type ``2`` (IP address).
- ``source.observer``: the clinic's organisation name; source type ``4`` (Application Server).
- ``entity``: ``Patient/<id>`` (entity type ``1`` Person, role ``1`` Patient) and, when the
  entry names a record, a second entity identified by it (type ``2`` System Object).
- break-glass entries carry ``purposeOfEvent`` ``BTG`` (break the glass, v3 ActReason).
- the chain position and hashes travel in an extension (``urn:rekam:audit-chain``) so an
  exported bundle can be checked against the database later.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from rekam.his.audit import BREAK_GLASS_MARKER, AuditEntryView

ExportFormat = Literal["json", "fhir"]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
EXPORT_NAMESPACE = uuid.UUID("5f0d1f0e-1c2b-4c59-9a0e-7a0e6e0d2b11")

_CREATE = {"create", "open", "register", "link", "link_account", "upload", "order", "prescribe"}
_READ = {"read", "list", "download", "view", "export"}
_UPDATE = {"update", "amend", "sign", "result", "dispense", "review", "cancel", "change"}
_DELETE = {"erase", "delete", "remove"}


def fhir_action(action: str) -> Literal["C", "R", "U", "D", "E"]:
    verb = action.rsplit(".", 1)[-1].lower()
    if verb in _CREATE:
        return "C"
    if verb in _READ:
        return "R"
    if verb in _UPDATE:
        return "U"
    if verb in _DELETE:
        return "D"
    return "E"


def fhir_outcome(outcome: str) -> str:
    if outcome in ("success", BREAK_GLASS_MARKER):
        return "0"
    if outcome in ("denied", "refused", "failure", "minor-failure"):
        return "4"
    return "8"


def _event_type(entry: AuditEntryView) -> dict[str, str]:
    if entry.patient_id:
        return {"system": DCM, "code": "110110", "display": "Patient Record"}
    if entry.action.startswith(("session", "login")):
        return {"system": DCM, "code": "110114", "display": "User Authentication"}
    return {"system": DCM, "code": "110100", "display": "Application Activity"}


def _recorded(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_event_resource(entry: AuditEntryView, observer: str = "Rekam") -> dict[str, Any]:
    """One entry as a FHIR R4 AuditEvent resource."""
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                    "code": "humanuser" if entry.actor != "system" else "dataprocessor",
                }
            ]
        },
        "who": {
            "identifier": {"system": "urn:rekam:username", "value": entry.actor},
            "display": entry.actor,
        },
        "role": [{"coding": [{"system": "urn:rekam:role", "code": entry.role}]}],
        "requestor": True,
    }
    if entry.source:
        agent["network"] = {"address": entry.source, "type": "2"}
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"rekam-audit-{entry.seq}",
        "extension": [
            {
                "url": "urn:rekam:audit-chain",
                "extension": [
                    {"url": "seq", "valueInteger": entry.seq},
                    {"url": "entryHash", "valueString": entry.entry_hash},
                ],
            }
        ],
        "type": _event_type(entry),
        "subtype": [{"system": "urn:rekam:audit-action", "code": entry.action}],
        "action": fhir_action(entry.action),
        "recorded": _recorded(entry.at),
        "outcome": fhir_outcome(entry.outcome),
        "agent": [agent],
        "source": {
            "observer": {"display": observer},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if entry.outcome != "success":
        resource["outcomeDesc"] = entry.outcome
    if entry.break_glass:
        resource["purposeOfEvent"] = [
            {"coding": [{"system": ACT_REASON, "code": "BTG", "display": "break the glass"}]}
        ]
    entities: list[dict[str, Any]] = []
    if entry.patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{entry.patient_id}"},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if entry.record:
        entities.append(
            {
                "what": {"identifier": {"system": "urn:rekam:record", "value": entry.record}},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            }
        )
    if entities:
        resource["entity"] = entities
    return resource


def entry_json(entry: AuditEntryView) -> dict[str, Any]:
    """One entry as a plain JSON object (every stored field, so the chain can be re-checked)."""
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "patient_id": entry.patient_id,
        "record": entry.record,
        "source": entry.source,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "entry_hash": entry.entry_hash,
        "break_glass": entry.break_glass,
    }


def json_lines(entries: Iterable[AuditEntryView]) -> Iterator[str]:
    for entry in entries:
        yield json.dumps(entry_json(entry), ensure_ascii=False, separators=(",", ":")) + "\n"


def fhir_bundle_chunks(
    entries: Iterable[AuditEntryView], observer: str = "Rekam", now: datetime | None = None
) -> Iterator[str]:
    """A FHIR R4 Bundle (type ``collection``) written piece by piece: constant memory."""
    stamp = _recorded(now or datetime.now(UTC))
    yield (
        '{"resourceType":"Bundle","id":"'
        + str(uuid.uuid4())
        + '","type":"collection","timestamp":"'
        + stamp
        + '","entry":['
    )
    first = True
    for entry in entries:
        item = {
            "fullUrl": f"urn:uuid:{uuid.uuid5(EXPORT_NAMESPACE, entry.entry_hash)}",
            "resource": audit_event_resource(entry, observer),
        }
        yield ("" if first else ",") + json.dumps(item, ensure_ascii=False, separators=(",", ":"))
        first = False
    yield "]}\n"


def export_chunks(
    entries: Iterable[AuditEntryView], export_format: ExportFormat, observer: str = "Rekam"
) -> Iterator[str]:
    if export_format == "fhir":
        return fhir_bundle_chunks(entries, observer)
    return json_lines(entries)
