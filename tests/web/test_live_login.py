"""A real server process: log in through the form, see the dashboard, log out."""

from __future__ import annotations

from support.servers import RunningServer, login


def test_login_dashboard_logout_over_tls(live_server: RunningServer) -> None:
    with live_server.client() as client:
        csrf = login(client, "doctor1")
        page = client.get("/")
        assert "Doctor1" in page.text
        # the dashboard names the protection negotiated for this very connection
        assert "TLSv1.3 · TLS_AES_256_GCM_SHA384" in page.text
        assert page.headers["strict-transport-security"].startswith("max-age=")
        out = client.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert client.get("/").headers.get("location") in (None, "/login")
        after = client.get("/", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"] == "/login"
