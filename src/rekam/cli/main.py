"""The ``rekam`` command: one Typer app, one module per command group.

Each group's module is imported only when that group runs (see :mod:`rekam.cli.lazy_group`), so
a command pays for the libraries it uses and no others.
"""

from __future__ import annotations

import os

import typer

from rekam import __version__
from rekam.cli.lazy_group import LazyCommand, lazy_group

#: Every subcommand, in the order ``rekam --help`` lists them, and where it lives.
SUBCOMMANDS: dict[str, LazyCommand] = {
    "init": LazyCommand("rekam.cli.init_cmd:init"),
    "serve": LazyCommand("rekam.cli.serve_cmd:serve"),
    "version": LazyCommand("rekam.cli.main:version"),
    "config": LazyCommand("rekam.cli.config_cmd:app"),
    "ca": LazyCommand("rekam.cli.ca_cmd:app"),
    "user": LazyCommand("rekam.cli.user_cmd:app"),
    "demo": LazyCommand("rekam.cli.demo_cmd:app"),
    "ecg": LazyCommand("rekam.cli.ecg_cmd:app"),
    "dicom": LazyCommand("rekam.cli.dicom_cmd:app"),
    "keys": LazyCommand("rekam.cli.keys_cmd:app"),
    "patient": LazyCommand("rekam.cli.patient_cmd:app"),
    "audit": LazyCommand("rekam.cli.audit_cmd:app"),
    "pacs": LazyCommand("rekam.cli.pacs_cmd:app"),
    "monitor": LazyCommand("rekam.cli.monitor_cmd:app"),
}

app = typer.Typer(
    cls=lazy_group(SUBCOMMANDS),
    help="Rekam — secure medical records and telemedicine for clinics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _private_files() -> None:
    """Rekam — secure medical records and telemedicine for clinics."""
    # Everything Rekam writes (database, keys, stores) is for its own user only.
    os.umask(0o077)


def version() -> None:
    """Print Rekam's version."""
    typer.echo(__version__)
