"""Schema migrations through Alembic's API: the Config is built here, no alembic.ini.

Every schema change ships as a migration in vpop/store/migrations/versions. To
write one, change the models, then against a database at head run
``new_revision(url, "what changed")`` and review the generated file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from vpop.errors import StoreUnavailable
from vpop.store.engine import make_engine, safe_url
from vpop.store.models import Base

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant will do; it only has to be the same for every vpop process.
_PG_MIGRATION_LOCK = 0x7670_6F70  # "vpop"


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision``, creating the tables on an empty one."""
    with _migration_connection(url) as connection:
        command.upgrade(_config(connection=connection), revision)


def downgrade(url: str, revision: str) -> None:
    with _migration_connection(url) as connection:
        command.downgrade(_config(connection=connection), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at; None if it was never migrated."""
    engine = make_engine(url)
    try:
        with _connect(engine) as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision this version of vpop ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def model_drift(url: str) -> list:
    """What autogenerate would still emit against this database (``alembic check``):
    an empty list when the migrations and the models agree."""
    engine = make_engine(url)
    try:
        with _connect(engine) as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "target_metadata": Base.metadata})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def new_revision(url: str, message: str, *, rev_id: str | None = None) -> Path:
    """Autogenerate a migration from the models' difference to the database at ``url``."""
    with _migration_connection(url) as connection:
        script = command.revision(_config(connection=connection), message=message,
                                  autogenerate=True, rev_id=rev_id)
    return Path(script.path)


def _config(**attributes) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes.update(attributes)
    return config


@contextmanager
def _connect(engine) -> Iterator[Connection]:
    try:
        connection = engine.connect()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()
        raise StoreUnavailable(f"database {safe_url(engine.url)} is unavailable: "
                               f"{reason[0] if reason else exc}") from None
    with connection:
        yield connection


@contextmanager
def _migration_connection(url: str) -> Iterator[Connection]:
    """One connection, one transaction for the whole run: all of it or nothing."""
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with _connect(engine) as connection:
            if sqlite:
                # Batch mode rebuilds tables (copy, drop, rename); with foreign keys on,
                # the DROP would cascade into the child tables. SQLite's own procedure
                # for schema changes turns them off and checks them at the end.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
                # Let us issue BEGIN ourselves: the driver would leave DDL outside the
                # transaction, so a failed migration would be half applied.
                connection.connection.dbapi_connection.isolation_level = None
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    # Two processes starting at once must not both migrate.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": _PG_MIGRATION_LOCK})
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StoreUnavailable(
                            f"migration left {len(broken)} rows with dangling foreign keys "
                            f"(first: table {broken[0][0]}, row {broken[0][1]}); rolled back")
    finally:
        # The connection was altered for the migration: never return it to a pool.
        engine.dispose()
