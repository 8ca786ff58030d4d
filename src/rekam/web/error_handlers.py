"""Every error becomes a clear 4xx/5xx answer: JSON under /api, a page elsewhere; never a trace."""

from __future__ import annotations

import logging
import traceback

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rekam.his.errors import HisError, LoginThrottled
from rekam.web.context import (
    CsrfRejected,
    LoginRequired,
    PasswordChangeRequired,
    request_context,
)
from rekam.web.error_messages import his_error_text, status_for
from rekam.web.i18n import translator
from rekam.web.rendering import render

log = logging.getLogger("rekam.web")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _problem(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _page(request: Request, status: int, text_key: str, text: str | None = None) -> Response:
    try:
        context = request_context(request)
    except Exception:  # the page must render even when the session lookup fails
        t = translator("en")
        return Response(t(text_key), status_code=status, media_type="text/plain")
    return render(context, "error.html", status, text=text or context.t(text_key))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    def _login_required(request: Request, _exc: LoginRequired) -> Response:
        if _is_api(request):
            return _problem(401, "login_required", "log in first (POST /api/v1/session)")
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    def _password_change(request: Request, _exc: PasswordChangeRequired) -> Response:
        if _is_api(request):
            return _problem(
                403,
                "password_change_required",
                "change the one-time password first (PUT /api/v1/me/password)",
            )
        return RedirectResponse("/account", status_code=303)

    @app.exception_handler(CsrfRejected)
    def _csrf(request: Request, _exc: CsrfRejected) -> Response:
        if _is_api(request):
            return _problem(403, "csrf_rejected", "missing or wrong X-CSRF-Token header")
        return _page(request, 403, "error.csrf")

    @app.exception_handler(HisError)
    def _his_error(request: Request, exc: HisError) -> Response:
        status = status_for(exc)
        response: Response
        if _is_api(request):
            response = _problem(status, exc.code, str(exc), **_public_details(exc))
        else:
            context = request_context(request)
            break_glass = None
            if exc.details.get("break_glass") and exc.details.get("patient_id"):
                break_glass = f"/break-glass/{exc.details['patient_id']}"
            response = render(
                context,
                "error.html",
                status,
                text=his_error_text(context.t, exc),
                break_glass=break_glass,
            )
        if isinstance(exc, LoginThrottled):
            response.headers["retry-after"] = str(exc.retry_after_seconds)
        return response

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        if _is_api(request):
            return _problem(
                422, "invalid_request", "some fields are missing or invalid", fields=problems
            )
        return _page(request, 422, "error.422")

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        if _is_api(request):
            return _problem(status, f"http_{status}", str(exc.detail))
        key = f"error.{status}" if status in (400, 403, 404, 405, 413, 429) else "error.400"
        return _page(request, status, key)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the type and where it happened; never the message, which could hold patient data.
        frames = traceback.extract_tb(exc.__traceback__)
        where = [f"{f.filename}:{f.lineno}:{f.name}" for f in frames[-5:]]
        log.error(
            "unhandled error",
            extra={"error_type": type(exc).__name__, "where": where, "path": request.url.path},
        )
        if _is_api(request):
            return _problem(500, "internal_error", "an internal error occurred; no data changed")
        t = translator("en")
        return Response(t("error.500"), status_code=500, media_type="text/plain")


def _public_details(exc: HisError) -> dict[str, object]:
    return {k: v for k, v in exc.details.items() if isinstance(v, str | int | float | bool)}


class ContainErrorsMiddleware:
    """Outermost guard: an error that escaped the handlers ends here, already logged without
    its message, instead of reaching the server's own logger with a full traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            log.error("request failed", extra={"error_type": type(exc).__name__})
            if not started:
                await Response("Internal error", status_code=500, media_type="text/plain")(
                    scope, receive, send
                )
