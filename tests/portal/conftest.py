"""The portal over the demo data: an app per test on a copy of one demo database
(SQLite; `portal_db_url` also gives PostgreSQL), and logins for each kind of user."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil

import pytest

from vpop.config import IdentificationSettings, PortalSettings, Settings
from vpop.portal.accounts import load_demo_accounts
from vpop.portal.app import create_app
from vpop.provisioning import import_file
from vpop.store import demo, schema
from vpop.store.engine import make_engine, make_sessionmaker

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.timezone.utc)
SECRET = "portal-test-secret-key-0123456789"
# The demo's logins (README.md, "Demo accounts").
LOGINS = {
    "admin": ("staff", "admin", "admin-pass"),
    "operator": ("staff", "isp-local-operator", "isp-local-operator-pass"),
    "other_operator": ("staff", "isp-proxy-operator", "isp-proxy-operator-pass"),
    "subscriber": ("subscriber", "alice", "alice-pass"),
    "pap_only_subscriber": ("subscriber", "bob", "bob-pass"),
}


def load_demo(url: str) -> None:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            import_file(session, demo.demo_plan_path(),
                        identification=IdentificationSettings(country_code="49"))
            load_demo_accounts(session, NOW)
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("portal-demo") / "vpop.db"
    url = f"sqlite:///{path}"
    schema.upgrade(url)
    load_demo(url)
    return path


@pytest.fixture
def demo_db_url(demo_template, tmp_path):
    """A SQLite copy of the demo database, portal accounts included."""
    path = tmp_path / "vpop.db"
    shutil.copyfile(demo_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def portal_db_url(db_url):
    """The demo on SQLite and on PostgreSQL (slower: the demo is loaded each time)."""
    load_demo(db_url)
    return db_url


def portal_settings(url: str, **portal) -> Settings:
    return Settings(database=dataclasses.replace(Settings().database, url=url),
                    portal=PortalSettings(secret_key=SECRET, **portal))


@pytest.fixture
def make_app():
    def make(url: str, *, portal: dict | None = None, **kwargs):
        app = create_app(portal_settings(url, **(portal or {})), clock=lambda: NOW, **kwargs)
        app.config["TESTING"] = True
        return app
    return make


@pytest.fixture
def app(make_app, demo_db_url):
    return make_app(demo_db_url)


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client, who: str, *, password: str | None = None):
    """Log in as one of LOGINS (or with another password); returns the response."""
    kind, name, right = LOGINS[who]
    page = client.get("/login")
    return client.post("/login", data={
        "csrf_token": csrf_token(page.get_data(as_text=True)), "kind": kind, "name": name,
        "password": right if password is None else password})


def post_form(client, path: str, data: dict, *, page: str | None = None):
    """POST a form with the CSRF token of `page` (default: the same path)."""
    html = client.get(page or path).get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf_token(html), **data})
