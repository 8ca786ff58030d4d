"""Who is asking and in which language: resolved once per request, used by pages and the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from rekam.his.installation import Clinic
from rekam.his.rbac import Actor, Permission, authorize
from rekam.his.sessions import ActiveSession, csrf_token_matches
from rekam.web.client_address import client_address
from rekam.web.cookies import LANGUAGE_COOKIE, SESSION_COOKIE
from rekam.web.i18n import Translator, choose_language, translator
from rekam.web.request_rate_limit import KnownSessions


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


class PasswordChangeRequired(Exception):
    """The user still has a one-time password."""


class CsrfRejected(Exception):
    """A state-changing request without the session's CSRF token."""


@dataclass(frozen=True)
class RequestContext:
    request: Request
    clinic: Clinic
    source: str
    session_token: str | None
    session: ActiveSession | None
    language: str
    t: Translator

    @property
    def logged_in(self) -> bool:
        return self.session is not None and not self.session.second_factor_pending

    @property
    def actor(self) -> Actor:
        if self.session is None or self.session.second_factor_pending:
            raise LoginRequired
        return self.session.actor

    def check_csrf(self, presented: str | None) -> None:
        if self.session_token is None or not csrf_token_matches(self.session_token, presented):
            raise CsrfRejected


def clinic_of(request: Request) -> Clinic:
    clinic: Clinic = request.app.state.clinic
    return clinic


def known_sessions_of(request: Request) -> KnownSessions:
    known: KnownSessions = request.app.state.known_sessions
    return known


def request_context(request: Request) -> RequestContext:
    clinic = clinic_of(request)
    source = client_address(request.scope, request.app.state.trusted_proxies)
    token = request.cookies.get(SESSION_COOKIE)
    session = clinic.accounts.resolve_session(token) if token else None
    if token and session is not None:
        known_sessions_of(request).remember(token)
    elif token:
        known_sessions_of(request).forget(token)
        token = None
    language = choose_language(
        request.cookies.get(LANGUAGE_COOKIE),
        session.language if session else None,
        clinic.settings.default_language.value,
    )
    return RequestContext(
        request=request,
        clinic=clinic,
        source=source,
        session_token=token,
        session=session,
        language=language,
        t=translator(language),
    )


Context = Annotated[RequestContext, Depends(request_context)]


def logged_in_context(context: Context) -> RequestContext:
    if not context.logged_in:
        raise LoginRequired
    assert context.session is not None
    if context.session.must_change_password:
        raise PasswordChangeRequired
    return context


def require(permission: Permission) -> Callable[[RequestContext], RequestContext]:
    """A dependency admitting only logged-in users whose role grants ``permission``."""

    def dependency(
        context: Annotated[RequestContext, Depends(logged_in_context)],
    ) -> RequestContext:
        authorize(context.actor, permission)
        return context

    dependency.__name__ = f"require_{permission.value.replace(':', '_').replace('-', '_')}"
    return dependency


def account_context(context: Context) -> RequestContext:
    """Logged in, even with a one-time password still to change (the account page itself)."""
    if not context.logged_in:
        raise LoginRequired
    return context
