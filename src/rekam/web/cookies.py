"""Cookie names and attributes; the session cookie is __Host- prefixed, Secure, HttpOnly, Strict."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from starlette.responses import Response
from starlette.types import Scope

SESSION_COOKIE = "__Host-rekam-session"
LOGIN_FORM_COOKIE = "__Host-rekam-login"
LANGUAGE_COOKIE = "rekam-lang"


def read_cookie(scope: Scope, name: str) -> str | None:
    for header, value in scope.get("headers", []):
        if header == b"cookie":
            try:
                jar = SimpleCookie(value.decode("latin-1"))
            except CookieError:
                continue
            morsel = jar.get(name)
            if morsel is not None:
                return morsel.value
    return None


def set_secure_cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")
