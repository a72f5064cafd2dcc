"""The accounting journal: acknowledged records, on disk, before the ledger applies them.

An Accounting-Response promises that the record is stored (RFC 2866 §4.1). Applying
a record to sessions, history, rollups, gauges and events takes several times longer
than storing it, so vpop stores it first here — one row per record, a group of rows
per fsync'ed transaction — acknowledges it, and lets a separate process (the ledger,
vpop/server/ledger.py) apply the journal to the database in large batches. The
ledger commits how far it got (`acct_journal.applied_id`) in the same transaction as
what it applied, so every journaled record is applied exactly once, across crashes.

The journal is a SQLite file of its own (WAL, synchronous=FULL), beside whatever
database holds the accounting: its writers never wait for the ledger's transactions.
Each worker process appends to a file of its own (`worker_journal`), so workers never
wait for each other either; the ledger applies every file of the family
(`journal_files`). A file's writer also deletes what the ledger has applied, in its
own transactions, and leaves WAL checkpoints to the ledger: nothing the ledger does
holds up an acknowledgement.
Ids come from AUTOINCREMENT, so they are never reused after the applied rows are
deleted; a journal file that is replaced gets a new `stream` name, and the ledger
starts that stream from the beginning.
"""

from __future__ import annotations

import glob
import os
import pickle
import re
import sqlite3
import uuid
from dataclasses import fields
from typing import Iterable

from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing

FORMAT = 1  # of an entry's body; a journal written by another format is refused
_FIELDS = tuple(f.name for f in fields(AcctRecord) if f.name != "routing")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Entries the ledger could not apply, kept for an operator to look at.
    "CREATE TABLE IF NOT EXISTS set_aside (id INTEGER PRIMARY KEY, body BLOB NOT NULL,"
    " reason TEXT NOT NULL)",
)


class JournalError(Exception):
    """The journal file cannot be used (another format, not a journal)."""


def encode_entry(record: AcctRecord, forward: dict | None) -> bytes:
    """One record and what it owes a proxy-mode ISP, as plain values (no classes pickled)."""
    routing = record.routing
    values = tuple(getattr(record, name) for name in _FIELDS)
    return pickle.dumps((FORMAT, values, (routing.isp, routing.mode, routing.reason), forward),
                        protocol=5)


def decode_entry(body: bytes) -> tuple[AcctRecord, dict | None]:
    version, values, routing, forward = pickle.loads(body)
    if version != FORMAT:
        raise JournalError(f"journal entry of format {version}, this vpop reads {FORMAT}")
    record = AcctRecord(**dict(zip(_FIELDS, values)),
                        routing=Routing(isp=routing[0], mode=routing[1], reason=routing[2]))
    return record, forward


def worker_journal(base: str, index: int) -> str:
    """Worker `index`'s journal file: the configured path for worker 0, numbered
    siblings (accounting-journal-1.db, ...) for the others."""
    if index == 0:
        return base
    stem, suffix = os.path.splitext(base)
    return f"{stem}-{index}{suffix}"


def journal_files(base: str) -> list[str]:
    """Every journal file of the family that exists, whatever the number of workers now."""
    stem, suffix = os.path.splitext(base)
    numbered = re.compile(re.escape(stem) + r"-\d+" + re.escape(suffix) + "$")
    found = [p for p in glob.glob(glob.escape(stem) + "-*" + glob.escape(suffix))
             if numbered.match(p)]
    return ([base] if os.path.exists(base) else []) + sorted(found)


def journal_heads(base: str) -> dict[str, int]:
    """Stream name -> the last entry id given out, for every journal file of the family
    (read only; for tools and tests that wait for the ledger)."""
    heads = {}
    for path in journal_files(base):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            stream = db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
            last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entry'").fetchone()
        if stream:
            heads[stream[0]] = last[0] if last else 0
    return heads


class Journal:
    """One connection to a journal file; use it from one thread. `checkpoints`: whether
    this connection's commits may run WAL checkpoints (the workers' do not)."""

    def __init__(self, path: str, *, checkpoints: bool = True):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        # isolation_level None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                  timeout=30.0)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            if not checkpoints:
                self.db.execute("PRAGMA wal_autocheckpoint=0")
            for statement in _SCHEMA:
                self.db.execute(statement)
            self.stream = self._stream()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise JournalError(f"{path}: not usable as the accounting journal: {exc}") from None

    def _stream(self) -> str:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
            if row is None:
                row = (str(uuid.uuid4()),)
                self.db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", row)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return row[0]

    def append(self, bodies: list[bytes], *, forget_through: int = 0) -> int:
        """Store entries in one durable transaction; the id of the last (ids are consecutive).
        `forget_through`: also delete the entries the ledger has applied up to there (the
        file's one writer does it, so the ledger never holds the writer up)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if forget_through:
                db.execute("DELETE FROM entry WHERE id <= ?", (forget_through,))
            db.executemany("INSERT INTO entry (body) VALUES (?)", [(b,) for b in bodies])
            last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return last

    def read_after(self, applied: int, limit: int) -> list[tuple[int, bytes]]:
        return self.db.execute("SELECT id, body FROM entry WHERE id > ? ORDER BY id LIMIT ?",
                               (applied, limit)).fetchall()

    def backlog(self, applied: int) -> int:
        return self.db.execute("SELECT count(*) FROM entry WHERE id > ?", (applied,)).fetchone()[0]

    def forget_through(self, applied: int) -> None:
        """Delete entries the ledger has applied (and committed that it has)."""
        self.db.execute("DELETE FROM entry WHERE id <= ?", (applied,))

    def checkpoint(self) -> None:
        """Move the WAL into the file without waiting for the writer (PASSIVE)."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def set_aside(self, entries: list[tuple[int, bytes, str]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT OR REPLACE INTO set_aside (id, body, reason) VALUES (?, ?, ?)",
                            entries)
        self.db.execute("COMMIT")

    def entries(self) -> Iterable[tuple[int, bytes]]:
        return self.db.execute("SELECT id, body FROM entry ORDER BY id")

    def close(self) -> None:
        self.db.close()
