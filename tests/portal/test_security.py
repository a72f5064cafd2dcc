"""What guards every request: security headers, CSRF, the login rate limit, cookies,
sessions that end when the account changes."""

from __future__ import annotations

from conftest import csrf_token, log_in

from vpop.portal.app import commit, db
from vpop.portal.security import hash_password
from vpop.store.portal import user_by_name


def test_every_page_has_the_security_headers(client):
    for path in ("/login", "/isps/", "/no-such-page", "/static/css/portal.css"):
        headers = client.get(path).headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'"), path
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers  # plain HTTP here


def test_the_session_cookie_is_httponly_and_samesite_lax_and_secure_behind_tls(make_app,
                                                                               demo_db_url):
    for behind, secure in ((False, False), (True, True)):
        client = make_app(demo_db_url, portal={"behind_tls_proxy": behind}).test_client()
        reply = log_in(client, "admin")
        assert reply.status_code == 302
        cookie = next(c for c in reply.headers.getlist("Set-Cookie")
                      if c.startswith("vpop_session="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure, cookie


def test_a_form_without_its_csrf_token_is_refused(client):
    reply = client.post("/login", data={"kind": "staff", "name": "admin",
                                        "password": "admin-pass"})
    assert reply.status_code == 400
    assert "security token" in reply.get_data(as_text=True)
    assert client.get("/isps/").status_code == 302  # not logged in
    log_in(client, "admin")
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/isps/").status_code == 200  # still logged in


def test_logins_beyond_the_limit_are_refused_with_429(make_app, demo_db_url):
    client = make_app(demo_db_url, portal={"login_attempts": 3, "login_window": 600}) \
        .test_client()
    codes = [log_in(client, "admin", password="wrong").status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    refused = log_in(client, "admin")  # the right password, too late
    assert refused.status_code == 429
    assert "Too many login attempts" in refused.get_data(as_text=True)
    other = client.get("/login", environ_overrides={"REMOTE_ADDR": "192.0.2.7"})
    reply = client.post("/login", environ_overrides={"REMOTE_ADDR": "192.0.2.7"}, data={
        "csrf_token": csrf_token(other.get_data(as_text=True)), "kind": "staff",
        "name": "admin", "password": "admin-pass"})
    assert reply.status_code == 302  # another address is counted on its own


def test_a_changed_password_ends_the_sessions_made_before(app, client):
    log_in(client, "admin")
    assert client.get("/isps/").status_code == 200
    with app.test_request_context():
        user_by_name(db(), "admin").password_hash = hash_password("new-pass")
        commit()
    assert client.get("/isps/").status_code == 302


def test_next_leads_only_to_a_page_of_this_site(client):
    def login_to(target: str | None) -> str:
        query = f"?next={target}" if target else ""
        page = client.get(f"/login{query}")
        reply = client.post(f"/login{query}", data={
            "csrf_token": csrf_token(page.get_data(as_text=True)), "kind": "staff",
            "name": "admin", "password": "admin-pass"})
        client.post("/logout", data={"csrf_token": csrf_token(
            client.get("/isps/").get_data(as_text=True))})
        return reply.headers["Location"]
    home = login_to(None)
    assert home.startswith("/") and not home.startswith("//")
    assert login_to("/isps/") == "/isps/"
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example/"):
        assert login_to(elsewhere) == home, elsewhere
