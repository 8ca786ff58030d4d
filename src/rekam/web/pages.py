"""The HTML pages of the web shell: login, second factor, dashboard, account, users, language."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Form
from starlette.responses import RedirectResponse, Response

from rekam.his.errors import HisError, LoginRefused, LoginThrottled, ValidationFailed
from rekam.his.rbac import Permission, Role
from rekam.web.context import (
    Context,
    CsrfRejected,
    RequestContext,
    account_context,
    known_sessions_of,
    logged_in_context,
    require,
)
from rekam.web.cookies import (
    LANGUAGE_COOKIE,
    LOGIN_FORM_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    set_secure_cookie,
)
from rekam.web.error_messages import his_error_text
from rekam.web.i18n import LANGUAGES
from rekam.web.rendering import render

router = APIRouter(include_in_schema=False)

CsrfField = Annotated[str, Form(max_length=128)]
LoggedIn = Annotated[RequestContext, Depends(logged_in_context)]
AccountPage = Annotated[RequestContext, Depends(account_context)]


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _check_login_form_token(context: RequestContext, presented: str) -> None:
    expected = context.request.cookies.get(LOGIN_FORM_COOKIE) or ""
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise CsrfRejected


def _safe_next(path: str) -> str:
    return path if path.startswith("/") and not path.startswith("//") else "/"


@router.get("/login")
def login_page(context: Context, bye: int = 0, expired: int = 0) -> Response:
    if context.logged_in:
        return _redirect("/")
    messages = []
    if bye:
        messages.append(("ok", context.t("login.logged_out")))
    if expired:
        messages.append(("warning", context.t("login.expired")))
    return render(context, "login.html", messages=messages)


@router.post("/login")
def login_submit(
    context: Context,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: CsrfField,
) -> Response:
    try:
        _check_login_form_token(context, csrf_token)
    except CsrfRejected:
        error = [("error", context.t("login.form_expired"))]
        return render(context, "login.html", 403, messages=error, username=username)
    try:
        outcome = context.clinic.accounts.login(username, password, context.source)
    except LoginThrottled as exc:
        text = context.t("login.throttled", seconds=exc.retry_after_seconds)
        response = render(context, "login.html", 429, messages=[("error", text)], username=username)
        response.headers["retry-after"] = str(exc.retry_after_seconds)
        return response
    except LoginRefused:
        text = context.t("login.refused")
        return render(context, "login.html", 401, messages=[("error", text)], username=username)
    if outcome.second_factor_required:
        target = "/login/second-factor"
    else:
        target = "/account" if outcome.must_change_password else "/"
    response = _redirect(target)
    set_secure_cookie(response, SESSION_COOKIE, outcome.session_token, None)
    clear_cookie(response, LOGIN_FORM_COOKIE)
    return response


@router.get("/login/second-factor")
def second_factor_page(context: Context) -> Response:
    if context.session is None or not context.session.second_factor_pending:
        return _redirect("/login")
    return render(context, "second_factor.html", csrf_token=context.session.csrf_token)


@router.post("/login/second-factor")
def second_factor_submit(
    context: Context, code: Annotated[str, Form(max_length=16)], csrf_token: CsrfField
) -> Response:
    if context.session is None or context.session_token is None:
        return _redirect("/login?expired=1")
    context.check_csrf(csrf_token)
    try:
        context.clinic.accounts.verify_second_factor(context.session_token, code, context.source)
    except LoginThrottled as exc:
        text = context.t("login.throttled", seconds=exc.retry_after_seconds)
        return render(
            context,
            "second_factor.html",
            429,
            messages=[("error", text)],
            csrf_token=context.session.csrf_token,
        )
    except LoginRefused:
        text = context.t("second_factor.refused")
        return render(
            context,
            "second_factor.html",
            401,
            messages=[("error", text)],
            csrf_token=context.session.csrf_token,
        )
    return _redirect("/account" if context.session.must_change_password else "/")


@router.post("/logout")
def logout(context: Context, csrf_token: CsrfField) -> Response:
    if context.session_token is None:
        return _redirect("/login")
    context.check_csrf(csrf_token)
    context.clinic.accounts.logout(context.session_token)
    known_sessions_of(context.request).forget(context.session_token)
    response = _redirect("/login?bye=1")
    clear_cookie(response, SESSION_COOKIE)
    return response


@router.post("/language")
def switch_language(
    context: Context,
    language: Annotated[str, Form(max_length=8)],
    csrf_token: CsrfField,
    next: Annotated[str, Form(max_length=200)] = "/",
) -> Response:
    if context.logged_in:
        context.check_csrf(csrf_token)
        if language in LANGUAGES:
            context.clinic.accounts.set_language(context.actor, language)
    else:
        _check_login_form_token(context, csrf_token)
    response = _redirect(_safe_next(next))
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            language,
            max_age=365 * 86400,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
    return response


@router.get("/")
def dashboard(
    context: Annotated[RequestContext, Depends(require(Permission.DASHBOARD_VIEW))],
) -> Response:
    tls = context.request.scope.get("extensions", {}).get("tls") or {}
    protection = " · ".join(v for v in (tls.get("tls_version"), tls.get("cipher_suite")) if v)
    return render(context, "dashboard.html", protection=protection or "HTTPS")


def _account_page(
    context: RequestContext,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    enrolment: object | None = None,
) -> Response:
    me = context.clinic.accounts.get_user(context.actor, context.actor.username)
    return render(
        context,
        "account.html",
        status_code,
        messages=messages,
        must_change=me.must_change_password,
        totp_enabled=me.totp_enabled,
        enrolment=enrolment,
    )


@router.get("/account")
def account_page(context: AccountPage) -> Response:
    return _account_page(context)


@router.post("/account/password")
def change_password(
    context: AccountPage,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    repeat_password: Annotated[str, Form(max_length=1024)],
    csrf_token: CsrfField,
) -> Response:
    context.check_csrf(csrf_token)
    if new_password != repeat_password:
        return _account_page(context, 422, [("error", context.t("account.mismatch"))])
    try:
        context.clinic.accounts.change_password(context.actor, current_password, new_password)
    except ValidationFailed as exc:
        return _account_page(context, 422, [("error", his_error_text(context.t, exc))])
    return _account_page(context, 200, [("ok", context.t("account.password_changed"))])


@router.post("/account/second-factor/start")
def start_second_factor(context: LoggedIn, csrf_token: CsrfField) -> Response:
    context.check_csrf(csrf_token)
    enrolment = context.clinic.accounts.begin_totp_enrolment(context.actor)
    return _account_page(context, enrolment=enrolment)


@router.post("/account/second-factor/confirm")
def confirm_second_factor(
    context: LoggedIn, code: Annotated[str, Form(max_length=16)], csrf_token: CsrfField
) -> Response:
    context.check_csrf(csrf_token)
    try:
        context.clinic.accounts.confirm_totp_enrolment(context.actor, code)
    except ValidationFailed as exc:
        return _account_page(context, 422, [("error", his_error_text(context.t, exc))])
    return _account_page(context, 200, [("ok", context.t("account.totp_enabled"))])


UsersReader = Annotated[RequestContext, Depends(require(Permission.USERS_READ))]
UsersWriter = Annotated[RequestContext, Depends(require(Permission.USERS_WRITE))]


def _users_page(
    context: RequestContext, status_code: int = 200, messages: list[tuple[str, str]] | None = None
) -> Response:
    users = context.clinic.accounts.list_users(context.actor)
    return render(
        context,
        "users.html",
        status_code,
        messages=messages,
        users=users,
        roles=[r.value for r in Role],
        can_write=context.actor.can(Permission.USERS_WRITE),
    )


@router.get("/admin/users")
def users_page(context: UsersReader) -> Response:
    return _users_page(context)


@router.post("/admin/users")
def add_user(
    context: UsersWriter,
    username: Annotated[str, Form(max_length=64)],
    display_name: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=32)],
    csrf_token: CsrfField,
) -> Response:
    context.check_csrf(csrf_token)
    try:
        created = context.clinic.accounts.create_user(context.actor, username, display_name, role)
    except HisError as exc:
        return _users_page(context, 422, [("error", his_error_text(context.t, exc))])
    text = context.t(
        "users.created", username=created.user.username, password=created.one_time_password
    )
    return _users_page(context, 201, [("ok", text)])


@router.post("/admin/users/{username}/reset-password")
def reset_password(context: UsersWriter, username: str, csrf_token: CsrfField) -> Response:
    context.check_csrf(csrf_token)
    one_time = context.clinic.accounts.reset_password(context.actor, username)
    text = context.t("users.reset_done", username=username, password=one_time)
    return _users_page(context, 200, [("ok", text)])
