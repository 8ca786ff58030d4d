"""``rekam init``: create the data directory, CA, database and first administrator."""

from __future__ import annotations

import typer

from rekam.cli.output import console, readable_errors
from rekam.cli.settings_loader import settings_or_exit
from rekam.his.installation import initialise


def init(
    admin: str = typer.Option("admin", help="User name of the first administrator"),
) -> None:
    """Set up this installation; safe to run again (it only creates what is missing)."""
    settings = settings_or_exit()
    with console.status("Setting up Rekam (keys, certificates, database)…"), readable_errors():
        report = initialise(settings, admin_username=admin)
    console.print(f"data directory: {report.data_dir}")
    if report.created_passphrase_file:
        console.print(
            f"created the key passphrase file {report.created_passphrase_file} (mode 600); "
            "keep it safe and out of backups of the data directory"
        )
    if report.created_ca:
        console.print("created Rekam's root CA, issuing CA and TLS server certificate")
    console.print(f"root certificate for browsers and clients: {report.root_certificate}")
    if report.created_keyring:
        console.print(
            f"created the keyring {report.created_keyring} (key-encryption keys, sealed under "
            "the passphrase); back it up together with the passphrase, kept apart from the "
            "database backups: without both, encrypted records cannot be read"
        )
    if report.admin_one_time_password:
        console.rule("[bold]first administrator[/]")
        console.print(f"user name:          [bold]{report.admin_username}[/]")
        console.print(f"one-time password:  [bold]{report.admin_one_time_password}[/]")
        console.print("This password is shown only now. You must change it at first login.")
        console.rule()
    else:
        console.print("already initialised; nothing else to do")
