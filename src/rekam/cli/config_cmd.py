"""``rekam config``: show the effective settings."""

from __future__ import annotations

import typer
from rich.table import Table

from rekam.cli.output import console, print_json
from rekam.cli.settings_loader import settings_or_exit

app = typer.Typer(help="Show Rekam's configuration.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON for machines")) -> None:
    """Print the effective settings (secrets masked) and where they came from."""
    settings = settings_or_exit()
    view = settings.public_view()
    if as_json:
        print_json({"config_file": str(settings.config_file or ""), "settings": view})
        return
    table = Table(title="Rekam settings", show_lines=False)
    table.add_column("setting")
    table.add_column("value")
    for key, value in view.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)
    console.print(
        f"config file: {settings.config_file or '(none; defaults and REKAM_* variables)'}"
    )
