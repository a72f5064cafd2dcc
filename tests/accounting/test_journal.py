"""The accounting journal file: entries, ids, the stream's name, a file that is not one."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time

import pytest

from acct_support import NAS, T0, rec
from vpop.accounting.leases import LeaseBook, LeaseIndex, LeaseTerms
from vpop.server.journal import JournalWriter
from vpop.server.writer import Ack
from vpop.store.journal import (CLOCK_STEP, Journal, JournalError, causal_cut, decode_entry,
                                encode_entry, journal_files, journal_head, worker_journal)

FORWARD = {"isp": "isp-a", "session_key": "k", "attrs": b"\x01\x05abc", "delay": 3,
           "received": 1.5}


def test_an_entry_keeps_every_field_of_the_record_and_the_forward():
    record = rec("stop", "s9", T0 + 60, session_time=60, octets_in=(1 << 40) + 5, octets_out=7,
                 isp="isp-a", cause="Idle-Timeout", flags=("bad-delay",), delay=4)
    for forward in (None, FORWARD):
        assert decode_entry(encode_entry(record, forward)) == (record, forward)


def test_an_entry_of_another_format_is_refused():
    body = pickle.dumps((99, (), (None, "local", ""), None))
    with pytest.raises(JournalError, match="format 99"):
        decode_entry(body)


def test_ids_are_consecutive_per_append_and_never_reused(journal):
    bodies = [encode_entry(rec("start", f"s{n}"), None) for n in range(5)]
    assert journal.append(bodies[:3]) == 3
    assert journal.append(bodies[3:]) == 5
    assert [entry for entry, _, _ in journal.read_after(1, 10)] == [2, 3, 4, 5]
    assert journal.backlog(2) == 3
    journal.forget_through(5)  # everything applied and deleted ...
    assert journal.read_after(0, 10) == []
    assert journal.append(bodies[:1]) == 6  # ... and the next id is still new


def test_the_stream_name_stays_with_its_file(tmp_path):
    first = Journal(str(tmp_path / "a.db"))
    name = first.stream
    first.close()
    again = Journal(str(tmp_path / "a.db"))
    other = Journal(str(tmp_path / "b.db"))
    try:
        assert again.stream == name
        assert other.stream != name  # a replaced journal starts from its first entry
    finally:
        again.close()
        other.close()


def test_a_file_that_is_not_a_journal_is_named(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    with pytest.raises(JournalError, match="notes.txt"):
        Journal(str(path))


def test_a_commit_is_durable_and_other_connections_see_it(journal):
    journal.append([encode_entry(rec("start"), None)])
    mode, = sqlite3.connect(journal.path).execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    assert journal.db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with sqlite3.connect(journal.path) as other:
        assert other.execute("SELECT count(*) FROM entry").fetchone() == (1,)


def test_the_journal_writer_answers_after_the_append_and_holds_lease_places(journal):
    lease = LeaseTerms(id=7, name="l", isp="isp-a", nas=frozenset({NAS}), sessions=5,
                       policy="reject", starts=T0 - 10)
    book = LeaseBook(LeaseIndex([lease]))
    answers = []
    finished = threading.Event()

    def notify(callback):  # the event loop's part, here on the writer's thread
        callback()
        if len(answers) == 3:
            finished.set()
    writer = JournalWriter(journal, notify, max_batch=10, leases=book)
    for record in (rec("start", "s1", isp="isp-a"), rec("start", "s2"),  # s2: local
                   rec("interim", "s1", T0 + 300, isp="isp-a")):
        writer.submit(record, answers.append)
    writer.start()
    assert finished.wait(30)
    writer.stop()
    assert answers == [True, True, True]
    assert [decode_entry(body)[0].session_id for _, _, body in journal.read_after(0, 10)] == [
        "s1", "s2", "s1"]
    assert book.in_use(7, T0) == 1  # s1's Start, until the ledger has applied entry 1
    book.applied(1)
    assert book.in_use(7, T0) == 0
    assert writer.snapshot() == {"journaled": 3}


def test_the_answer_leaves_from_the_writer_s_thread_once_durable_before_the_bookkeeping(
        journal, tmp_path):
    events = []
    finished = threading.Event()
    other = Journal(journal.path)  # another connection: sees only what is committed

    def send():
        committed = [decode_entry(body)[0].session_id for _, _, body in other.read_after(0, 10)]
        events.append(("send", threading.current_thread().name, committed))

    def done(ok):
        events.append(("done", threading.current_thread().name, ok))
        finished.set()

    def notify(callback):  # the event loop, here a thread of its own
        threading.Thread(target=callback, name="loop").start()
    writer = JournalWriter(journal, notify, max_batch=10)
    writer.submit(rec("start", "s1"), Ack(send, done))
    writer.start()
    assert finished.wait(30)
    writer.stop()
    other.close()
    assert events == [("send", "accounting-journal", ["s1"]), ("done", "loop", True)]


def test_two_writers_share_one_journal_in_commit_order(tmp_path):
    path = str(tmp_path / "shared.db")
    assert journal_head(path) is None
    first, second = Journal(path, checkpoints=False), Journal(path, checkpoints=False)
    try:
        assert first.stream == second.stream
        assert first.append([b"a", b"b"]) == 2
        assert second.append([b"c"]) == 3
        assert first.append([b"d"]) == 4
        assert [body for _, _, body in second.read_after(0, 10)] == [b"a", b"b", b"c", b"d"]
        assert journal_head(path) == (first.stream, 4)
        assert first.forget_through(4, limit=3) == 3  # the oldest three
        assert [entry for entry, _, _ in first.read_after(0, 10)] == [4]
    finally:
        first.close()
        second.close()


def test_each_worker_has_a_journal_file_beside_the_configured_one(tmp_path):
    base = str(tmp_path / "acct.db")
    assert worker_journal(base, 0) == base
    assert worker_journal(base, 2) == str(tmp_path / "acct-2.db")
    assert journal_files(base, 2) == [base, str(tmp_path / "acct-1.db")]
    # Files an earlier run with more workers left are still the ledger's to apply.
    for name in ("acct-3.db", "acct-x.db", "acct-03.db", "acct-4.db-wal", "other-5.db"):
        (tmp_path / name).write_bytes(b"")
    assert journal_files(base, 2) == [base, str(tmp_path / "acct-1.db"),
                                      str(tmp_path / "acct-3.db")]
    assert journal_files(base) == [base, str(tmp_path / "acct-3.db")]


def test_entries_are_stamped_with_the_time_they_were_stored(journal):
    before = time.time_ns()
    journal.append([b"a", b"b"])
    after = time.time_ns()
    (_, first, _), (_, second, _) = journal.read_after(0, 10)
    assert before <= first == second <= after  # one batch, one stamp


def test_a_journal_from_before_stamps_gets_the_column_and_keeps_its_entries(tmp_path):
    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entry (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL)")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('stream', 'old-stream')")
        db.execute("INSERT INTO entry (body) VALUES (x'01'), (x'02')")
    journal = Journal(path)
    try:
        journal.append([b"\x03"])
        rows = journal.read_after(0, 10)
        assert journal.stream == "old-stream"
        assert [(entry, body) for entry, _, body in rows] == [(1, b"\x01"), (2, b"\x02"),
                                                             (3, b"\x03")]
        assert [stamp for _, stamp, _ in rows][:2] == [0, 0]  # before anything stamped
    finally:
        journal.close()


def rows(*stamps, first=1):
    return [(first + n, stamp, b"") for n, stamp in enumerate(stamps)]


@pytest.mark.parametrize("reads,limit,now,expected", [
    # Nothing read past its limit: every row stamped before the read began.
    ([rows(10, 20), rows(15)], 5, 100, [2, 1]),
    # Rows stamped at or after `now` may have been overtaken by rows not yet committed.
    ([rows(10, 100, 120), rows(99, 101)], 5, 100, [1, 1]),
    # A file read to its limit: nothing stamped after its last row read, from any file.
    ([rows(10, 20, 30), rows(15, 25, 35, 45)], 3, 100, [3, 2]),
    ([rows(10, 30, 30), rows(15, 30, 31)], 3, 100, [3, 2]),  # a batch shares its stamp
    ([rows(50, 60), rows(10, 20)], 2, 100, [0, 2]),  # the lagging file goes first
    ([rows(), rows()], 5, 100, [0, 0]),
    # Stamped long after `now`: before the clock was set back; not held for hours.
    ([rows(10, 100 + CLOCK_STEP + 1, 50)], 5, 100, [3]),
    ([rows(10, 100 + CLOCK_STEP)], 5, 100, [1]),
])
def test_the_cut_applies_only_what_no_unread_entry_can_precede(reads, limit, now, expected):
    cut = causal_cut(reads, limit, now)
    assert [len(prefix) for prefix in cut] == expected
    assert all(prefix == read[:len(prefix)] for prefix, read in zip(cut, reads))
