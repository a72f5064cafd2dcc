"""The admin's record forms and the operator's servers form: checked as `vpop import`
checks, each problem shown by its field, nothing changed on any; CSRF refusals; the
audit and rollback; the generated NAS configuration."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from conftest import csrf_token, log_in, post_form
from usage_support import add_accounting
from vpop.provisioning.stored import stored_table
from vpop.store.generation import current
from vpop.store.models import Subscriber
from vpop.store.portal_models import PortalAudit


def state(app):
    with app.extensions["vpop"].sessions() as session:
        return (current(session).generation,
                session.scalar(select(func.count()).select_from(PortalAudit)),
                session.scalar(select(func.count()).select_from(Subscriber)))


def stored(app, section, key):
    with app.extensions["vpop"].sessions() as session:
        return stored_table(session, section, key)


NEW = "/admin/records/subscriber/new"


def test_admin_creates_a_subscriber(app):
    client = app.test_client()
    log_in(client, "admin")
    generation, audited, count = state(app)
    reply = post_form(client, NEW, {"username": "zoe", "profile": "residential-10m",
                                    "password": "zoe-pass", "methods": "pap, chap",
                                    "caller_ids": "+49 30 5551234"})
    assert reply.status_code == 302
    assert state(app) == (generation + 1, audited + 1, count + 1)
    table = stored(app, "subscriber", "zoe")
    assert table["methods"] == ["pap", "chap"] and table["caller_ids"] == ["+49305551234"]


@pytest.mark.parametrize("form, field, message", [
    ({"username": "zoe", "profile": "residential-10m", "password": "p",
      "framed_ip": "10.0.0.300"}, "framed_ip", "is not an IPv4 or IPv6 address"),
    ({"username": "zoe", "profile": "residential-10m", "password": "p",
      "rate_down_kbps": "fast"}, "rate_down_kbps", "must be an integer"),
    ({"username": "zoe", "profile": "residential-10m", "methods": "pap, telepathy"},
     "methods", "unknown method 'telepathy'"),
    ({"username": "zoe", "profile": "gold", "password": "p"}, "profile", "no profile 'gold'"),
    ({"username": "alice", "profile": "residential-10m", "password": "p"}, "username",
     "exists already"),
])
def test_bad_values_are_shown_by_field_and_change_nothing(app, form, field, message):
    client = app.test_client()
    log_in(client, "admin")
    before = state(app)
    reply = post_form(client, NEW, form)
    assert reply.status_code == 422
    page = html.unescape(reply.get_data(as_text=True))
    assert f'data-field="{field}"' in page and message in page
    assert state(app) == before


def test_a_form_without_its_csrf_token_is_refused(app):
    client = app.test_client()
    log_in(client, "admin")
    before = state(app)
    reply = client.post(NEW, data={"username": "zoe", "profile": "residential-10m",
                                   "password": "zoe-pass"})
    assert reply.status_code == 400 and "Form expired" in reply.get_data(as_text=True)
    reply = client.post(NEW, data={"csrf_token": "forged", "username": "zoe",
                                   "profile": "residential-10m", "password": "zoe-pass"})
    assert reply.status_code == 400
    assert state(app) == before


def test_editing_keeps_what_the_form_does_not_change(app):
    client = app.test_client()
    log_in(client, "admin")
    before = stored(app, "subscriber", "alice")
    page = client.get("/admin/records/subscriber/alice").get_data(as_text=True)
    assert "alice-pass" not in page  # secrets are never shown
    reply = post_form(client, "/admin/records/subscriber/alice", {"rate_down_kbps": "2048"})
    assert reply.status_code == 302
    after = stored(app, "subscriber", "alice")
    assert after == {**before, "rate_down_kbps": 2048}


def test_disable(app):
    client = app.test_client()
    log_in(client, "admin")
    reply = post_form(client, "/admin/records/subscriber/bob/disable", {},
                      page="/admin/records/subscriber/bob")
    assert reply.status_code == 302
    assert stored(app, "subscriber", "bob")["enabled"] is False
    post_form(client, "/admin/records/isp/isp-tunnel/disable", {},
              page="/admin/records/isp/isp-tunnel")
    assert stored(app, "isp", "isp-tunnel")["status"] == "disabled"


def test_nas_configuration_viewed_and_downloaded(app):
    client = app.test_client()
    log_in(client, "admin")
    page = client.get("/admin/nas/localhost/config?type=mikrotik").get_data(as_text=True)
    assert "/radius" in page and "testing123" not in page
    shown = client.get("/admin/nas/localhost/config?type=mikrotik&show_secrets=1")
    assert "testing123" in shown.get_data(as_text=True)
    download = client.get("/admin/nas/localhost/config?type=mikrotik&download=1")
    assert download.headers["Content-Disposition"] == \
        'attachment; filename="localhost-mikrotik.conf"'
    assert client.get("/admin/nas/no-such/config").status_code == 404


SETTINGS = "/isp/settings"


def _server_form(client, **change):
    """The operator's servers form as the page fills it, with `change` over it."""
    html = client.get(SETTINGS).get_data(as_text=True)
    fields = {"csrf_token": csrf_token(html), "servers-count": "1", "tunnels-count": "3"}
    fields.update({"tunnels-0-address": "198.51.100.10", "tunnels-0-assignment_id": "isp-tunnel",
                   "tunnels-0-client_auth_id": "vpop-demo-lac", "tunnels-0-preference": "1",
                   "tunnels-0-medium": "IPv4", "tunnels-1-address": "198.51.100.11",
                   "tunnels-1-preference": "2", "tunnels-1-medium": "IPv4"})
    fields.update(change)
    return client.post(SETTINGS, data=fields)


@pytest.fixture
def tunnel_operator(app, demo_db_url):
    """isp-tunnel's operator (the demo's tunnel ISP has two LNS)."""
    from conftest import LOGINS
    LOGINS["tunnel_operator"] = ("staff", "isp-tunnel-operator", "isp-tunnel-operator-pass")
    client = app.test_client()
    assert log_in(client, "tunnel_operator").status_code == 302
    yield client
    del LOGINS["tunnel_operator"]


def _latest_audit(app):
    with app.extensions["vpop"].sessions() as session:
        return session.scalars(select(PortalAudit).order_by(PortalAudit.id.desc())).first()


def test_operator_changes_its_lns_then_rolls_back(app, tunnel_operator):
    client = tunnel_operator
    before = stored(app, "isp", "isp-tunnel")
    generation, audited, _ = state(app)
    reply = _server_form(client, **{"tunnels-1-preference": "5",
                                    "tunnels-2-address": "198.51.100.12",
                                    "tunnels-2-password": "new-lns-secret"})
    assert reply.status_code == 302
    after = stored(app, "isp", "isp-tunnel")
    assert [(t["address"], t["preference"], t.get("password")) for t in after["tunnels"]] == [
        ("198.51.100.10", 1, "isp-tunnel-secret"), ("198.51.100.11", 5, "isp-tunnel-secret"),
        ("198.51.100.12", 1, "new-lns-secret")]  # an LNS left without a password keeps its
    assert state(app)[:2] == (generation + 1, audited + 1)
    audit_page = client.get("/usage/audit").get_data(as_text=True)
    assert "isp.servers" in audit_page and "isp-tunnel-secret" not in audit_page
    post_form(client, f"/usage/audit/{_latest_audit(app).id}/rollback", {}, page="/usage/audit")
    assert stored(app, "isp", "isp-tunnel")["tunnels"] == before["tunnels"]
    assert _latest_audit(app).action == "isp.servers.rollback"


def test_a_rollback_that_would_lose_a_secret_is_refused(app, tunnel_operator):
    client = tunnel_operator
    _server_form(client, **{"tunnels-1-address": "", "tunnels-1-preference": "",
                            "tunnels-1-medium": ""})  # the second LNS removed
    removed = stored(app, "isp", "isp-tunnel")
    reply = post_form(client, f"/usage/audit/{_latest_audit(app).id}/rollback", {},
                      page="/usage/audit")
    page = client.get(reply.headers["Location"]).get_data(as_text=True)
    assert "Not rolled back: tunnels[2].password" in page
    assert stored(app, "isp", "isp-tunnel") == removed


def test_operator_bad_values_are_shown_by_field(app, tunnel_operator):
    before, generation = stored(app, "isp", "isp-tunnel"), state(app)
    reply = _server_form(tunnel_operator, **{"tunnels-1-preference": "-4",
                                             "tunnels-0-medium": "IPv6"})
    assert reply.status_code == 200
    page = html.unescape(reply.get_data(as_text=True))
    assert 'data-field="tunnels[1].medium"' in page
    assert "is IPv6, but the address 198.51.100.10 is IPv4" in page
    assert stored(app, "isp", "isp-tunnel") == before and state(app) == generation


def test_admin_disconnect_shows_a_timeout_in_words(app, demo_db_url):
    """The demo NAS's dynamic-authorization port answers nothing: a clear timeout."""
    found = add_accounting(demo_db_url)
    client = app.test_client()
    log_in(client, "admin")
    ident = found["isp-local"]["open"]
    reply = post_form(client, f"/usage/sessions/{ident}/disconnect", {"reason": "test"},
                      page=f"/usage/sessions/{ident}")
    page = reply.get_data(as_text=True)
    assert reply.status_code == 200 and 'id="dynauth-result"' in page
    assert "timeout: no answer from" in page or "error:" in page
