"""``rekam serve``: the HTTPS server."""

from __future__ import annotations

from rekam.cli.output import console, readable_errors
from rekam.cli.settings_loader import clinic_or_exit
from rekam.log_format import configure_logging
from rekam.web.server import serve as run_server


def serve() -> None:
    """Serve Rekam over HTTPS (TLS only) until interrupted."""
    configure_logging()
    clinic = clinic_or_exit()
    settings = clinic.settings
    console.print(f"Rekam on https://{settings.host}:{settings.port}/  (Ctrl+C stops)")
    console.print(f"trust this root certificate in browsers: {clinic.pki.root_certificate_path}")
    with readable_errors():
        try:
            run_server(clinic)
        finally:
            clinic.close()
