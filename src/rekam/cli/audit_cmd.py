"""``rekam audit``: verify the hash chain of the audit trail, export it (JSON lines or FHIR)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import typer

from rekam.cli.output import EXIT_INVALID, EXIT_USAGE, console, errors, print_json, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.his.audit import AuditFilter, AuditService
from rekam.his.audit_export import export_chunks
from rekam.his.rbac import Actor

app = typer.Typer(help="The audit trail: verify its hash chain, export it.", no_args_is_help=True)


class Format(StrEnum):
    JSON = "json"
    FHIR = "fhir"


def parse_since(value: str | None) -> datetime | None:
    """A date (YYYY-MM-DD, midnight UTC) or an ISO date-time (UTC if no zone is given)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date: {value!r} (use YYYY-MM-DD)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("verify")
def verify(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines")) -> None:
    """Check the whole hash chain; exit 1 and name the first broken entry if it is broken."""
    clinic = clinic_or_exit()
    try:
        with readable_errors():
            report = AuditService.for_clinic(clinic).verify(Actor.system())
    finally:
        clinic.close()
    if as_json:
        print_json(
            {
                "entries": report.entries,
                "intact": report.intact,
                "first_broken_seq": report.first_broken_seq,
                "reason": report.reason,
            }
        )
    elif report.intact:
        console.print(f"{report.entries} entries: OK (the hash chain is intact)")
    else:
        errors.print(
            f"[bold red]BROKEN[/] at entry {report.first_broken_seq}: {report.reason}"
            f" ({report.entries} entries read)"
        )
    if not report.intact:
        raise typer.Exit(EXIT_INVALID)


@app.command("export")
def export(
    export_format: Format = typer.Option(
        Format.JSON, "--format", help="json: one entry per line; fhir: an R4 Bundle of AuditEvent"
    ),
    since: str | None = typer.Option(None, "--since", help="Only entries from this date (UTC)"),
    patient: str | None = typer.Option(None, "--patient", help="Only entries about this patient"),
    out: Path | None = typer.Option(None, "--out", help="Write to this file (default: stdout)"),
) -> None:
    """Export entries, oldest first. Entries hold identifiers only, never clinical content."""
    try:
        criteria = AuditFilter(patient_id=patient, since=parse_since(since))
    except typer.BadParameter as exc:
        errors.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    clinic = clinic_or_exit()
    try:
        with readable_errors():
            entries = AuditService.for_clinic(clinic).entries(Actor.system(), criteria)
            chunks = export_chunks(entries, export_format.value, clinic.settings.organization)
            if out is None:
                for chunk in chunks:
                    sys.stdout.write(chunk)
                sys.stdout.flush()
                return
            with out.open("w", encoding="utf-8") as target:
                for chunk in chunks:
                    target.write(chunk)
    finally:
        clinic.close()
    errors.print(f"audit trail exported to {out} ({export_format.value})")
