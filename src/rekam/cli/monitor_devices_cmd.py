"""``rekam monitor pair|unpair|devices``: the device registry of heart monitoring at the console.

The console operator acts *for* a named clinician (``--as``), so pairing keeps the clinician's
permissions and care relationship and the audit trail names them, with the console as the source.
``mount_to_monitor(app)`` adds these commands to the ``rekam monitor`` group.
"""

from __future__ import annotations

import base64
import getpass
import json

import typer
from rich.table import Table

from rekam.cli.output import EXIT_INVALID, console, errors, print_json, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.his import HisError
from rekam.his.installation import Clinic
from rekam.his.monitoring import MonitoringService, public_key_bytes
from rekam.his.rbac import Actor

app = typer.Typer(help="Wearable ECG devices: pair, unpair, list.", no_args_is_help=True)

AS_USER = typer.Option(..., "--as", help="The clinician (user name) the console acts for")


def clinician(clinic: Clinic, username: str) -> Actor:
    """The named clinician, acting from this server's console."""
    with readable_errors():
        user = clinic.accounts.get_user(Actor.system(), username)
    if not user.active:
        errors.print(f"[bold red]error:[/] the account {username} is disabled")
        raise typer.Exit(EXIT_INVALID)
    return Actor(
        user_id=user.id,
        username=user.username,
        role=user.role,
        source_address=f"console:{getpass.getuser()}"[:64],
    )


@app.command("pair")
def pair(
    patient_id: str = typer.Argument(..., help="The patient's id (UUID)"),
    device_public: str = typer.Argument(
        ..., help="The device's X25519 public key (64 hex digits or base64)"
    ),
    label: str = typer.Option(..., "--label", help="A name for the device (e.g. 'chest strap')"),
    as_user: str = AS_USER,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """Pair a device with a patient; prints the confirmation code to compare with the device."""
    clinic = clinic_or_exit()
    try:
        actor = clinician(clinic, as_user)
        with readable_errors():
            result = MonitoringService.for_clinic(clinic).pair_device(
                actor, patient_id, public_key_bytes(device_public), label
            )
    finally:
        clinic.close()
    answer = {
        "device_id": str(result.device_id),
        "gateway_public": base64.b64encode(result.gateway_public).decode(),
        "confirmation_code": result.confirmation_code,
    }
    if as_json:
        print_json(answer)
        return
    console.print(f"device {answer['device_id']} paired with patient {patient_id}")
    console.print(f"gateway public key: {answer['gateway_public']}")
    console.print(f"confirmation code: [bold]{result.confirmation_code}[/]")
    console.print(
        "compare it with the code on the device; if they differ, run 'rekam monitor unpair'"
    )


@app.command("unpair")
def unpair(
    device_id: str = typer.Argument(..., help="The device's id (UUID)"),
    as_user: str = AS_USER,
) -> None:
    """Stop accepting a device's packets and destroy its stored key."""
    clinic = clinic_or_exit()
    try:
        actor = clinician(clinic, as_user)
        with readable_errors():
            MonitoringService.for_clinic(clinic).unpair(actor, device_id)
    finally:
        clinic.close()
    console.print(f"device {device_id} unpaired; its key was destroyed")


@app.command("devices")
def devices(
    as_user: str = AS_USER,
    patient_id: str | None = typer.Option(None, "--patient", help="Only this patient's devices"),
    include_unpaired: bool = typer.Option(False, "--all", help="Include unpaired devices"),
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON"),
) -> None:
    """List paired devices (of the patients in the clinician's care)."""
    clinic = clinic_or_exit()
    try:
        actor = clinician(clinic, as_user)
        try:
            found = MonitoringService.for_clinic(clinic).devices(
                actor, patient_id, include_unpaired
            )
        except HisError as exc:
            errors.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(EXIT_INVALID) from exc
    finally:
        clinic.close()
    rows = [
        {
            "device_id": d.id,
            "patient_id": d.patient_id,
            "label": d.label,
            "paired_at": d.paired_at.isoformat(),
            "unpaired_at": d.unpaired_at.isoformat() if d.unpaired_at else None,
        }
        for d in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("device", "patient", "label", "paired (UTC)", "unpaired (UTC)")
    for row in rows:
        table.add_row(
            str(row["device_id"]),
            str(row["patient_id"]),
            str(row["label"]),
            str(row["paired_at"])[:19],
            str(row["unpaired_at"] or "")[:19],
        )
    console.print(table)


def mount_to_monitor(group: typer.Typer) -> None:
    """Add ``pair``, ``unpair`` and ``devices`` to the ``rekam monitor`` group."""
    group.command("pair")(pair)
    group.command("unpair")(unpair)
    group.command("devices")(devices)
