"""The JSON API, version 1: sessions, the current user, and user administration."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from rekam.his.accounts import UserView
from rekam.his.errors import LoginRefused
from rekam.his.rbac import Permission, Role
from rekam.his.sessions import csrf_token_for
from rekam.web.context import (
    Context,
    CsrfRejected,
    RequestContext,
    account_context,
    known_sessions_of,
    require,
)
from rekam.web.cookies import SESSION_COOKIE, clear_cookie, set_secure_cookie

router = APIRouter(prefix="/api/v1", tags=["v1"])

CsrfHeader = Annotated[str | None, Header(alias="X-CSRF-Token", max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SecondFactorRequest(_Strict):
    code: str = Field(min_length=6, max_length=16)


class SessionResponse(BaseModel):
    csrf_token: str = Field(description="Send as X-CSRF-Token on every state-changing request")
    second_factor_required: bool
    must_change_password: bool


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    role: Role
    active: bool
    totp_enabled: bool
    must_change_password: bool
    created_at: datetime

    @classmethod
    def of(cls, user: UserView) -> UserOut:
        return cls(**user.__dict__)


class Me(BaseModel):
    username: str
    display_name: str
    role: Role
    permissions: list[str]
    language: str


class NewUser(_Strict):
    username: str = Field(min_length=2, max_length=64)
    display_name: str = Field(min_length=1, max_length=200)
    role: Role


class CreatedUserOut(BaseModel):
    user: UserOut
    one_time_password: str = Field(description="Shown once; the user must change it at login")


class OneTimePassword(BaseModel):
    one_time_password: str


class PasswordChange(_Strict):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class Health(BaseModel):
    status: str


def _require_csrf(context: RequestContext, token: str | None) -> None:
    context.check_csrf(token)


@router.post("/session", response_model=SessionResponse)
def api_login(context: Context, body: LoginRequest) -> Response:
    outcome = context.clinic.accounts.login(body.username, body.password, context.source)
    payload = SessionResponse(
        csrf_token=csrf_token_for(outcome.session_token),
        second_factor_required=outcome.second_factor_required,
        must_change_password=outcome.must_change_password,
    )
    response = JSONResponse(payload.model_dump())
    set_secure_cookie(response, SESSION_COOKIE, outcome.session_token, None)
    return response


@router.post("/session/second-factor", status_code=204)
def api_second_factor(
    context: Context, body: SecondFactorRequest, x_csrf_token: CsrfHeader = None
) -> None:
    if context.session_token is None:
        raise LoginRefused("log in with user name and password first")
    _require_csrf(context, x_csrf_token)
    context.clinic.accounts.verify_second_factor(context.session_token, body.code, context.source)


@router.delete("/session", status_code=204)
def api_logout(context: Context, x_csrf_token: CsrfHeader = None) -> Response:
    response = Response(status_code=204)
    if context.session_token is not None:
        _require_csrf(context, x_csrf_token)
        context.clinic.accounts.logout(context.session_token)
        known_sessions_of(context.request).forget(context.session_token)
    clear_cookie(response, SESSION_COOKIE)
    return response


@router.get("/me", response_model=Me)
def api_me(context: Annotated[RequestContext, Depends(account_context)]) -> Me:
    actor = context.actor
    return Me(
        username=actor.username,
        display_name=context.session.display_name if context.session else actor.username,
        role=actor.role,
        permissions=sorted(p.value for p in Permission if actor.can(p)),
        language=context.language,
    )


@router.put("/me/password", status_code=204)
def api_change_password(
    context: Annotated[RequestContext, Depends(account_context)],
    body: PasswordChange,
    x_csrf_token: CsrfHeader = None,
) -> None:
    _require_csrf(context, x_csrf_token)
    context.clinic.accounts.change_password(context.actor, body.current_password, body.new_password)


@router.get("/users", response_model=list[UserOut])
def api_users(
    context: Annotated[RequestContext, Depends(require(Permission.USERS_READ))],
) -> list[UserOut]:
    return [UserOut.of(u) for u in context.clinic.accounts.list_users(context.actor)]


@router.post("/users", response_model=CreatedUserOut, status_code=201)
def api_create_user(
    context: Annotated[RequestContext, Depends(require(Permission.USERS_WRITE))],
    body: NewUser,
    x_csrf_token: CsrfHeader = None,
) -> CreatedUserOut:
    _require_csrf(context, x_csrf_token)
    created = context.clinic.accounts.create_user(
        context.actor, body.username, body.display_name, body.role
    )
    assert created.one_time_password is not None
    return CreatedUserOut(
        user=UserOut.of(created.user), one_time_password=created.one_time_password
    )


@router.post("/users/{username}/password-reset", response_model=OneTimePassword)
def api_reset_password(
    context: Annotated[RequestContext, Depends(require(Permission.USERS_WRITE))],
    username: str,
    x_csrf_token: CsrfHeader = None,
) -> OneTimePassword:
    _require_csrf(context, x_csrf_token)
    return OneTimePassword(
        one_time_password=context.clinic.accounts.reset_password(context.actor, username)
    )


__all__ = ["CsrfRejected", "Health", "router"]
