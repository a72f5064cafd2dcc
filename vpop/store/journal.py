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
Each worker appends to a file of its own (`worker_journal`), so no worker's commit
waits for another's. Every entry carries the wall-clock time it was stored at (ns),
and the ledger merges the files by it (see `causal_cut`): accounting is spread over
the workers by Request Authenticator, so a session's Start and Stop usually reach two.
Write transactions take an flock on `<file>.lock` first, which the worker and the
ledger (deleting applied entries) share: a waiting writer is woken the moment the lock
is free, where SQLite's own busy handler would sleep 1, 2, 5, 10 ... ms. The workers
leave WAL checkpoints to the ledger, which also deletes applied entries in small
chunks, so it never holds a writer up for long. Ids come from AUTOINCREMENT, so they
are never reused after the applied rows are deleted; each file has its own `stream`
name (and a file that is replaced a new one), and the ledger keeps its progress per
stream.
"""

from __future__ import annotations

import fcntl
import functools
import glob
import os
import pickle
import re
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import fields
from typing import Iterable

from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing
from vpop.errors import VpopError

FORMAT = 1  # of an entry's body; a journal written by another format is refused
_FIELDS = tuple(f.name for f in fields(AcctRecord) if f.name != "routing")
_SCHEMA = (
    # stamp: when the entry was stored (ns since the epoch), the order across files
    "CREATE TABLE IF NOT EXISTS entry (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " body BLOB NOT NULL, stamp INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Entries the ledger could not apply, kept for an operator to look at.
    "CREATE TABLE IF NOT EXISTS set_aside (id INTEGER PRIMARY KEY, body BLOB NOT NULL,"
    " reason TEXT NOT NULL)",
)


class JournalError(VpopError):
    """The journal file cannot be used (not writable, another format, not a journal)."""


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


def worker_journal(path: str, index: int) -> str:
    """The journal file of worker `index`: the configured file for worker 0, beside it
    `<stem>-<index><suffix>` for the others."""
    if index == 0:
        return path
    stem, suffix = os.path.splitext(path)
    return f"{stem}-{index}{suffix}"


def journal_files(path: str, workers: int = 1) -> list[str]:
    """The journal files of `workers` workers, and any others beside them that an
    earlier run with more workers left (their entries are still to be applied)."""
    stem, suffix = os.path.splitext(path)
    pattern = re.compile(re.escape(os.path.basename(stem)) + r"-([1-9][0-9]*)"
                         + re.escape(suffix) + "$")
    beside = glob.glob(glob.escape(stem) + "-*" + glob.escape(suffix))
    found = {int(m.group(1)) for name in beside if (m := pattern.match(os.path.basename(name)))}
    return [worker_journal(path, index) for index in sorted(found | set(range(workers)))]


Row = tuple  # (id, stamp, body) of an entry
# A row stamped this long (ns) after `now` was stored before the wall clock was set
# back: applied at once rather than held until the clock catches up with it.
CLOCK_STEP = 2_000_000_000


def causal_cut(reads: list[list[Row]], limit: int, now: int) -> list[list[Row]]:
    """Of what was read from each file (at most `limit` rows each, after `now` was
    taken), the rows the ledger may apply now, a prefix of each file's.

    Only rows stamped before `now`: a NAS sends a session's next record only once
    the previous is answered, so whatever a row stored before `now` follows was
    committed before it, so before any file was read, and is among the rows read.
    And where a file had more rows than `limit`, no row stamped after the last read
    from it: those may follow its unread ones. Rows stamped more than CLOCK_STEP
    after `now` go too (the wall clock was set back since they were stored).
    """
    horizon = now
    for rows in reads:
        if len(rows) >= limit:
            horizon = min(horizon, rows[-1][1] + 1)
    cut = []
    for rows in reads:
        n = 0
        while n < len(rows) and (rows[n][1] < horizon or rows[n][1] > now + CLOCK_STEP):
            n += 1
        cut.append(rows[:n])
    return cut


# The last id AUTOINCREMENT gave out, whether or not its entry has been deleted since.
_LAST_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'entry'"


def journal_head(path: str) -> tuple[str, int] | None:
    """(stream name, the last entry id given out) of a journal file, read only; None
    when there is none yet (for tools and tests that wait for the ledger)."""
    if not os.path.exists(path):
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        stream = db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        last = db.execute(_LAST_ID).fetchone()
    return (stream[0], last[0] if last else 0) if stream else None


WAL_LIMIT = 64 << 20  # bytes the WAL file is cut back to once checkpointed
_ROWS = 250  # rows per INSERT statement


@functools.lru_cache(maxsize=None)
def _insert(rows: int) -> str:
    return "INSERT INTO entry (body, stamp) VALUES " + ", ".join(["(?, ?)"] * rows)


class Journal:
    """One connection to a journal file; use it from one thread. `checkpoints`: whether
    this connection's commits may run WAL checkpoints (the workers' do not)."""

    def __init__(self, path: str, *, checkpoints: bool = True):
        self.path = path
        self.db = None
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"{path}: cannot be the accounting journal: {exc.strerror}"
                               ) from None
        try:
            # isolation_level None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                      timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            if not checkpoints:
                self.db.execute("PRAGMA wal_autocheckpoint=0")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            with self._writing():
                for statement in _SCHEMA:
                    self.db.execute(statement)
                columns = {row[1] for row in self.db.execute("PRAGMA table_info(entry)")}
                if "stamp" not in columns:  # a journal from before stamps: its entries first
                    self.db.execute("ALTER TABLE entry ADD COLUMN stamp INTEGER NOT NULL "
                                    "DEFAULT 0")
                row = self.db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
                if row is None:
                    row = (str(uuid.uuid4()),)
                    self.db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", row)
            self.stream = row[0]
        except sqlite3.Error as exc:
            self.close()
            raise JournalError(f"{path}: not usable as the accounting journal: {exc}") from None

    @contextmanager
    def _writing(self):
        """One write transaction, after the file's flock (released on commit or error)."""
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def append(self, bodies: list[bytes]) -> int:
        """Store entries in one durable transaction; the id of the last (ids are consecutive)."""
        stamp = time.time_ns()  # after every record in the batch was received
        with self._writing() as db:
            # Multi-row INSERTs: one step of SQLite per 250 rows, where executemany takes
            # one per row (and the GIL back after each, from the event loop's thread).
            for start in range(0, len(bodies), _ROWS):
                chunk = bodies[start:start + _ROWS]
                db.execute(_insert(len(chunk)), [v for body in chunk for v in (body, stamp)])
            return db.execute("SELECT last_insert_rowid()").fetchone()[0]

    def read_after(self, applied: int, limit: int) -> list[Row]:
        """(id, stamp, body) of the next `limit` entries after `applied`."""
        return self.db.execute("SELECT id, stamp, body FROM entry WHERE id > ? ORDER BY id "
                               "LIMIT ?", (applied, limit)).fetchall()

    def last_id(self) -> int:
        """The id of the last entry given out (0 before the first)."""
        row = self.db.execute(_LAST_ID).fetchone()
        return row[0] if row else 0

    def backlog(self, applied: int) -> int:
        return self.db.execute("SELECT count(*) FROM entry WHERE id > ?", (applied,)).fetchone()[0]

    def forget_through(self, applied: int, *, limit: int | None = None) -> int:
        """Delete entries the ledger has applied (and committed that it has), at most
        `limit` of the oldest; how many."""
        with self._writing() as db:
            if limit is None:
                return db.execute("DELETE FROM entry WHERE id <= ?", (applied,)).rowcount
            return db.execute("DELETE FROM entry WHERE id IN (SELECT id FROM entry WHERE "
                              "id <= ? ORDER BY id LIMIT ?)", (applied, limit)).rowcount

    def checkpoint(self) -> None:
        """Move the WAL into the file without waiting for the writers (PASSIVE)."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def set_aside(self, entries: list[tuple[int, bytes, str]]) -> None:
        with self._writing() as db:
            db.executemany("INSERT OR REPLACE INTO set_aside (id, body, reason) VALUES (?, ?, ?)",
                           entries)

    def entries(self) -> Iterable[tuple[int, bytes]]:
        return self.db.execute("SELECT id, body FROM entry ORDER BY id")

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        os.close(self._lock)
