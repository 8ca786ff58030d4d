"""``rekam ca``: Rekam's certificate authority."""

from __future__ import annotations

import typer

from rekam.cli.output import console, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.pki import KeyAlgorithm

app = typer.Typer(help="Rekam's certificate authority.", no_args_is_help=True)


@app.command("server-cert")
def server_cert(
    host: list[str] = typer.Option(..., "--host", help="Host name or IP address; repeatable"),
    algorithm: KeyAlgorithm | None = typer.Option(None, help="Key type; default: the current one"),
) -> None:
    """Re-issue the TLS server certificate for the given host names (the CA stays)."""
    clinic = clinic_or_exit()
    with readable_errors():
        identity = clinic.pki.reissue_server_certificate(host, algorithm)
    console.print(f"issued a server certificate for: {', '.join(host)}")
    console.print(f"valid until {identity.certificate.not_valid_after_utc:%Y-%m-%d} (UTC)")
    console.print("restart 'rekam serve' to use it")
