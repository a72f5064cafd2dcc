"""The JSON API: tokens (made by `vpop token`, the API and the portal), scopes, bad
values refused field by field with nothing changed, the OpenAPI document."""

from __future__ import annotations

import contextlib
import io

import pytest
from sqlalchemy import func, select

from conftest import NOW, log_in, post_form
from usage_support import add_accounting
from vpop.cli.commands import main
from vpop.store import api_tokens
from vpop.store.generation import current
from vpop.store.portal_models import PortalAudit


@pytest.fixture
def accounting(demo_db_url):
    return add_accounting(demo_db_url)


def token_for(app, isp: str | None) -> str:
    with app.extensions["vpop"].sessions() as session:
        _, token = api_tokens.create(session, isp=isp, name="test", created_by="test", now=NOW)
        session.commit()
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_vpop_token_create_list_revoke(app, demo_db_url, tmp_path):
    config = tmp_path / "vpop.toml"
    config.write_text(f'[database]\nurl = "{demo_db_url}"\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--config", str(config), "token", "create", "--isp", "isp-local",
                     "--name", "billing"]) == 0
    token = out.getvalue().split(": ")[-1].strip()
    client = app.test_client()
    leases = client.get("/api/v1/leases", headers=bearer(token)).get_json()["leases"]
    assert {lease["isp"] for lease in leases} == {"isp-local"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--config", str(config), "token", "list"]) == 0
    ident = out.getvalue().split("\t")[0]
    assert "isp-local\tactive" in out.getvalue() and "billing" in out.getvalue()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["--config", str(config), "token", "revoke", ident]) == 0
    assert client.get("/api/v1/leases", headers=bearer(token)).status_code == 401
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["--config", str(config), "token", "create", "--isp", "no-such"]) == 2
    assert "no ISP 'no-such'" in err.getvalue()


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic YWRtaW4=",
                                    "Bearer vpop_" + "x" * 43])
def test_without_a_valid_token_401(client, header):
    reply = client.get("/api/v1/leases", headers={"Authorization": header} if header else {})
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="vpop"'


def test_the_portal_cookie_is_no_token(client):
    log_in(client, "admin")
    assert client.get("/api/v1/leases").status_code == 401


def test_an_isp_token_cannot_use_admin_calls(app, accounting):
    client, token = app.test_client(), token_for(app, "isp-local")
    own_open = accounting["isp-local"]["open"]
    assert client.get("/api/v1/records/subscriber", headers=bearer(token)).status_code == 403
    assert client.post(f"/api/v1/sessions/{own_open}/disconnect", json={},
                       headers=bearer(token)).status_code == 403


def test_the_openapi_document_describes_every_call(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path in ("/api/v1/leases", "/api/v1/leases/{lease_id}/utilization", "/api/v1/sessions",
                 "/api/v1/sessions/{ident}/disconnect", "/api/v1/isps/{name}/servers",
                 "/api/v1/records/{section}/{key}", "/api/v1/tokens", "/api/v1/audit"):
        assert path in doc["paths"], path
    assert {p["name"] for p in doc["paths"]["/api/v1/sessions"]["get"]["parameters"]} >= {
        "isp", "nas", "user", "status", "from", "to", "after", "limit"}


def test_lease_utilization_and_sessions(app, accounting):
    client, token = app.test_client(), token_for(app, "isp-proxy")
    lease = accounting["isp-proxy"]["lease"]
    usage = client.get(f"/api/v1/leases/{lease}/utilization?from=2026-06-15&to=2026-06-16"
                       "&grain=hour", headers=bearer(token)).get_json()
    assert len(usage["chart"]["t"]) == 24
    # 10:00-11:00: one session all hour, another until 10:30; the third online since 10:00
    assert usage["chart"]["sessions_peak"][10] == 2
    assert usage["chart"]["sessions_avg"][10] == 1.5
    page = client.get("/api/v1/sessions?limit=2", headers=bearer(token)).get_json()
    assert len(page["sessions"]) == 2 and page["next"]
    rest = client.get(f"/api/v1/sessions?limit=2&after={page['next']}",
                      headers=bearer(token)).get_json()
    assert len(rest["sessions"]) == 1 and rest["next"] is None
    csv = client.get("/api/v1/sessions?format=csv&status=open", headers=bearer(token))
    assert csv.mimetype == "text/csv" and len(csv.get_data(as_text=True).splitlines()) == 2


@pytest.mark.parametrize("query, field", [
    ("status=gone", "status"), ("limit=0", "limit"), ("from=yesterday", "from"),
    ("after=nowhere", "after")])
def test_bad_session_filters_are_named(app, query, field):
    reply = app.test_client().get(f"/api/v1/sessions?{query}",
                                  headers=bearer(token_for(app, None)))
    assert reply.status_code == 422
    assert field in reply.get_json()["errors"]["query"]


def _changes(app):
    with app.extensions["vpop"].sessions() as session:
        return (current(session).generation,
                session.scalar(select(func.count()).select_from(PortalAudit)))


def test_servers_changed_checked_audited_and_rolled_back(app):
    client, token = app.test_client(), token_for(app, "isp-proxy")
    path = "/api/v1/isps/isp-proxy/servers"
    before = client.get(path, headers=bearer(token)).get_json()
    assert before["servers"][0]["secret"] == "***"
    generation, audited = _changes(app)
    bad = {"servers": [{"name": "isp-proxy/1", "address": "127.0.0.300", "auth_port": 70000}]}
    reply = client.put(path, json=bad, headers=bearer(token))
    assert reply.status_code == 422
    assert reply.get_json()["errors"]["json"] == {
        "servers[1].address": ["is not an IPv4 or IPv6 address"]}
    assert _changes(app) == (generation, audited)
    good = {"servers": [{**before["servers"][0], "auth_port": 11700, "secret": "***"}]}
    changed = client.put(path, json=good, headers=bearer(token)).get_json()
    assert changed["changed"] and changed["generation"] == generation + 1
    assert changed["servers"][0]["auth_port"] == 11700
    entry = client.get("/api/v1/audit", headers=bearer(token)).get_json()["changes"][0]
    assert entry["action"] == "isp.servers" and entry["before"]["servers"][0]["auth_port"] == 11645
    rolled = client.post(f"/api/v1/audit/{entry['id']}/rollback", headers=bearer(token))
    assert rolled.get_json()["servers"][0]["auth_port"] == 11645
    # The secret was kept through both: the stored one is the demo's.
    with app.extensions["vpop"].sessions() as session:
        from vpop.provisioning.stored import stored_table
        assert stored_table(session, "isp", "isp-proxy")["servers"][0]["secret"] == \
            "isp-proxy-secret"


def test_records_created_and_refused_by_field(app):
    client, token = app.test_client(), token_for(app, None)
    generation, audited = _changes(app)
    bad = {"username": "zoe", "profile": "no-such-profile", "password": "x",
           "caller_ids": ["not a number"]}
    reply = client.post("/api/v1/records/subscriber", json=bad, headers=bearer(token))
    assert reply.status_code == 422
    assert list(reply.get_json()["errors"]["json"]) == ["caller_ids[1]"]
    assert _changes(app) == (generation, audited)
    reply = client.post("/api/v1/records/subscriber", json={**bad, "caller_ids": []},
                        headers=bearer(token))
    assert reply.get_json()["errors"]["json"] == {
        "profile": ["no profile 'no-such-profile' in this file or the database"]}
    made = client.post("/api/v1/records/subscriber", headers=bearer(token), json={
        "username": "zoe", "profile": "residential-10m", "password": "zoe-pass"})
    assert made.status_code == 201 and made.get_json()["record"]["password_hash"] == "***"
    changed = client.put("/api/v1/records/subscriber/zoe", json={"enabled": False},
                         headers=bearer(token)).get_json()
    assert changed["record"]["enabled"] is False
    assert client.get("/api/v1/records/subscriber/zoe",
                      headers=bearer(token)).get_json()["profile"] == "residential-10m"


def test_tokens_of_an_isp_are_its_own(app):
    client = app.test_client()
    local, proxy = token_for(app, "isp-local"), token_for(app, "isp-proxy")
    made = client.post("/api/v1/tokens", json={"name": "robot", "isp": "isp-proxy"},
                       headers=bearer(local)).get_json()
    assert made["isp"] == "isp-local" and made["token"].startswith("vpop_")
    listed = client.get("/api/v1/tokens", headers=bearer(proxy)).get_json()["tokens"]
    assert made["id"] not in {t["id"] for t in listed}
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers=bearer(proxy)).status_code == 404
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers=bearer(local)).status_code == 200
    assert client.get("/api/v1/leases", headers=bearer(made["token"])).status_code == 401


def test_the_portal_makes_tokens_for_the_operators_isp(app):
    client = app.test_client()
    log_in(client, "operator")
    page = post_form(client, "/usage/tokens", {"name": "from the portal", "isp": ""})
    token = page.get_data(as_text=True).split('id="token-value">')[1].split("<")[0]
    leases = client.get("/api/v1/leases", headers=bearer(token)).get_json()["leases"]
    assert {lease["isp"] for lease in leases} == {"isp-local"}
