"""The accounting writer: group commit, a record that cannot be stored, the tick, and
lease usage handed back to the event loop (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest

from acct_support import T0, add_lease, life, rec
from vpop.accounting.leases import LeaseBook
from vpop.config import AccountingSettings
from vpop.server import writer as writer_module
from vpop.server.writer import Ack, AccountingWriter
from vpop.store.engine import make_sessionmaker

WAIT = 30.0


class Loop:
    """Runs what the writer hands to the event loop, on the writer's thread: enough here."""

    def __init__(self):
        self.calls = 0

    def __call__(self, callback):
        self.calls += 1
        callback()


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def submit_all(writer, records, *, then_start: bool = False) -> list[bool]:
    """Submit, and wait for every answer. then_start: the writer starts only once all
    are queued, so how they are grouped does not depend on thread timing."""
    results: list[bool | None] = [None] * len(records)
    finished = threading.Event()

    def done_for(index):
        def done(ok: bool) -> None:
            results[index] = ok
            if all(r is not None for r in results):
                finished.set()
        return done
    for index, record in enumerate(records):
        writer.submit(record, done_for(index))
    if then_start:
        writer.start()
    assert finished.wait(WAIT), "not every record was answered"
    return results


def test_records_are_committed_in_groups_and_lease_usage_reaches_the_book(sessions):
    lease_id = add_lease(sessions)
    book = LeaseBook()
    writer = AccountingWriter(sessions, Loop(), settings=AccountingSettings(tick=0.05),
                              leases=book, wallclock=Clock(T0))
    try:
        records = [rec("start", f"s{n}", T0 + n, isp="isp-a") for n in range(30)]
        assert submit_all(writer, records, then_start=True) == [True] * 30
        assert writer.batches < 30  # groups, not one transaction per record
        assert writer.counts["stored"] == 30
        assert book.leases.by_id[lease_id].name == "isp-a-berlin"
        assert book.in_use(lease_id, T0) == 30
        assert submit_all(writer, records[:5]) == [True] * 5  # retransmissions
        assert writer.counts["duplicates"] == 5
    finally:
        writer.stop()


def refuse_poison(monkeypatch) -> None:
    """The store refuses any batch with a record of session "poison"."""
    real = writer_module.store.apply_batch

    def refuses_poison(session, records, **kw):
        if any(r.session_id == "poison" for r in records):
            raise ValueError("cannot store this one")
        return real(session, records, **kw)
    monkeypatch.setattr(writer_module.store, "apply_batch", refuses_poison)


def test_a_record_that_cannot_be_stored_is_not_acknowledged_alone(sessions, monkeypatch):
    refuse_poison(monkeypatch)
    writer = AccountingWriter(sessions, Loop(), settings=AccountingSettings(tick=60))
    writer.start()
    try:
        records = [rec("start", "a", T0), rec("start", "poison", T0), rec("start", "b", T0)]
        assert submit_all(writer, records) == [True, False, True]
        assert writer.failures == 1
    finally:
        writer.stop()


def test_only_stored_records_are_answered_from_the_writer_s_thread(sessions, monkeypatch):
    refuse_poison(monkeypatch)
    sent, done = [], threading.Event()
    writer = AccountingWriter(sessions, Loop(), settings=AccountingSettings(tick=60))
    acks = [Ack(lambda n=n: sent.append((n, threading.current_thread() is writer.thread)),
                lambda ok, n=n: n == 2 and done.set()) for n in range(3)]
    writer.submit_group([(rec("start", name, T0), ack, None)
                         for name, ack in zip(("a", "poison", "b"), acks)])
    writer.start()
    try:
        assert done.wait(WAIT)
    finally:
        writer.stop()
    assert sent == [(0, True), (2, True)]  # the record not stored goes unanswered


def test_the_tick_reaps_sessions_gone_silent_in_event_time(sessions):
    clock = Clock(1000.0)
    settings = AccountingSettings(tick=0.05, interim_interval=300, stale_intervals=2)
    writer = AccountingWriter(sessions, Loop(), settings=settings, wallclock=clock)
    writer.start()
    try:
        submit_all(writer, life("quiet", T0, T0 + 900)[:2]
                   + [rec("start", "busy", T0 + 500, nas="192.0.2.2")])
        # Event time is T0 + 500 now; 'quiet' was last heard of at T0 + 300, as was its NAS.
        assert writer.counts["reaped"] == 0
        # Nothing newer: event time moves on with the wall clock to T0 + 1000. The quiet
        # NAS has been silent for 700 s, longer than the threshold: its clock is that
        # time, and 'quiet' is stale. The other NAS's clock is still T0 + 500: 'busy' is not.
        clock.now += 500
        pause = threading.Event()
        for _ in range(400):
            if writer.counts["reaped"]:
                break
            pause.wait(0.05)
        assert writer.counts["reaped"] == 1
    finally:
        writer.stop()
