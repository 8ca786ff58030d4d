"""The ``rekam`` command: one Typer app, one module per command group."""

from __future__ import annotations

import os

import typer

from rekam import __version__
from rekam.cli import (
    audit_cmd,
    ca_cmd,
    config_cmd,
    demo_cmd,
    dicom_cmd,
    ecg_cmd,
    init_cmd,
    keys_cmd,
    monitor_cmd,
    pacs_cmd,
    patient_cmd,
    scp_ecg_cmd,
    serve_cmd,
    user_cmd,
)

app = typer.Typer(
    help="Rekam — secure medical records and telemedicine for clinics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("init")(init_cmd.init)
app.command("serve")(serve_cmd.serve)
app.add_typer(config_cmd.app, name="config")
app.add_typer(ca_cmd.app, name="ca")
app.add_typer(user_cmd.app, name="user")
app.add_typer(demo_cmd.app, name="demo")
dicom_cmd.mount_to_dicom(ecg_cmd.app)
scp_ecg_cmd.mount_to_scp(ecg_cmd.app)
app.add_typer(ecg_cmd.app, name="ecg")
app.add_typer(dicom_cmd.app, name="dicom")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(patient_cmd.app, name="patient")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(pacs_cmd.app, name="pacs")
app.add_typer(monitor_cmd.app, name="monitor")


@app.callback()
def _private_files() -> None:
    """Rekam — secure medical records and telemedicine for clinics."""
    # Everything Rekam writes (database, keys, stores) is for its own user only.
    os.umask(0o077)


@app.command("version")
def version() -> None:
    """Print Rekam's version."""
    typer.echo(__version__)
