"""The SQLite database is its owner's alone, with its -wal and -shm and the directories
made for it, whatever the umask; a check before serving makes nothing."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from vpop.errors import StoreUnavailable
from vpop.store.engine import make_engine
from vpop.store.files import kept_secret


@pytest.fixture
def open_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_sqlite_database_and_its_directories_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "var" / "db" / "vpop.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        made = sorted(p.name for p in path.parent.iterdir())
        assert made == ["vpop.db", "vpop.db-shm", "vpop.db-wal"]
        assert {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()} == {
            name: 0o600 for name in made}
        for directory in (tmp_path / "var", path.parent):
            assert directory.stat().st_mode & 0o777 == 0o700
    finally:
        engine.dispose()


def test_without_create_a_missing_database_is_refused_and_not_made(tmp_path):
    path = tmp_path / "var" / "vpop.db"
    with pytest.raises(StoreUnavailable, match="does not exist.*vpop db upgrade"):
        make_engine(f"sqlite:///{path}", create=False)
    assert not (tmp_path / "var").exists()


def test_a_kept_secret_is_made_once_owner_only_and_read_after(tmp_path, open_umask):
    path = tmp_path / "var" / "key"
    made = kept_secret(path, lambda: "first")
    assert (made, kept_secret(path, lambda: "second")) == ("first", "first")
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert sorted(p.name for p in path.parent.iterdir()) == ["key"]  # nothing left aside


def test_a_kept_secret_taken_meanwhile_is_the_one_used(tmp_path):
    path = tmp_path / "key"

    def make():  # another process writes its secret between our read and our link
        path.write_text("theirs\n")
        return "ours"
    assert kept_secret(path, make) == "theirs"
    path.write_text("")  # an empty file holds no secret: one is made in its place
    assert kept_secret(path, lambda: "new") == "new" == path.read_text().strip()
