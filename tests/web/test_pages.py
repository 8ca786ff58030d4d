"""The web shell in-process: login form, CSRF, roles, language, one-time passwords, headers."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from rekam.his.installation import Clinic
from rekam.his.rbac import Actor, Role
from rekam.web.cookies import SESSION_COOKIE
from support.servers import PASSWORD


def hidden(html: str, name: str = "csrf_token") -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def form_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    token = hidden(client.get("/login").text)
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return hidden(client.get("/").text)


def test_anonymous_pages_redirect_to_login(app_client: TestClient) -> None:
    for path in ("/", "/admin/users", "/account"):
        response = app_client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_login_page_defaults_to_indonesian(app_client: TestClient) -> None:
    page = app_client.get("/login")
    assert page.status_code == 200
    assert '<html lang="id">' in page.text and "Kata sandi" in page.text


def test_session_cookie_attributes(app_client: TestClient) -> None:
    token = hidden(app_client.get("/login").text)
    response = app_client.post(
        "/login",
        data={"username": "nurse1", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    cookie = next(
        v
        for k, v in response.headers.multi_items()
        if k == "set-cookie" and v.startswith(SESSION_COOKIE)
    )
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)


def test_login_without_form_token_is_refused(app_client: TestClient) -> None:
    response = app_client.post(
        "/login",
        data={
            "username": "nurse1",
            "password": PASSWORD,
            "csrf_token": "forged-token-value-123456",
        },
    )
    assert response.status_code == 403
    assert app_client.get("/", follow_redirects=False).status_code == 303


def test_wrong_password_shows_a_clear_message(app_client: TestClient) -> None:
    token = hidden(app_client.get("/login").text)
    response = app_client.post(
        "/login", data={"username": "lab1", "password": "wrong-password-xyz", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "Nama pengguna atau kata sandi salah." in response.text


def test_logout_requires_the_session_csrf_token(app_client: TestClient) -> None:
    csrf = form_login(app_client, "nurse1")
    assert app_client.post("/logout", data={"csrf_token": "x" * 64}).status_code == 403
    assert app_client.get("/", follow_redirects=False).status_code == 200  # still logged in
    out = app_client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login?bye=1"
    assert app_client.get("/", follow_redirects=False).status_code == 303


def test_navigation_follows_the_role(app_client: TestClient) -> None:
    form_login(app_client, "admin1")
    assert 'href="/admin/users"' in app_client.get("/").text
    assert app_client.get("/admin/users").status_code == 200


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
def test_non_admins_cannot_reach_user_administration(app_client: TestClient, role: Role) -> None:
    csrf = form_login(app_client, f"{role.value}1")
    assert 'href="/admin/users"' not in app_client.get("/").text
    assert app_client.get("/admin/users").status_code == 403
    created = app_client.post(
        "/admin/users",
        data={"username": "intruder", "display_name": "X", "role": "admin", "csrf_token": csrf},
    )
    assert created.status_code == 403


def test_admin_adds_a_user_with_csrf_only(app_client: TestClient, clinic: Clinic) -> None:
    csrf = form_login(app_client, "admin1")
    data = {"username": "pagesuser", "display_name": "Budi Santoso", "role": "nurse"}
    assert app_client.post("/admin/users", data=data).status_code == 422  # field missing
    assert app_client.post("/admin/users", data={**data, "csrf_token": "bad"}).status_code == 403
    users = {u.username for u in clinic.accounts.list_users(Actor.system())}
    assert "pagesuser" not in users
    response = app_client.post("/admin/users", data={**data, "csrf_token": csrf})
    assert response.status_code == 201 and "Budi Santoso" in response.text
    one_time = re.search(r"([A-Za-z0-9]{4}(?:-[A-Za-z0-9]{4}){3})", response.text)
    assert one_time is not None
    # the new user must change the one-time password before anything else
    app_client.cookies.clear()
    token = hidden(app_client.get("/login").text)
    first = app_client.post(
        "/login",
        data={"username": "pagesuser", "password": one_time.group(1), "csrf_token": token},
        follow_redirects=False,
    )
    assert first.headers["location"] == "/account"
    assert app_client.get("/", follow_redirects=False).headers["location"] == "/account"
    csrf = hidden(app_client.get("/account").text)
    changed = app_client.post(
        "/account/password",
        data={
            "current_password": one_time.group(1),
            "new_password": "Soto-Betawi-Enak-22",
            "repeat_password": "Soto-Betawi-Enak-22",
            "csrf_token": csrf,
        },
    )
    assert changed.status_code == 200
    assert app_client.get("/", follow_redirects=False).status_code == 200


def test_weak_new_password_is_explained_in_both_languages(app_client: TestClient) -> None:
    csrf = form_login(app_client, "pharmacist1")
    app_client.post("/language", data={"language": "id", "csrf_token": csrf, "next": "/account"})
    data = {
        "current_password": PASSWORD,
        "new_password": "short",
        "repeat_password": "short",
        "csrf_token": csrf,
    }
    indonesian = app_client.post("/account/password", data=data)
    assert indonesian.status_code == 422
    assert "Kata sandi harus memiliki minimal 12 karakter." in indonesian.text
    app_client.post("/language", data={"language": "en", "csrf_token": csrf, "next": "/account"})
    english = app_client.post("/account/password", data=data)
    assert "The password must have at least 12 characters." in english.text
    app_client.post("/language", data={"language": "id", "csrf_token": csrf, "next": "/"})


def test_language_switch(app_client: TestClient) -> None:
    token = hidden(app_client.get("/login").text)
    switched = app_client.post(
        "/language",
        data={"language": "en", "csrf_token": token, "next": "/login"},
        follow_redirects=False,
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    page = app_client.get("/login")
    assert '<html lang="en">' in page.text and "Password" in page.text
    # an open redirect is not possible through "next"
    evil = app_client.post(
        "/language",
        data={"language": "id", "csrf_token": token, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert evil.headers["location"] == "/"


def test_security_headers_on_pages_and_errors(app_client: TestClient) -> None:
    for response in (
        app_client.get("/login"),
        app_client.get("/no-such-page"),
        app_client.get("/healthz"),
    ):
        h = response.headers
        assert h["strict-transport-security"].startswith("max-age=31536000")
        assert "frame-ancestors 'none'" in h["content-security-policy"]
        assert "script-src 'self'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        assert h["cache-control"] == "no-store"
        assert "server" not in h


def test_healthz_and_openapi(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    spec = app_client.get("/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/session", "/api/v1/me", "/api/v1/users"):
        assert path in spec["paths"]
    assert "/login" not in spec["paths"]


def test_second_factor_login_through_the_forms(app_client: TestClient, clinic: Clinic) -> None:
    import base64
    from datetime import UTC, datetime

    from rekam.his.totp import totp_code

    clinic.accounts.create_user(Actor.system(), "totp.user", "Totp User", Role.NURSE, PASSWORD)
    token = clinic.accounts.login("totp.user", PASSWORD, "127.0.0.1").session_token
    actor = clinic.accounts.resolve_session(token).actor  # type: ignore[union-attr]
    enrolment = clinic.accounts.begin_totp_enrolment(actor)
    padded = enrolment.secret_base32 + "=" * (-len(enrolment.secret_base32) % 8)
    secret = base64.b32decode(padded)
    clinic.accounts.confirm_totp_enrolment(actor, totp_code(secret, datetime.now(UTC)))

    form = hidden(app_client.get("/login").text)
    first = app_client.post(
        "/login",
        data={"username": "totp.user", "password": PASSWORD, "csrf_token": form},
        follow_redirects=False,
    )
    assert first.headers["location"] == "/login/second-factor"
    # the password alone does not open the clinic
    assert app_client.get("/", follow_redirects=False).headers["location"] == "/login"
    page = app_client.get("/login/second-factor")
    csrf = hidden(page.text)
    wrong = app_client.post("/login/second-factor", data={"code": "000000", "csrf_token": csrf})
    assert wrong.status_code == 401
    assert "Kode salah" in wrong.text
    # a code from the next time step (the last accepted one cannot be replayed)
    later = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 30, UTC)
    right = app_client.post(
        "/login/second-factor",
        data={"code": totp_code(secret, later), "csrf_token": csrf},
        follow_redirects=False,
    )
    assert right.status_code == 303 and right.headers["location"] == "/"
    assert app_client.get("/", follow_redirects=False).status_code == 200
