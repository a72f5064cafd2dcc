"""The ledger applies the accounting journal to the database: in order, in batches,
each entry exactly once however often it is read, and what it cannot read set aside
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from acct_support import T0, life
from vpop.config import AccountingSettings
from vpop.config import Settings
from vpop.isp.acct_forward import ForwardOrder
from vpop.server.ledger import INFLOW_WINDOW, Inflow, Ledger, deferring
from vpop.store import accounting as store
from vpop.store.accounting_models import AcctHistory, RadAcct
from vpop.store.engine import make_sessionmaker
from vpop.store.isp_models import AcctForward
from vpop.store.journal import Journal, encode_entry

SETTINGS = Settings(accounting=AccountingSettings(max_batch=4))


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def records():
    return life("a", T0, T0 + 900) + life("b", T0 + 60, T0 + 660)  # 4 + 3 records


def history(sessions) -> list[tuple[str, str]]:
    with sessions() as session:
        return sorted(tuple(row) for row in session.execute(
            select(RadAcct.acct_session_id, AcctHistory.status)
            .join(AcctHistory, AcctHistory.radacct_id == RadAcct.id)))


def drain(ledger: Ledger) -> list[int]:
    moved = []
    while n := ledger.step():
        moved.append(n)
    return moved


def test_the_journal_is_applied_in_batches_with_its_progress(sessions, journal):
    last = journal.append([encode_entry(r, None) for r in records()])
    ledger = Ledger(SETTINGS, [journal], sessions)
    assert drain(ledger) == [4, 3]
    assert history(sessions) == sorted(
        [("a", "start"), ("a", "interim"), ("a", "interim"), ("a", "stop"),
         ("b", "start"), ("b", "interim"), ("b", "stop")])
    with sessions() as session:
        assert store.journal_applied(session, journal.stream) == last == 7
        assert session.scalar(select(func.count()).select_from(RadAcct)
                              .where(RadAcct.status == "closed")) == 2
    ledger.forget()
    assert journal.backlog(ledger.applied[journal.stream]) == 0  # (segments: test_journal)
    # A ledger started later begins where the database says, not at the start.
    assert Ledger(SETTINGS, [journal], sessions).applied == {journal.stream: 7}


def test_entries_read_again_are_not_applied_again(sessions, journal):
    journal.append([encode_entry(r, None) for r in records()])
    drain(Ledger(SETTINGS, [journal], sessions))
    stale = Ledger(SETTINGS, [journal], sessions)
    stale.applied[journal.stream] = 0  # as a ledger that read before the first committed
    assert drain(stale) == [4, 3]
    assert len(history(sessions)) == 7
    assert stale.recorder.counts["stored"] == 0


def test_an_unreadable_entry_is_set_aside_and_the_rest_applied(sessions, journal):
    first, second = life("a", T0, T0 + 600)[:2], life("a", T0, T0 + 600)[2:]
    journal.append([encode_entry(r, None) for r in first])
    journal.append([b"not an entry"])
    last = journal.append([encode_entry(r, None) for r in second])
    drain(Ledger(SETTINGS, [journal], sessions))
    assert [status for _, status in history(sessions)] == ["interim", "start", "stop"]
    (entry, body, reason), = journal.set_aside_entries()
    assert (entry, body) == (3, b"not an entry") and reason.startswith("unreadable")
    with sessions() as session:
        assert store.journal_applied(session, journal.stream) == last


def test_the_workers_journals_are_applied_in_the_order_their_records_were_stored(
        sessions, tmp_path):
    first, second = (Journal(str(tmp_path / name), writer=True) for name in ("j", "j-1"))
    try:
        start, interim, stop = life("a", T0, T0 + 600)
        # The Start reached worker 1, the Interim and the Stop worker 0, in this order.
        second.append([encode_entry(start, None)])
        first.append([encode_entry(interim, None)])
        first.append([encode_entry(stop, None)])
        ledger = Ledger(SETTINGS, [first, second], sessions)
        assert drain(ledger) == [3]
        with sessions() as session:
            flags = session.execute(select(AcctHistory.status, AcctHistory.flags)
                                    .order_by(AcctHistory.id)).all()
            assert [tuple(row) for row in flags] == [("start", ""), ("interim", ""),
                                                     ("stop", "")]  # no "no-start"
            assert store.journal_applied(session, first.stream) == 2
            assert store.journal_applied(session, second.stream) == 1
        assert ledger.applied == {first.stream: 2, second.stream: 1}
        ledger.forget()
        assert ledger.backlog() == 0 and ledger.last_id() == 3
    finally:
        first.close()
        second.close()


def test_forwarded_records_are_queued_for_their_isp(sessions, journal):
    forward = ForwardOrder(isp="isp-a", session_key="k1", attrs=b"\x2c\x04ab", delay=0,
                           received=float(T0))
    journal.append([encode_entry(r, forward if r.status == "start" else None)
                    for r in life("f", T0, T0 + 300)])
    drain(Ledger(SETTINGS, [journal], sessions))
    with sessions() as session:
        queued = session.execute(select(AcctForward.isp, AcctForward.session_key)).all()
    assert [tuple(row) for row in queued] == [("isp-a", "k1")]


@pytest.mark.parametrize("inflow,backlog,waits", [
    (0.0, 0, False),             # nothing arriving: apply
    (3_000.0, 10_000, False),    # slower than the ledger applies: keep up
    (4_000.0, 10_000, False),    # at the rate: apply
    (4_001.0, 10_000, True),     # faster: leave the CPU to the workers
    (20_000.0, 499_999, True),
    (20_000.0, 500_000, False),  # the backlog's bound reached: apply anyway
])
def test_the_ledger_waits_only_while_records_arrive_faster_than_it_applies(inflow, backlog,
                                                                          waits):
    settings = AccountingSettings(ledger_defer_rate=4_000, ledger_defer_backlog=500_000)
    assert deferring(inflow, backlog, settings) is waits
    assert deferring(inflow, backlog, AccountingSettings(ledger_defer_rate=0)) is False


def test_inflow_is_measured_over_whole_windows():
    inflow = Inflow(head=100, now=10.0)
    assert inflow.observe(150, 10.0 + INFLOW_WINDOW / 2) == 0.0  # window not over yet
    assert inflow.observe(100 + 2_000, 10.0 + INFLOW_WINDOW) == pytest.approx(
        2_000 / INFLOW_WINDOW)
    assert inflow.observe(2_100, 10.0 + 2 * INFLOW_WINDOW) == 0.0  # quiet again
