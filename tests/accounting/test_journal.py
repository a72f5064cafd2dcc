"""The accounting journal file: entries, ids, the stream's name, a file that is not one."""

from __future__ import annotations

import pickle
import sqlite3
import threading

import pytest

from acct_support import NAS, T0, rec
from vpop.accounting.leases import LeaseBook, LeaseIndex, LeaseTerms
from vpop.server.journal import JournalWriter
from vpop.server.writer import Ack
from vpop.store.journal import (Journal, JournalError, decode_entry, encode_entry,
                                journal_head)

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
    assert [entry for entry, _ in journal.read_after(1, 10)] == [2, 3, 4, 5]
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
    assert [decode_entry(body)[0].session_id for _, body in journal.read_after(0, 10)] == [
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
        committed = [decode_entry(body)[0].session_id for _, body in other.read_after(0, 10)]
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
        assert [body for _, body in second.read_after(0, 10)] == [b"a", b"b", b"c", b"d"]
        assert journal_head(path) == (first.stream, 4)
        assert first.forget_through(4, limit=3) == 3  # the oldest three
        assert [entry for entry, _ in first.read_after(0, 10)] == [4]
    finally:
        first.close()
        second.close()
