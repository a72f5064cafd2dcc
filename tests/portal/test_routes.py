"""Every route of the portal, for every kind of user: the roles that may use it get
it, a visitor not logged in is sent to the login page, every other role gets 403.

ROUTES lists each endpoint with its roles and a path to ask; a route the app has and
ROUTES does not list fails `test_every_route_is_listed`, so none escapes this test.
Tenant isolation (an operator asking for another ISP's objects) has its own tests
beside each area's.
"""

from __future__ import annotations

import pytest

from conftest import log_in

ANYONE = "anyone"
API = "api"  # a token, never the portal's cookie: 401 for every login (tests/portal/test_api.py)
STAFF = ("operator", "admin")
EVERYONE = ("subscriber", "operator", "admin")

# endpoint -> (roles that may use it, path to GET; None: POST only, tested elsewhere)
ROUTES: dict[str, tuple[tuple[str, ...] | str, str | None]] = {
    "auth.index": (ANYONE, "/"),
    "auth.login": (ANYONE, "/login"),
    "auth.logout": (EVERYONE, None),
    "static": (ANYONE, "/static/css/portal.css"),
    "directory.index": (EVERYONE, "/isps/?sort=p99&order=desc&window=7d"),
    "directory.isp": (EVERYONE, "/isps/isp-proxy?window=1h"),
    "directory.quality": (EVERYONE, "/isps/isp-proxy/quality.json?window=24h"),
    "subscriber.home": (("subscriber",), "/me/"),
    "subscriber.choose": (("subscriber",), "/me/isp"),
    # Leases, utilization, sessions, tokens and the audit (usage.py): each operator its
    # own ISP's (tests/portal/test_isolation.py), the admin every ISP's.
    "usage.leases": (STAFF, "/usage/leases"),
    "usage.lease": (STAFF, "/usage/leases/1?from=2026-06-15&to=2026-06-16"),
    "usage.lease_json": (STAFF, "/usage/leases/1/usage.json"),
    "usage.lease_csv": (STAFF, "/usage/leases/1/usage.csv?grain=hour"),
    "usage.reports": (STAFF, "/usage/reports?by=nas&from=2026-06-15"),
    "usage.reports_csv": (STAFF, "/usage/reports.csv?by=lease"),
    "usage.sessions": (STAFF, "/usage/sessions?status=open"),
    "usage.sessions_csv": (STAFF, "/usage/sessions.csv"),
    "usage.session": (STAFF, None),  # needs a session: test_isolation.py
    "usage.disconnect": (("admin",), None),
    "usage.tokens": (STAFF, "/usage/tokens"),
    "usage.revoke_token": (STAFF, None),
    "usage.audit_log": (STAFF, "/usage/audit"),
    "usage.rollback": (STAFF, None),
    "operator.index": (("operator",), "/isp/"),
    "operator.settings": (("operator",), "/isp/settings"),
    "admin.index": (("admin",), "/admin/"),
    "admin.records": (("admin",), "/admin/records/subscriber"),
    "admin.create": (("admin",), "/admin/records/nas/new"),
    "admin.edit": (("admin",), "/admin/records/isp/isp-tunnel"),
    "admin.disable": (("admin",), None),
    "admin.nas_config": (("admin",), "/admin/nas/localhost/config?type=accel-ppp"),
    # The JSON API (api.py) and its OpenAPI document.
    "api-docs.openapi_json": (ANYONE, "/api/v1/openapi.json"),
    "api.isps": (API, "/api/v1/isps"),
    "api.isp": (API, "/api/v1/isps/isp-local"),
    "api.IspServers": (API, "/api/v1/isps/isp-local/servers"),
    "api.rollback": (API, None),
    "api.leases": (API, "/api/v1/leases"),
    "api.lease": (API, "/api/v1/leases/1"),
    "api.lease_utilization": (API, "/api/v1/leases/1/utilization"),
    "api.utilization": (API, "/api/v1/utilization"),
    "api.sessions": (API, "/api/v1/sessions"),
    "api.session": (API, "/api/v1/sessions/1"),
    "api.disconnect": (API, None),
    "api.Records": (API, "/api/v1/records/nas"),
    "api.Record": (API, "/api/v1/records/nas/localhost"),
    "api.Tokens": (API, "/api/v1/tokens"),
    "api.revoke_token": (API, None),
    "api.audit_log": (API, "/api/v1/audit"),
}
WHO = ("anonymous", "subscriber", "operator", "admin")


def test_every_route_is_listed(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - set(ROUTES)) == [], "list these routes in ROUTES"
    assert sorted(set(ROUTES) - endpoints) == [], "ROUTES lists routes the app lacks"


def _cases():
    for endpoint, (roles, path) in sorted(ROUTES.items()):
        if path is None:
            continue
        for who in WHO:
            yield pytest.param(endpoint, roles, path, who, id=f"{endpoint}-{who}")


@pytest.mark.parametrize("endpoint,roles,path,who", list(_cases()))
def test_each_route_answers_its_roles_only(client, endpoint, roles, path, who):
    if who != "anonymous":
        assert log_in(client, who).status_code == 302
    reply = client.get(path)
    if roles == API:
        assert reply.status_code == 401
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    elif roles == ANYONE:
        assert reply.status_code in (200, 302), reply.status_code
    elif who == "anonymous":
        assert reply.status_code == 302
        assert reply.headers["Location"].startswith("/login")
    elif who in roles:
        assert reply.status_code == 200, reply.get_data(as_text=True)[:2000]
    else:
        assert reply.status_code == 403
        assert "Forbidden" in reply.get_data(as_text=True)


def test_an_unknown_page_or_isp_is_404_for_everyone(client):
    assert client.get("/no-such-page").status_code == 404
    log_in(client, "subscriber")
    assert client.get("/isps/no-such-isp").status_code == 404
    assert client.get("/isps/no-such-isp/quality.json").status_code == 404
