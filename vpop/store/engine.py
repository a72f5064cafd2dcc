"""Engines and sessions for SQLite and PostgreSQL, set up the same way everywhere.

Only the shell, the CLI and tests call these; repositories get a Session.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from vpop.errors import StoreUnavailable
from vpop.store.files import PRIVATE_FILE, private_dirs

SQLITE_BUSY_TIMEOUT_MS = 5000


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for a ``sqlite:///`` or ``postgresql://`` URL.

    SQLite runs in WAL mode so readers do not block the accounting writer, with
    ``synchronous=FULL`` because an Accounting-Response promises the record is on
    disk (NORMAL may lose the last commits on power failure in WAL mode). A SQLite
    file is made owner-only, with its directory (SQLite gives its -wal and -shm files
    the database file's mode); with ``create=False`` a missing one is StoreUnavailable.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None and not path.exists():
            if not create:
                raise StoreUnavailable(f"database {safe_url(url)} does not exist: "
                                       "create it with `vpop db upgrade`")
            try:
                private_dirs(path.parent)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
            except OSError as exc:
                raise StoreUnavailable(f"database {safe_url(url)} cannot be created: "
                                       f"{exc.strerror or exc}") from None
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # The driver vpop installs; SQLAlchemy 2.1 would otherwise pick psycopg 3.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        # pre-ping: a pooled connection may have been cut by a database restart
        # values_plus_batch: multi-row INSERTs, batched UPDATEs for the accounting ledger
        return create_engine(parsed, pool_pre_ping=True, executemany_mode="values_plus_batch")
    raise StoreUnavailable(
        f"unsupported database {safe_url(url)}: use sqlite:/// or postgresql://")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: values read in a transaction stay usable after it ends,
    # e.g. to build the subscriber snapshot and reply after the commit.
    return sessionmaker(bind=engine, expire_on_commit=False)


def check_connection(engine: Engine) -> None:
    """Open one connection and run a trivial query; StoreUnavailable if that fails."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StoreUnavailable(
            f"database {safe_url(engine.url)} is unavailable: {reason[0] if reason else exc}"
        ) from None


def release_cache(session: Session) -> None:
    """After reading a whole table: SQLite frees the page cache it filled in the
    session's connection (up to 2 MB each), which the pool keeps for the life of the
    process; PostgreSQL keeps no such cache in the client."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("PRAGMA shrink_memory"))


def safe_url(url: str | URL) -> str:
    """The URL for messages and logs: the password replaced by ***."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def _parse(url: str) -> URL:
    if url.startswith("postgres://"):  # the spelling many hosting tools hand out
        url = "postgresql://" + url[len("postgres://"):]
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreUnavailable(f"not a database URL: {safe_url(url)}") from None


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _sqlite_on_connect(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
