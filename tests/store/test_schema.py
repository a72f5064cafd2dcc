import datetime as dt

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import StatementError

from vpop.errors import StoreUnavailable
from vpop.store import schema
from vpop.store.engine import check_connection, make_engine, make_sessionmaker, safe_url
from vpop.store.accounting_models import RadAcct
from vpop.store.models import Base, Profile, Subscriber, SubscriberCallerId


def table_names(url):
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_exactly_the_models_tables(blank_db_url):
    assert schema.current_revision(blank_db_url) is None
    schema.upgrade(blank_db_url)
    assert schema.current_revision(blank_db_url) == schema.head_revision()
    assert table_names(blank_db_url) == set(Base.metadata.tables) | {"alembic_version"}
    # What `alembic check` does: autogenerate against the migrated database finds nothing.
    assert schema.model_drift(blank_db_url) == []


def test_upgrade_twice_changes_nothing(blank_db_url):
    schema.upgrade(blank_db_url)
    schema.upgrade(blank_db_url)
    assert schema.current_revision(blank_db_url) == schema.head_revision()


def test_downgrade_to_base_and_up_again(blank_db_url):
    schema.upgrade(blank_db_url)
    schema.downgrade(blank_db_url, "base")
    assert schema.current_revision(blank_db_url) is None
    assert table_names(blank_db_url) == {"alembic_version"}
    schema.upgrade(blank_db_url)
    assert schema.model_drift(blank_db_url) == []


def test_drift_is_reported(blank_db_url):
    schema.upgrade(blank_db_url)
    engine = make_engine(blank_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    finally:
        engine.dispose()
    assert [d[0] for d in schema.model_drift(blank_db_url)] == ["remove_table"]


def test_timestamps_come_back_utc_aware(session):
    """SQLite keeps no zone: without care it would hand back naive datetimes."""
    start = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    session.add(RadAcct(unique_id="u1", acct_session_id="s1", nas_address="192.0.2.1",
                        start_time=start))
    session.commit()
    session.expire_all()
    stored = session.scalars(select(RadAcct.start_time)).one()
    assert stored == start
    assert stored.utcoffset() == dt.timedelta(0)


def test_naive_timestamps_are_refused(session):
    session.add(RadAcct(unique_id="u1", acct_session_id="s1", nas_address="192.0.2.1",
                        start_time=dt.datetime(2030, 5, 1, 12, 0)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_deleting_a_subscriber_deletes_its_caller_ids(session):
    subscriber = Subscriber(username="x", profile=Profile(name="p"),
                            caller_ids=[SubscriberCallerId(number="49301")])
    session.add(subscriber)
    session.commit()
    # A bulk delete bypasses the ORM cascade: this is the database's ON DELETE CASCADE
    # (on SQLite only with PRAGMA foreign_keys=ON).
    session.execute(Subscriber.__table__.delete())
    assert session.scalars(select(SubscriberCallerId)).all() == []


# --- SQLite specifics ------------------------------------------------------------------

def test_sqlite_engine_settings(tmp_path):
    path = tmp_path / "a" / "b" / "vpop.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL: accounting records survive power loss
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 5000
        assert path.exists()
    finally:
        engine.dispose()


def _subscriber_with_caller_id(url):
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.add(Subscriber(username="x", profile=Profile(name="p"),
                                   caller_ids=[SubscriberCallerId(number="49301")]))
    finally:
        engine.dispose()


def _caller_ids(url):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT number FROM subscriber_caller_id").all()
    finally:
        engine.dispose()


def _rebuild_subscriber_table(connection):
    operations = Operations(MigrationContext.configure(connection))
    with operations.batch_alter_table("subscriber", recreate="always"):
        pass


def test_sqlite_batch_rebuild_keeps_child_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'vpop.db'}"
    schema.upgrade(url)
    _subscriber_with_caller_id(url)
    with schema._migration_connection(url) as connection:
        _rebuild_subscriber_table(connection)
    assert _caller_ids(url) == [("49301",)]


def test_sqlite_batch_rebuild_with_foreign_keys_on_would_lose_them(tmp_path):
    """Why migrations turn foreign keys off: the rebuild's DROP TABLE cascades."""
    url = f"sqlite:///{tmp_path / 'vpop.db'}"
    schema.upgrade(url)
    _subscriber_with_caller_id(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _rebuild_subscriber_table(connection)
    finally:
        engine.dispose()
    assert _caller_ids(url) == []


# --- unreachable databases ------------------------------------------------------------

UNREACHABLE = "postgresql://vpop:s3cret@127.0.0.1:1/vpop"


def test_check_connection_names_the_database_but_not_the_password():
    engine = make_engine(UNREACHABLE)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            check_connection(engine)
    finally:
        engine.dispose()
    message = str(caught.value)
    assert "postgresql+psycopg2://vpop:***@127.0.0.1:1/vpop" in message
    assert "s3cret" not in message


def test_migrations_on_an_unreachable_database():
    with pytest.raises(StoreUnavailable, match="127.0.0.1:1") as caught:
        schema.upgrade(UNREACHABLE)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StoreUnavailable):
        schema.current_revision(UNREACHABLE)


def test_check_connection_passes_on_a_reachable_database(engine):
    assert check_connection(engine) is None  # no StoreUnavailable
    with engine.connect() as connection:  # and the engine stays usable
        assert connection.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:pw@db.example/vpop", "postgresql://u:***@db.example/vpop"),
    ("sqlite:////var/lib/vpop/vpop.db", "sqlite:////var/lib/vpop/vpop.db"),
    ("::not a url::", "<unparsable database URL>"),
])
def test_safe_url(url, shown):
    assert safe_url(url) == shown


def test_unsupported_database():
    with pytest.raises(StoreUnavailable, match="unsupported database"):
        make_engine("mysql://u:pw@db.example/vpop")
