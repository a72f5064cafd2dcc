"""Shared fixtures. Every test that uses ``db_url`` (or ``engine``/``session``) runs twice,
on SQLite and on PostgreSQL, so the store behaves the same on both.

PostgreSQL: for each test session a database ``vpop_test_<pid>`` is created through
the admin connection in VPOP_TEST_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped at the end. If that
server cannot be reached, the postgresql tests FAIL with the reason: a store test
that silently skipped would hide a broken database setup. On a machine without
PostgreSQL, set VPOP_TEST_POSTGRES=off to deselect them instead.
"""

from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from vpop.store import schema
from vpop.store.engine import make_engine, make_sessionmaker, safe_url
from vpop.store.models import Base

BACKENDS = ["sqlite", "postgresql"]
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("VPOP_TEST_POSTGRES", "").lower() != "off":
        return
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses_postgres = any(params.get(name) == "postgresql"
                            for name in ("db_url", "blank_db_url"))
        (drop if uses_postgres else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class PostgresServer:
    """Creates the session's test databases on first use and drops them at the end."""

    def __init__(self, admin_url: str):
        self.admin_url = make_url(admin_url)
        self._admin = None
        self._created: list[str] = []
        self._failure: str | None = None  # fail every later test fast, with the same reason
        self.migrated = False

    def database(self, suffix: str = "") -> str:
        name = f"vpop_test_{os.getpid()}{suffix}"
        if name not in self._created:
            admin = self._connect()
            with admin.connect() as connection:
                # A leftover from a crashed run with the same pid.
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            self._created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _connect(self):
        if self._admin is None and self._failure is None:
            engine = None
            try:
                engine = make_engine(self.admin_url.render_as_string(hide_password=False))
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                self._admin = engine.execution_options(isolation_level="AUTOCOMMIT")
            except Exception as exc:
                if engine is not None:
                    engine.dispose()
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                self._failure = (
                    f"PostgreSQL at {safe_url(self.admin_url)} is unreachable ({reason}). "
                    "Start it, point VPOP_TEST_POSTGRES_URL at an admin connection, or set "
                    "VPOP_TEST_POSTGRES=off to run the store tests on SQLite only.")
        if self._failure is not None:
            pytest.fail(self._failure, pytrace=False)
        return self._admin

    def close(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            for name in self._created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.engine.dispose()


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer(os.environ.get("VPOP_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL))
    yield server
    server.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """One migrated SQLite file, copied for each test: faster than migrating each time."""
    path = tmp_path_factory.mktemp("template") / "vpop.db"
    schema.upgrade(f"sqlite:///{path}")  # upgrade disposes its engine: the WAL is folded in
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """The URL of an empty database at the newest schema revision."""
    if request.param == "sqlite":
        path = tmp_path / "vpop.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.database()
    if not server.migrated:
        schema.upgrade(url)
        server.migrated = True
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def blank_db_url(request, tmp_path):
    """The URL of a database with no tables at all, for migration tests."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'vpop.db'}"  # the directory, too
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.database("_blank")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with make_sessionmaker(engine)() as session:
        yield session
        session.rollback()
