"""``rekam keys``: key-encryption key rotation, data-key rewrapping, status, retirement."""

from __future__ import annotations

import time

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rekam.cli.output import EXIT_INVALID, console, errors, print_json, readable_errors
from rekam.cli.settings_loader import clinic_or_exit

app = typer.Typer(help="Key-encryption keys and data keys.", no_args_is_help=True)


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines")) -> None:
    """Show KEK versions and how many data keys each one wraps."""
    clinic = clinic_or_exit()
    with readable_errors():
        versions = clinic.keyring.versions()
        active = clinic.keyring.active_version().version
        counts = clinic.keys.status()
    rows = [
        {
            "version": v.version,
            "created_at": v.created_at.isoformat(timespec="seconds"),
            "state": "retired" if v.retired else ("active" if v.version == active else "old"),
            "data_keys": counts.get((v.key_id, v.version), 0),
        }
        for v in versions
    ]
    remaining = sum(r["data_keys"] for r in rows if r["version"] != active)  # type: ignore[misc]
    if as_json:
        print_json(
            {
                "keyring": clinic.keyring.key_id,
                "active_version": active,
                "versions": rows,
                "data_keys_on_old_versions": remaining,
            }
        )
        return
    table = Table(title=f"Keyring {clinic.keyring.key_id} ({clinic.settings.keyring})")
    for column in ("version", "created (UTC)", "state", "data keys"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["version"]), str(r["created_at"]), str(r["state"]), str(r["data_keys"]))
    console.print(table)
    console.print(f"data keys on old versions: {remaining}")


@app.command("rotate")
def rotate() -> None:
    """Add a new KEK version; new data keys use it at once (running servers within a second)."""
    clinic = clinic_or_exit()
    with readable_errors():
        version = clinic.keyring.rotate()
    console.print(f"KEK version {version.version} is now active")
    console.print("run 'rekam keys rewrap' to move existing data keys to it")


@app.command("rewrap")
def rewrap(
    batch: int = typer.Option(500, min=1, max=10_000, help="Data keys per transaction"),
    pause: float = typer.Option(0.0, min=0, help="Seconds to wait between batches (less load)"),
) -> None:
    """Re-wrap every data key under the newest KEK version. Safe to interrupt and run again."""
    clinic = clinic_or_exit()
    with readable_errors():
        active = clinic.keyring.active_version()
        total = sum(
            n
            for (kek, version), n in clinic.keys.status().items()
            if kek != active.key_id or version < active.version
        )
        if total == 0:
            console.print(f"every data key is already on version {active.version}")
            return
        columns = (
            TextColumn("rewrapping"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("rewrap", total=total)
            for done in clinic.keys.rewrap_all(batch=batch):
                progress.advance(task, done)
                if pause:
                    time.sleep(pause)
    console.print(f"done: every data key is on KEK version {active.version}")


@app.command("retire")
def retire(version: int = typer.Argument(..., help="KEK version to destroy")) -> None:
    """Destroy an old KEK version; refused while any data key still depends on it."""
    clinic = clinic_or_exit()
    with readable_errors():
        in_use = clinic.keys.status().get((clinic.keyring.key_id, version), 0)
        if in_use:
            errors.print(
                f"[bold red]error:[/] {in_use} data keys still use version {version}; "
                "run 'rekam keys rewrap' first"
            )
            raise typer.Exit(EXIT_INVALID)
        clinic.keyring.retire(version)
    console.print(f"KEK version {version} retired (its key material is destroyed)")
