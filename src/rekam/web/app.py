"""The FastAPI application: pages, JSON API, static files, security middleware."""

from __future__ import annotations

import re
from importlib import resources

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

import rekam
from rekam.his.installation import Clinic
from rekam.web import (
    api,
    api_ecg_studies,
    api_encounters,
    api_monitor,
    api_orders,
    api_oversight,
    api_patients,
    monitor_stream,
    pages,
    pages_ecg_studies,
    pages_encounters,
    pages_monitor,
    pages_orders,
    pages_oversight,
    pages_patients,
)
from rekam.web.api import Health
from rekam.web.body_limit import BodySizeLimitMiddleware
from rekam.web.error_handlers import ContainErrorsMiddleware, install_error_handlers
from rekam.web.request_rate_limit import KnownSessions, RateLimitMiddleware
from rekam.web.security_headers import SecurityHeadersMiddleware

UPLOAD_PATHS = re.compile(
    r"/api/v1/patients/[0-9a-f-]{36}/files|/ecg-studies/send|/api/v1/ecg-studies/objects"
)


def create_app(clinic: Clinic, *, monitor_analysis_process: bool | None = None) -> FastAPI:
    """The web app. ``monitor_analysis_process`` overrides the setting of that name (see
    :class:`rekam.web.monitor_runtime.MonitorRuntime`)."""
    settings = clinic.settings
    app = FastAPI(
        title="Rekam API",
        version=rekam.__version__,
        description="JSON API of Rekam. Authenticate with POST /api/v1/session; send the returned "
        "csrf_token as X-CSRF-Token on every state-changing request.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.clinic = clinic
    app.state.known_sessions = KnownSessions()
    app.state.trusted_proxies = frozenset(settings.trusted_proxies)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        return Health(status="ok")

    for module in (
        pages,
        pages_patients,
        pages_encounters,
        pages_orders,
        pages_oversight,
        pages_monitor,
        pages_ecg_studies,
    ):
        app.include_router(module.router)
    for module in (
        api,
        api_patients,
        api_encounters,
        api_orders,
        api_oversight,
        api_monitor,
        api_ecg_studies,
    ):
        app.include_router(module.router)
    monitor_stream.install(app, clinic, analysis_process=monitor_analysis_process)
    app.mount(
        "/static",
        StaticFiles(directory=str(resources.files("rekam.web").joinpath("static"))),
        name="static",
    )
    install_error_handlers(app)

    # Outermost last: headers on everything, then the size limit, then the flood limiter.
    app.add_middleware(
        RateLimitMiddleware,
        known_sessions=app.state.known_sessions,
        rate_per_second=settings.unauthenticated_rate_per_second,
        burst=settings.unauthenticated_burst,
        trusted_proxies=app.state.trusted_proxies,
    )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_paths=UPLOAD_PATHS,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ContainErrorsMiddleware)
    return app
