"""The JSON API: session login, CSRF header, roles, clear errors."""

from __future__ import annotations

from starlette.testclient import TestClient

from support.servers import PASSWORD


def api_login(client: TestClient, username: str) -> str:
    response = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"csrf_token", "second_factor_required", "must_change_password"}
    return str(body["csrf_token"])


def test_me_requires_login(app_client: TestClient) -> None:
    response = app_client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_required"


def test_login_me_logout(app_client: TestClient) -> None:
    csrf = api_login(app_client, "doctor1")
    me = app_client.get("/api/v1/me").json()
    assert me["username"] == "doctor1" and me["role"] == "doctor"
    assert "users:write" not in me["permissions"]
    assert app_client.delete("/api/v1/session").status_code == 403  # no CSRF header
    assert app_client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert app_client.get("/api/v1/me").status_code == 401


def test_wrong_password(app_client: TestClient) -> None:
    response = app_client.post(
        "/api/v1/session", json={"username": "doctor1", "password": "nope-nope-nope"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_refused"


def test_user_administration_is_for_admins(app_client: TestClient) -> None:
    csrf = api_login(app_client, "registration1")
    assert app_client.get("/api/v1/users").status_code == 403
    refused = app_client.post(
        "/api/v1/users",
        json={"username": "x1", "display_name": "X", "role": "admin"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 403

    app_client.cookies.clear()
    csrf = api_login(app_client, "admin1")
    body = {"username": "apiuser", "display_name": "Siti Rahma", "role": "lab"}
    assert app_client.post("/api/v1/users", json=body).status_code == 403  # CSRF header missing
    created = app_client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201
    assert created.json()["user"]["must_change_password"] is True
    again = app_client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    invalid = app_client.post(
        "/api/v1/users",
        json={**body, "username": "new", "role": "surgeon"},
        headers={"X-CSRF-Token": csrf},
    )
    assert invalid.status_code == 422
    assert invalid.json()["error"]["fields"][0]["field"] == "role"
    names = [u["username"] for u in app_client.get("/api/v1/users").json()]
    assert "apiuser" in names and "new" not in names


def test_password_reset_through_the_api(app_client: TestClient) -> None:
    csrf = api_login(app_client, "admin1")
    body = {"username": "resetme", "display_name": "Reset Me", "role": "nurse"}
    app_client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf})
    reset = app_client.post("/api/v1/users/resetme/password-reset", headers={"X-CSRF-Token": csrf})
    assert reset.status_code == 200
    new_password = reset.json()["one_time_password"]
    app_client.cookies.clear()
    login = app_client.post(
        "/api/v1/session", json={"username": "resetme", "password": new_password}
    )
    assert login.json()["must_change_password"] is True
    blocked = app_client.get("/api/v1/users")
    assert blocked.status_code == 403
    missing = app_client.post(
        "/api/v1/users/nobody-here/password-reset", headers={"X-CSRF-Token": csrf}
    )
    assert missing.status_code in (401, 403, 404)
