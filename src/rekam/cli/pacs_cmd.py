"""``rekam pacs``: send DICOM objects to the configured PACS, search it, fetch an object back.

The PACS is the embedded archive (default) or Orthanc (``REKAM_PACS=orthanc``, over DIMSE or
DICOMweb by ``REKAM_PACS_PROTOCOL``). In both modes Rekam's database keeps the index: ``send``
verifies, indexes and stores (the bytes go to the blob store or to Orthanc), ``find`` searches the
index, ``get`` fetches the bytes from where they live; ``sync`` indexes objects that reached
Orthanc by another route (a modality sending to it directly). The person at this server's
console acts with a nurse's ECG permissions (send and read studies) and is named in the audit
trail.

Exit codes: 0 ok, 1 invalid input or a PACS error (every file is still tried), 2 usage error.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rekam.cli.output import EXIT_INVALID, EXIT_USAGE, console, errors, print_json
from rekam.cli.settings_loader import clinic_or_exit, settings_or_exit
from rekam.dicom import DicomError
from rekam.dicom.pacs import Pacs, StudyQuery, StudySummary
from rekam.his import HisError
from rekam.his.pacs_archive import PacsArchiveService
from rekam.his.pacs_selection import open_pacs, orthanc_connection
from rekam.his.rbac import Actor, Role

app = typer.Typer(
    help="The PACS: send DICOM ECG objects, find studies, get an object back.",
    no_args_is_help=True,
)

#: Largest file ``send`` reads (the archive refuses more anyway).
MAX_FILE_BYTES = 64 * 1024 * 1024


def console_operator() -> Actor:
    """The person at the console, with a nurse's ECG permissions; the audit names them."""
    return Actor(
        user_id=None,
        username=f"console:{getpass.getuser()}",
        role=Role.NURSE,
        source_address="local",
    )


@contextmanager
def configured_pacs() -> Iterator[Pacs]:
    """Rekam's index in front of the configured store (Orthanc: one association or connection
    pool for the whole command)."""
    clinic = clinic_or_exit()
    try:
        if clinic.settings.pacs == "orthanc":
            with orthanc_connection(clinic.settings) as orthanc:
                yield open_pacs(clinic, console_operator(), orthanc)
            return
        yield open_pacs(clinic, console_operator())
    finally:
        clinic.close()


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(EXIT_INVALID)


@app.command("send")
def send(
    files: list[Path] = typer.Argument(..., help="DICOM files to store", exists=False),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON"),
) -> None:
    """Store DICOM files in the configured PACS (a progress bar for many files)."""
    results: list[dict[str, str]] = []
    failed = 0
    with (
        configured_pacs() as pacs,
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,
            disable=len(files) < 2 or as_json,
        ) as progress,
    ):
        task = progress.add_task("sending", total=len(files))
        for path in files:
            try:
                if not path.is_file():
                    raise DicomError(f"No file found at {path}.")
                if path.stat().st_size > MAX_FILE_BYTES:
                    raise DicomError(f"{path.name} is larger than {MAX_FILE_BYTES} bytes.")
                stored = pacs.store(path.read_bytes())
                results.append(
                    {"file": str(path), "status": "stored",
                     "sop_instance_uid": stored.sop_instance_uid,
                     "study_instance_uid": stored.study_instance_uid}
                )  # fmt: skip
            except (DicomError, HisError) as exc:
                failed += 1
                results.append({"file": str(path), "status": "failed", "error": str(exc)})
            progress.advance(task)
    if as_json:
        print_json(results)
    else:
        table = Table("file", "result", "SOP Instance UID")
        for row in results:
            table.add_row(
                row["file"],
                "stored" if row["status"] == "stored" else f"[red]{row['error']}[/]",
                row.get("sop_instance_uid", ""),
            )
        console.print(table)
        console.print(f"{len(results) - failed} stored, {failed} failed")
    if failed:
        raise typer.Exit(EXIT_INVALID)


def _study_row(study: StudySummary) -> dict[str, object]:
    return {
        "study_instance_uid": study.study_instance_uid,
        "study_date": study.study_date,
        "patient_id": study.patient_id,
        "patient_name": study.patient_name,
        "accession_number": study.accession_number,
        "description": study.study_description,
        "modalities": list(study.modalities),
        "instances": study.number_of_instances,
    }


@app.command("find")
def find(
    patient_id: str | None = typer.Option(None, "--patient-id", help="DICOM Patient ID"),
    study_date: str | None = typer.Option(
        None, "--study-date", help="YYYYMMDD or YYYYMMDD-YYYYMMDD"
    ),
    accession: str | None = typer.Option(None, "--accession", help="Accession number"),
    study_uid: str | None = typer.Option(None, "--study-uid", help="Study Instance UID"),
    instances: bool = typer.Option(False, "--instances", help="List each study's instances"),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON"),
) -> None:
    """Find studies in the configured PACS (a table, or JSON with --json)."""
    if not (patient_id or study_date or accession or study_uid):
        errors.print(
            "[bold red]usage:[/] give --patient-id, --study-date, --accession or --study-uid"
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        query = StudyQuery(patient_id, study_date, accession, study_uid)
    except ValueError as exc:
        errors.print(f"[bold red]usage:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    with configured_pacs() as pacs:
        try:
            studies = pacs.find_studies(query)
            rows = [_study_row(s) for s in studies]
            if instances:
                for row, study in zip(rows, studies, strict=True):
                    row["sop_instance_uids"] = [
                        i.sop_instance_uid for i in pacs.find_instances(study.study_instance_uid)
                    ]
        except (DicomError, HisError) as exc:
            raise _fail(str(exc)) from exc
    if as_json:
        print_json(rows)
        return
    table = Table("date", "patient ID", "patient name", "accession", "instances", "Study UID")
    for row in rows:
        table.add_row(
            str(row["study_date"] or ""), str(row["patient_id"] or ""),
            str(row["patient_name"] or ""), str(row["accession_number"] or ""),
            str(row["instances"] if row["instances"] is not None else ""),
            str(row["study_instance_uid"]),
        )  # fmt: skip
        for uid in row.get("sop_instance_uids", []):  # type: ignore[attr-defined]
            table.add_row("", "", "", "", "", f"  └ {uid}")
    console.print(table)
    console.print(f"{len(rows)} studies")


@app.command("get")
def get(
    sop_instance_uid: str = typer.Argument(..., help="SOP Instance UID of the object"),
    out: Path = typer.Argument(..., help="Where to write the DICOM file"),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists"),
) -> None:
    """Fetch one object from the configured PACS into OUT (byte for byte as stored)."""
    if out.exists() and not force:
        errors.print(f"[bold red]usage:[/] {out} exists (use --force to overwrite)")
        raise typer.Exit(EXIT_USAGE)
    with configured_pacs() as pacs:
        try:
            data = pacs.get(sop_instance_uid.strip())
        except (DicomError, HisError) as exc:
            raise _fail(str(exc)) from exc
    temp = out.with_name(f".{out.name}.partial")
    temp.write_bytes(data)
    temp.replace(out)
    console.print(f"wrote {out} ({len(data)} bytes)")


@app.command("sync")
def sync(
    study_date: str | None = typer.Option(
        None, "--study-date", help="Only studies of YYYYMMDD or YYYYMMDD-YYYYMMDD"
    ),
    patient_id: str | None = typer.Option(None, "--patient-id", help="Only this DICOM Patient ID"),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON"),
) -> None:
    """Index objects Orthanc holds that Rekam does not know yet (sent to Orthanc directly).

    Finds studies in Orthanc (C-FIND or QIDO-RS), fetches each instance missing from the index,
    verifies its signatures and indexes it; its bytes stay in Orthanc."""
    settings = settings_or_exit()
    if settings.pacs != "orthanc":
        errors.print("[bold red]usage:[/] sync needs REKAM_PACS=orthanc")
        raise typer.Exit(EXIT_USAGE)
    try:
        query = StudyQuery(patient_id=patient_id, study_date=study_date)
    except ValueError as exc:
        errors.print(f"[bold red]usage:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    results: list[dict[str, str]] = []
    clinic = clinic_or_exit()
    try:
        with orthanc_connection(settings) as orthanc:
            archive = PacsArchiveService.for_clinic(clinic, orthanc)
            try:
                studies = orthanc.find_studies(query)
                wanted = [
                    i.sop_instance_uid
                    for study in studies
                    for i in orthanc.find_instances(study.study_instance_uid)
                    if not archive.is_indexed(i.sop_instance_uid)
                ]
            except DicomError as exc:
                raise _fail(str(exc)) from exc
            for sop_instance_uid in wanted:
                try:
                    adopted = archive.adopt(console_operator(), orthanc.get(sop_instance_uid))
                    results.append(
                        {"sop_instance_uid": sop_instance_uid, "status": "indexed",
                         "signature": adopted.signature_status.value}
                    )  # fmt: skip
                except (DicomError, HisError) as exc:
                    results.append(
                        {"sop_instance_uid": sop_instance_uid, "status": "failed",
                         "error": str(exc)}
                    )  # fmt: skip
    finally:
        clinic.close()
    failed = sum(1 for r in results if r["status"] == "failed")
    if as_json:
        print_json(results)
    else:
        for row in results:
            detail = row.get("signature") or f"[red]{row.get('error')}[/]"
            console.print(f"{row['status']:8} {row['sop_instance_uid']}  {detail}")
        console.print(f"{len(results) - failed} indexed, {failed} failed")
    if failed:
        raise typer.Exit(EXIT_INVALID)
