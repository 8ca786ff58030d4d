"""Render a page template with what every page needs (translations, navigation, CSRF token)."""

from __future__ import annotations

import secrets
from importlib import resources
from typing import Any

from starlette.responses import Response
from starlette.templating import Jinja2Templates

from rekam.his.rbac import Permission
from rekam.web.context import RequestContext
from rekam.web.cookies import LOGIN_FORM_COOKIE, set_secure_cookie
from rekam.web.i18n import LANGUAGES
from rekam.web.navigation import navigation_for

templates = Jinja2Templates(directory=str(resources.files("rekam.web").joinpath("templates")))

LOGIN_FORM_MAX_AGE = 3600


def login_form_token(context: RequestContext) -> str:
    """The double-submit token protecting forms shown before login."""
    existing = context.request.cookies.get(LOGIN_FORM_COOKIE)
    if existing and 20 <= len(existing) <= 64:
        return existing
    return secrets.token_urlsafe(24)


def _never(_: Permission) -> bool:
    return False


def render(
    context: RequestContext,
    template: str,
    status_code: int = 200,
    messages: list[tuple[str, str]] | None = None,
    **values: Any,
) -> Response:
    session = context.session if context.logged_in else None
    if session is not None:
        csrf = session.csrf_token
        nav = navigation_for(session.actor) if not session.must_change_password else []
        user = {"display_name": session.display_name, "role": session.actor.role.value}
    else:
        csrf = login_form_token(context)
        nav, user = [], None
    response = templates.TemplateResponse(
        context.request,
        template,
        {
            "t": context.t,
            "lang": context.language,
            "languages": LANGUAGES,
            "nav": nav,
            "user": user,
            "csrf_token": csrf,
            "current_path": context.request.url.path,
            "messages": messages or [],
            "Permission": Permission,
            "can": (lambda permission: session.actor.can(permission)) if session else _never,
            **values,
        },
        status_code=status_code,
    )
    if session is None:
        set_secure_cookie(response, LOGIN_FORM_COOKIE, csrf, LOGIN_FORM_MAX_AGE)
    return response
