"""``rekam patient``: administrative actions on a patient's record."""

from __future__ import annotations

import getpass

import typer

from rekam.cli.output import console, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.his.rbac import Actor, Role

app = typer.Typer(help="Administrative actions on patient records.", no_args_is_help=True)


def local_operator() -> Actor:
    """The person at this server's console acts as an administrator; the audit names them."""
    return Actor(
        user_id=None,
        username=f"console:{getpass.getuser()}",
        role=Role.ADMIN,
        source_address="local",
    )


@app.command("erase")
def erase(
    patient_id: str = typer.Argument(..., help="The patient's id (UUID)"),
    reason: str = typer.Option(..., "--reason", help="Why (legal basis); recorded in the audit"),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation"),
) -> None:
    """Crypto-erase a patient: destroy their data key so their encrypted data is unreadable."""
    clinic = clinic_or_exit()
    if not yes:
        typer.confirm(
            f"Erase patient {patient_id} permanently? Their encrypted data cannot be recovered.",
            abort=True,
        )
    with readable_errors():
        when = clinic.patients.erase(local_operator(), patient_id, reason)
    console.print(f"patient {patient_id} crypto-erased at {when:%Y-%m-%d %H:%M} UTC")
    console.print(
        f"running servers drop any cached copy of the key within "
        f"{clinic.settings.key_cache_seconds:g} s"
    )
