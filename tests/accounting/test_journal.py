"""The accounting journal: entries, ids, segments, durability, the stream's name, bad paths."""

from __future__ import annotations

import os
import pickle
import time
import zlib

import pytest

from acct_support import NAS, T0, rec
from vpop.accounting.leases import LeaseBook, LeaseIndex, LeaseTerms
from vpop.isp.acct_forward import ForwardOrder
from vpop.server.journal import JournalWriter
from vpop.server.writer import Ack
from vpop.store import journal as journal_module
from vpop.store.journal import (CLOCK_STEP, Journal, JournalError, causal_cut, decode_entry,
                                encode_entry, journal_files, journal_head, worker_journal)

FORWARD = ForwardOrder(isp="isp-a", session_key="k", attrs=b"\x01\x05abc", delay=3,
                       received=1.5)


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
    assert [entry for entry, _, _ in journal.read_after(1, 2)] == [2, 3]  # the limit
    assert journal.backlog(2) == 3
    journal.close()
    again = Journal(journal.path, writer=True)  # a restarted worker goes on from its last id
    try:
        assert again.append(bodies[:1]) == 6
        assert [entry for entry, _, _ in again.read_after(0, 10)] == [1, 2, 3, 4, 5, 6]
    finally:
        again.close()


@pytest.fixture
def small_segments(monkeypatch):
    """Segments of three 100-byte entries, and no spares made ahead."""
    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 450)
    monkeypatch.setattr(Journal, "_prepare_spare", lambda self: None)


def test_applied_segments_are_recycled_and_the_ids_go_on(tmp_path, small_segments):
    journal = Journal(str(tmp_path / "j"), writer=True)
    try:
        for n in range(12):
            assert journal.append([bytes([n]) * 100]) == n + 1  # three frames a segment
        segments = sorted(name for name in os.listdir(journal.path) if name.startswith("seg-"))
        assert len(segments) == 4
        assert journal.forget_through(7) == 6  # the first two segments: entries 1-6
        assert len([n for n in os.listdir(journal.path) if n.startswith("spare-")]) == 2
        assert [entry for entry, _, _ in journal.read_after(6, 10)] == list(range(7, 13))
        assert journal.forget_through(12) == 3  # the last segment stays: the ids go on from it
        assert journal.last_id() == 12
        # The next segments are the spares, still holding their old frames: never read.
        for n in range(12, 20):
            assert journal.append([bytes([n]) * 100]) == n + 1
        assert not [n for n in os.listdir(journal.path) if n.startswith("spare-")]
        assert [(entry, body[0]) for entry, _, body in journal.read_after(9, 20)] == [
            (n + 1, n) for n in range(9, 20)]
        assert list(journal.entries())[0][0] == 10
    finally:
        journal.close()


def test_a_spare_taken_over_when_the_writer_stopped_is_an_empty_segment(tmp_path,
                                                                        small_segments):
    journal = Journal(str(tmp_path / "j"), writer=True)
    for n in range(6):
        journal.append([bytes([n]) * 100])
    journal.forget_through(3)  # the first segment becomes a spare, its frames intact
    spare, = [name for name in os.listdir(journal.path) if name.startswith("spare-")]
    journal.close()
    # The writer had renamed the spare into place and then stopped, before writing the
    # segment's header: the file still holds the old segment's header and frames.
    os.rename(os.path.join(journal.path, spare),
              os.path.join(journal.path, journal_module._segment_name(7)))
    reader = Journal(journal.path)
    assert reader.last_id() == 6 and reader.read_after(6, 10) == []
    reader.close()
    again = Journal(journal.path, writer=True)
    try:
        assert again.append([b"seven"]) == 7
        assert [(entry, body) for entry, _, body in again.read_after(5, 10)] == [
            (6, bytes([5]) * 100), (7, b"seven")]
    finally:
        again.close()


def test_a_zero_filled_spare_is_made_before_the_segment_is_full(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 4096)
    journal = Journal(str(tmp_path / "j"), writer=True)
    try:
        journal.append([b"x" * 2100])  # past half the segment
        journal._preparing.join(10)
        spare, = [name for name in os.listdir(journal.path) if name.startswith("spare-")]
        assert (tmp_path / "j" / spare).read_bytes() == bytes(4096)
        journal.append([b"y" * 2100])  # the next segment is that spare
        assert spare not in os.listdir(journal.path)
        assert [body[0] for _, _, body in journal.read_after(0, 10)] == [ord("x"), ord("y")]
    finally:
        journal.close()


def test_an_entry_larger_than_a_read_is_read_whole(journal):
    bodies = [b"a" * 100, b"b" * 300_000, b"c"]
    journal.append(bodies)
    assert [body for _, _, body in journal.read_after(0, 1)] == bodies[:1]
    assert [body for _, _, body in journal.read_after(1, 1)] == bodies[1:2]
    assert [body for _, _, body in journal.read_after(0, 10)] == bodies


def test_the_stream_name_stays_with_its_journal(tmp_path):
    first = Journal(str(tmp_path / "a"), writer=True)
    name = first.stream
    first.close()
    again = Journal(str(tmp_path / "a"))
    other = Journal(str(tmp_path / "b"))
    try:
        assert again.stream == name
        assert other.stream != name  # a replaced journal starts from its first entry
    finally:
        again.close()
        other.close()


def test_a_file_where_the_journal_should_be_is_named(tmp_path):
    path = tmp_path / "accounting-journal.db"  # e.g. the SQLite journal of an earlier vpop
    path.write_text("not a journal\n" * 100)
    with pytest.raises(JournalError, match="accounting-journal.db.*earlier vpop"):
        Journal(str(path))
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(JournalError, match="blocker/journal"):
        Journal(str(blocker / "journal"))


def test_a_journal_has_one_writer(journal):
    with pytest.raises(JournalError, match="written by another process"):
        Journal(journal.path, writer=True)
    reader = Journal(journal.path)  # the ledger's side
    reader.close()


def frame(entry: int, body: bytes, stamp: int = 1) -> bytes:
    head = journal_module._FRAME.pack(len(body), entry, stamp)
    return head + body + journal_module._CRC.pack(zlib.crc32(body, zlib.crc32(head)))


def last_segment(journal) -> str:
    return max(os.path.join(journal.path, name) for name in os.listdir(journal.path)
               if name.startswith("seg-"))


def test_readers_see_only_what_the_writer_made_durable(journal):
    journal.append([b"a", b"b"])
    reader = Journal(journal.path)
    try:
        end = os.path.getsize(last_segment(journal))
        with open(last_segment(journal), "r+b") as segment:  # written, not yet synced
            segment.seek(end)
            segment.write(frame(3, b"c"))
        assert [body for _, _, body in reader.read_after(0, 10)] == [b"a", b"b"]
        assert reader.last_id() == 2
    finally:
        reader.close()


def test_a_restarted_writer_keeps_whole_frames_and_zeroes_a_torn_write(journal):
    journal.append([b"a", b"b"])
    path, segment_file = journal.path, last_segment(journal)
    journal.close()
    end = os.path.getsize(segment_file)
    with open(segment_file, "r+b") as segment:  # a crash in the middle of a group ...
        segment.seek(end)
        segment.write(frame(3, b"c") + frame(4, b"dddd")[:-3] + frame(5, b"eeee"))
    again = Journal(path, writer=True)
    try:
        # ... the whole frame stays, the torn one and all after it are zeroed: frame 5
        # must not pass for the next append's fifth entry, of the same length.
        with open(segment_file, "rb") as segment:
            data = segment.read()
        kept = end + len(frame(3, b"c"))
        assert data[kept:] == bytes(len(data) - kept)
        assert again.append([b"DDDD"]) == 4
        assert again.append([b"EEEE"]) == 5
        assert [body for _, _, body in again.read_after(0, 10)] == [b"a", b"b", b"c", b"DDDD",
                                                                   b"EEEE"]
    finally:
        again.close()


def test_the_journal_writer_answers_after_the_append_and_holds_lease_places(journal):
    lease = LeaseTerms(id=7, name="l", isp="isp-a", nas=frozenset({NAS}), sessions=5,
                       policy="reject", starts=T0 - 10)
    book = LeaseBook(LeaseIndex([lease]))
    answers = []
    writer = JournalWriter(journal, leases=book)
    writer.submit_group([(record, answers.append, None) for record in (
        rec("start", "s1", isp="isp-a"), rec("start", "s2"),  # s2: local
        rec("interim", "s1", T0 + 300, isp="isp-a"))])
    assert answers == [True, True, True]
    assert [decode_entry(body)[0].session_id for _, _, body in journal.read_after(0, 10)] == [
        "s1", "s2", "s1"]
    assert book.in_use(7, T0) == 1  # s1's Start, until the ledger has applied entry 1
    book.applied(1)
    assert book.in_use(7, T0) == 0
    assert writer.snapshot() == {"journaled": 3}


def test_the_answer_leaves_once_durable_before_the_bookkeeping(journal):
    events = []
    other = Journal(journal.path)  # the ledger's side: sees only what is durable

    def send():
        events.append(("send", [decode_entry(body)[0].session_id
                                for _, _, body in other.read_after(0, 10)]))

    def done(ok):
        events.append(("done", ok))
    JournalWriter(journal).submit(rec("start", "s1"), Ack(send, done))
    other.close()
    assert events == [("send", ["s1"]), ("done", True)]


def test_a_journal_that_cannot_be_written_answers_no(journal, monkeypatch):
    def full(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(journal_module.os, "fdatasync", full)
    answers = []
    writer = JournalWriter(journal)
    writer.submit(rec("start", "s1"), answers.append)
    assert answers == [False] and writer.failures == 1


def test_each_worker_has_a_journal_beside_the_configured_one(tmp_path):
    base = str(tmp_path / "acct")
    assert worker_journal(base, 0) == base
    assert worker_journal(base, 2) == str(tmp_path / "acct-2")
    assert journal_files(base, 2) == [base, str(tmp_path / "acct-1")]
    # Journals an earlier run with more workers left are still the ledger's to apply.
    for name in ("acct-3", "acct-x", "acct-03", "acct-4.tmp", "other-5"):
        (tmp_path / name).mkdir()
    assert journal_files(base, 2) == [base, str(tmp_path / "acct-1"), str(tmp_path / "acct-3")]
    assert journal_files(base) == [base, str(tmp_path / "acct-3")]


def test_entries_are_stamped_with_the_time_they_were_stored(journal):
    before = time.time_ns()
    journal.append([b"a", b"b"])
    after = time.time_ns()
    (_, first, _), (_, second, _) = journal.read_after(0, 10)
    assert before <= first == second <= after  # one batch, one stamp


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


@pytest.fixture
def open_umask():
    """A umask that would leave files readable by everyone: vpop's modes must not rely
    on the caller's."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_journal_is_its_owner_s_alone(tmp_path, open_umask):
    path = tmp_path / "var" / "journal"
    journal = Journal(str(path), writer=True)
    try:
        journal.append([b"a"])
        journal.set_aside([(1, b"a", "why")])
    finally:
        journal.close()
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700  # made on the way
    assert path.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert {"stream", "writer.lock", "set-aside"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_a_writer_after_one_that_did_not_stop_cleanly_says_what_it_recovered(tmp_path,
                                                                            caplog):
    path = str(tmp_path / "journal")
    first = Journal(path, writer=True)
    first.append([b"a", b"b", b"c"])
    segment_file = last_segment(first)
    first.close()
    caplog.set_level("INFO", logger="vpop.store.journal")
    again = Journal(path, writer=True)  # after a clean stop: nothing to say
    again.close()
    assert not caplog.records
    with open(os.path.join(path, "writer.lock"), "w") as lock:  # as a killed writer leaves it
        lock.write("4242\n")
    end = os.path.getsize(segment_file)
    with open(segment_file, "r+b") as segment:
        segment.seek(end)
        segment.write(frame(4, b"dddd")[:-3])  # and the write it was killed in
    again = Journal(path, writer=True)
    again.close()
    [said] = [r.getMessage() for r in caplog.records]
    assert said == (f"accounting journal {path}: the previous writer (pid 4242) did not stop "
                    f"cleanly; recovered its last segment: 3 entries kept (through id 3), "
                    f"a torn write of {len(frame(4, b'dddd')) - 3} bytes zeroed")


def test_a_journal_is_checked_before_serving_without_making_anything(tmp_path, journal):
    missing = tmp_path / "var" / "later" / "journal"
    journal_module.check_usable(str(missing), free=True)  # may be made
    assert not (tmp_path / "var").exists()
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(JournalError, match="blocker is not a directory"):
        journal_module.check_usable(str(blocker / "journal"), free=True)
    with pytest.raises(JournalError, match="earlier vpop"):
        journal_module.check_usable(str(blocker), free=True)
    # The journal a running server writes: refused for serving, fine for check-config.
    with pytest.raises(JournalError, match="written by another process"):
        journal_module.check_usable(journal.path, free=True)
    journal_module.check_usable(journal.path, free=False)
