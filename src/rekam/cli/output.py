"""Console output and error mapping shared by every command group."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from rekam.crypto import CryptoError
from rekam.his import HisError
from rekam.pki import PkiError
from rekam.store import StoreError

console = Console()
errors = Console(stderr=True)

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


@contextmanager
def readable_errors() -> Iterator[None]:
    """Turn Rekam's errors into one readable line and exit code 1."""
    try:
        yield
    except (HisError, PkiError, CryptoError, StoreError) as exc:
        errors.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_INVALID) from exc
