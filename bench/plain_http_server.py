"""The Rekam app and HTTP protocol WITHOUT TLS — for benchmarks only, bound to 127.0.0.1.

Rekam itself never serves plain HTTP; this exists so a benchmark can measure what TLS costs.
"""

from __future__ import annotations

import os

import uvicorn

from rekam.config import load_settings
from rekam.his.installation import open_clinic
from rekam.web.app import create_app
from rekam.web.server import uvicorn_config


def main() -> None:
    settings = load_settings()
    clinic = open_clinic(settings)
    port = int(os.environ["REKAM_PORT"])
    uvicorn.Server(uvicorn_config(create_app(clinic), "127.0.0.1", port, None)).run()


if __name__ == "__main__":
    main()
