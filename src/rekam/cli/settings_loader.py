"""Load settings for a command, turning configuration errors into a usage error."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from rekam.cli.output import EXIT_USAGE, errors, readable_errors
from rekam.config import Settings, load_settings
from rekam.his.installation import Clinic, open_clinic


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(p) for p in problem["loc"]) or "settings"
            errors.print(f"[bold red]configuration error:[/] {field}: {problem['msg']}")
        raise typer.Exit(EXIT_USAGE) from exc


def clinic_or_exit() -> Clinic:
    settings = settings_or_exit()
    with readable_errors():
        return open_clinic(settings)
