"""Tenant isolation: the operator of isp-local, through every page and every API route,
asking for isp-proxy's leases, sessions, reports, servers, tokens and audit, gets 403 or
404, or its own data only, and never a byte of the other ISP's.

ISOLATION classifies every route of the app (app.url_map): how the other ISP's data is
asked for through it, or why it holds none. A new route fails
`test_every_route_is_classified` until it is listed here.
"""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import NOW, log_in, post_form
from usage_support import add_accounting
from vpop.store import api_tokens
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.portal import record_audit

# What must never appear in an answer to isp-local's operator or token.
FOREIGN = ("isp-proxy", "joe@")

# endpoint -> (method, path) asking for isp-proxy's data ({lease}, {closed}, {open},
# {token}, {audit} are isp-proxy's), or a string: why the route holds no ISP's data.
# Lists (no object in the path) ask with ?isp=isp-proxy, which an operator's scope ignores.
NO_ISP_DATA = "no ISP's data"
ADMIN_ONLY = "admin only: an operator gets 403 (test_routes.py)"
SUBSCRIBER_ONLY = "subscriber only: an operator gets 403 (test_routes.py)"
ISOLATION = {
    "auth.index": NO_ISP_DATA, "auth.login": NO_ISP_DATA, "auth.logout": NO_ISP_DATA,
    "static": NO_ISP_DATA, "api-docs.openapi_json": NO_ISP_DATA,
    "directory.index": "the public ISP directory: every ISP's price and quality, for all",
    "directory.isp": "the public ISP directory", "directory.quality": "the public ISP directory",
    "subscriber.home": SUBSCRIBER_ONLY, "subscriber.choose": SUBSCRIBER_ONLY,
    "admin.index": ADMIN_ONLY, "admin.records": ADMIN_ONLY, "admin.create": ADMIN_ONLY,
    "admin.edit": ADMIN_ONLY, "admin.disable": ADMIN_ONLY, "admin.nas_config": ADMIN_ONLY,
    "operator.index": ("GET", "/isp/?isp=isp-proxy"),
    "operator.settings": ("GET", "/isp/settings?isp=isp-proxy"),
    "usage.leases": ("GET", "/usage/leases?isp=isp-proxy"),
    "usage.lease": ("GET", "/usage/leases/{lease}"),
    "usage.lease_json": ("GET", "/usage/leases/{lease}/usage.json"),
    "usage.lease_csv": ("GET", "/usage/leases/{lease}/usage.csv"),
    "usage.reports": ("GET", "/usage/reports?by=isp&isp=isp-proxy&from=2026-06-15"),
    "usage.reports_csv": ("GET", "/usage/reports.csv?by=lease&isp=isp-proxy&from=2026-06-15"),
    "usage.sessions": ("GET", "/usage/sessions?isp=isp-proxy"),
    "usage.sessions_csv": ("GET", "/usage/sessions.csv?isp=isp-proxy"),
    "usage.session": ("GET", "/usage/sessions/{closed}"),
    "usage.disconnect": ("POST", "/usage/sessions/{open}/disconnect"),
    "usage.tokens": ("GET", "/usage/tokens?isp=isp-proxy"),
    "usage.revoke_token": ("POST", "/usage/tokens/{token}/revoke"),
    "usage.audit_log": ("GET", "/usage/audit?isp=isp-proxy"),
    "usage.rollback": ("POST", "/usage/audit/{audit}/rollback"),
    "api.isps": ("GET", "/api/v1/isps?isp=isp-proxy"),
    "api.isp": ("GET", "/api/v1/isps/isp-proxy"),
    "api.IspServers": ("GET", "/api/v1/isps/isp-proxy/servers"),
    "api.rollback": ("POST", "/api/v1/audit/{audit}/rollback"),
    "api.leases": ("GET", "/api/v1/leases?isp=isp-proxy"),
    "api.lease": ("GET", "/api/v1/leases/{lease}"),
    "api.lease_utilization": ("GET", "/api/v1/leases/{lease}/utilization"),
    "api.utilization": ("GET", "/api/v1/utilization?by=lease&isp=isp-proxy&from=2026-06-15"),
    "api.sessions": ("GET", "/api/v1/sessions?isp=isp-proxy"),
    "api.session": ("GET", "/api/v1/sessions/{closed}"),
    "api.disconnect": ("POST", "/api/v1/sessions/{open}/disconnect"),
    "api.Records": ("GET", "/api/v1/records/isp"),
    "api.Record": ("GET", "/api/v1/records/isp/isp-proxy"),
    "api.Tokens": ("GET", "/api/v1/tokens?isp=isp-proxy"),
    "api.revoke_token": ("DELETE", "/api/v1/tokens/{token}"),
    "api.audit_log": ("GET", "/api/v1/audit?isp=isp-proxy"),
}
# The same routes with other methods: a change to isp-proxy's servers.
CHANGES = [("api.IspServers", "PUT", "/api/v1/isps/isp-proxy/servers",
            {"servers": [{"address": "192.0.2.99", "secret": "taken-over"}]})]


@pytest.fixture
def world(demo_db_url):
    """Accounting of both ISPs, a token of each, a change audited for each."""
    found = add_accounting(demo_db_url)
    engine = make_engine(demo_db_url)
    try:
        with make_sessionmaker(engine)() as session:
            tokens = {}
            for isp in ("isp-local", "isp-proxy"):
                row, token = api_tokens.create(session, isp=isp, name=f"{isp} robot",
                                               created_by="test", now=NOW)
                tokens[isp] = (row.id, token)
                entry = record_audit(session, at=NOW, actor="test", action="isp.servers",
                                     obj=f"isp {isp}", before={"servers": [], "tunnels": []},
                                     after={"servers": [], "tunnels": []}, isp_id=row.isp_id)
                found[isp]["audit"] = entry.id
                found[isp]["token"] = row.id
            session.commit()
    finally:
        engine.dispose()
    return found, tokens


def _ask(client, method: str, path: str, headers: dict, json=None):
    if method == "POST" and not path.startswith("/api/"):
        return post_form(client, path, {}, page="/usage/tokens")
    return client.open(path, method=method, headers=headers, json=json)


def test_every_route_is_classified(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - set(ISOLATION)) == [], "classify these routes in ISOLATION"
    assert sorted(set(ISOLATION) - endpoints) == [], "ISOLATION lists routes the app lacks"


def _cases():
    for endpoint, how in sorted(ISOLATION.items()):
        if not isinstance(how, str):
            yield pytest.param(endpoint, *how, id=endpoint)


@pytest.mark.parametrize("endpoint,method,path", list(_cases()))
def test_another_isps_data_is_never_shown(app, world, endpoint, method, path):
    found, tokens = world
    client = app.test_client()
    path = path.format(**found["isp-proxy"])
    if endpoint.startswith("api"):
        headers = {"Authorization": f"Bearer {tokens['isp-local'][1]}"}
    else:
        headers = {}
        assert log_in(client, "operator").status_code == 302
    reply = _ask(client, method, path, headers)
    body = reply.get_data(as_text=True)
    assert reply.status_code in (200, 403, 404), (reply.status_code, body[:500])
    for foreign in FOREIGN:
        assert foreign not in body, (endpoint, foreign, body[:2000])
    if reply.status_code == 200 and "{" in ISOLATION[endpoint][1]:
        pytest.fail(f"{endpoint} answered 200 for another ISP's object")


@pytest.mark.parametrize("endpoint,method,path,body", CHANGES)
def test_another_isps_servers_cannot_be_changed(app, world, endpoint, method, path, body):
    found, tokens = world
    client = app.test_client()
    reply = client.open(path, method=method, json=body,
                        headers={"Authorization": f"Bearer {tokens['isp-local'][1]}"})
    assert reply.status_code == 404
    admin = _admin_token(app)
    servers = client.get("/api/v1/isps/isp-proxy/servers",
                         headers={"Authorization": f"Bearer {admin}"}).get_json()["servers"]
    assert [s["address"] for s in servers] == ["127.0.0.1"]


def _admin_token(app) -> str:
    with app.extensions["vpop"].sessions() as session:
        _, token = api_tokens.create(session, isp=None, name="admin robot", created_by="test",
                                     now=NOW)
        session.commit()
    return token


def test_the_operator_sees_its_own_data(app, world):
    found, tokens = world
    client = app.test_client()
    log_in(client, "operator")
    own = found["isp-local"]
    page = client.get(f"/usage/sessions/{own['closed']}").get_data(as_text=True)
    assert "alice@isp-local.example" in page
    listed = client.get("/usage/sessions?isp=isp-proxy").get_data(as_text=True)
    assert listed.count("alice@isp-local.example") == 3
    csv = client.get("/usage/sessions.csv").get_data(as_text=True).splitlines()
    assert len(csv) == 4 and all("isp-local" in line for line in csv[1:])
    api = client.get("/api/v1/sessions", headers={
        "Authorization": f"Bearer {tokens['isp-local'][1]}"}).get_json()
    assert {s["isp"] for s in api["sessions"]} == {"isp-local"}
    assert dt.datetime.fromisoformat(api["sessions"][0]["start"].replace("Z", "+00:00"))
