"""``rekam demo``: fictitious demonstration data."""

from __future__ import annotations

import typer
from rich.table import Table

from rekam.cli.output import console, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.his.demo import has_demo_data, load_demo_patients, load_demo_staff
from rekam.his.demo_visits import load_demo_visits

app = typer.Typer(help="Demonstration data (fictitious people only).", no_args_is_help=True)


@app.command("load")
def load(
    if_empty: bool = typer.Option(False, "--if-empty", help="Do nothing if demo data is present"),
) -> None:
    """Fill the clinic with fictitious staff (and, as they land, patients and visits)."""
    clinic = clinic_or_exit()
    with readable_errors():
        if if_empty and has_demo_data(clinic.accounts):
            console.print("demo data already loaded")
            return
        created = load_demo_staff(clinic.accounts)
        with console.status("Registering fictitious patients and their visits…"):
            patients = load_demo_patients(clinic.patients) if created else []
            visits = load_demo_visits(clinic, patients[:15]) if patients else 0
    if patients:
        console.print(f"registered {len(patients)} fictitious patients (search them under Pasien)")
        console.print(f"recorded {visits} signed visits with labs and dispensed prescriptions")
    if not created:
        console.print("demo data already loaded")
        return
    table = Table(title="Demo staff accounts (one-time passwords, shown once)")
    for column in ("user name", "role", "one-time password"):
        table.add_column(column)
    for account in created:
        table.add_row(account.username, account.role.value, account.one_time_password)
    console.print(table)
