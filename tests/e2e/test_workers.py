"""`vpop serve --workers 2`: a supervisor and two processes sharing the ports."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from contextlib import contextmanager

import pytest

from e2e_support import GRACE, STOP_TIMEOUT, Link, children_of, process_state
from vpop.radius import codec
from vpop.store.journal import journal_head

pytestmark = pytest.mark.e2e

WORKERS = 2
ROUNDS = 24  # each from its own source port, so the kernel spreads them over the workers


@pytest.fixture(scope="module")
def server(launch):
    return launch(workers=WORKERS)


def workers_of(server) -> list[int]:
    """The supervisor's children but its accounting ledger."""
    ledger = server.ledger_pid()
    return [pid for pid in children_of(server.pid) if pid != ledger]


def test_the_supervisor_runs_one_process_per_worker_and_the_ledger(server):
    assert len(workers_of(server)) == WORKERS
    assert server.ledger_pid() in children_of(server.pid)


def test_requests_are_answered_and_counted(server, nas):
    accepted = {"client": "localhost", "code": "Access-Request", "outcome": "accept"}
    before = server.metric("vpop_requests_total", **accepted)
    for _ in range(ROUNDS):
        assert nas.login("alice", "alice-pass", server.auth()) == codec.ACCESS_ACCEPT
    assert nas.ask(nas.status_server(), server.acct()).code == codec.ACCOUNTING_RESPONSE
    # The supervisor's endpoint adds up what the workers publish, once a second each.
    expected = before + ROUNDS
    assert server.wait_for_metric("vpop_requests_total", expected, **accepted) == expected


def test_accounting_from_every_worker_is_applied(server, nas):
    tag = random.randrange(1 << 32)
    for n in range(ROUNDS):  # whichever worker is free takes each
        start = [("Acct-Status-Type", "Start"), ("Acct-Session-Id", f"w-{tag:08x}-{n}"),
                 ("User-Name", "alice"), ("NAS-IP-Address", "192.0.2.90")]
        assert nas.ask(nas.accounting(start), server.acct()).code == codec.ACCOUNTING_RESPONSE
    server.wait_for_ledger()
    with sqlite3.connect(server.home / "var" / "vpop.db") as db:
        (count,), = db.execute("SELECT count(*) FROM radacct WHERE acct_session_id LIKE ?",
                               (f"w-{tag:08x}-%",))
    assert count == ROUNDS


@contextmanager
def paused(pid: int):
    """A worker stopped (SIGSTOP) for the block: it reads nothing meanwhile."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def ask_on(link: Link, nas, request) -> None:
    link.send(request.data)
    reply = link.receive()
    assert reply is not None, "not answered"
    assert nas.check(request, reply).code == codec.ACCOUNTING_RESPONSE


def test_a_session_s_records_are_applied_in_order_across_the_workers_journals(server, nas):
    """Each worker journals in a file of its own; a session's Start, Interim and Stop
    are taken by the workers in turn (the other one paused) and the ledger applies
    them in the order they came."""
    first, second = workers_of(server)
    tag = random.randrange(1 << 32)
    sessions = [f"o-{tag:08x}-{n}" for n in range(16)]
    with Link(server.acct()) as link:  # one source port
        for status, seconds, idle in (("Start", 0, second), ("Interim-Update", 60, first),
                                      ("Stop", 120, second)):
            with paused(idle):
                for sid in sessions:
                    ask_on(link, nas, nas.accounting([
                        ("Acct-Status-Type", status), ("Acct-Session-Id", sid),
                        ("User-Name", "alice"), ("Acct-Session-Time", seconds),
                        ("NAS-IP-Address", "192.0.2.92")]))
    server.wait_for_ledger()
    for index in range(WORKERS):  # both files took some of them
        path = server.journal_path if index == 0 else server.journal_path.with_name(
            f"{server.journal_path.stem}-{index}{server.journal_path.suffix}")
        (_, given) = journal_head(str(path))
        assert given > 0, path
    with sqlite3.connect(server.home / "var" / "vpop.db") as db:
        rows = db.execute(
            "SELECT r.acct_session_id, r.status, h.status, h.flags FROM acct_record h "
            "JOIN radacct r ON r.id = h.radacct_id WHERE r.acct_session_id LIKE ? "
            "ORDER BY h.id", (f"o-{tag:08x}-%",)).fetchall()
    assert len(rows) == 3 * len(sessions)
    for sid in sessions:
        mine = [(status, flags) for s, state, status, flags in rows if s == sid]
        assert mine == [("start", ""), ("interim", ""), ("stop", "")], (sid, mine)
    assert {state for _, state, _, _ in rows} == {"closed"}


def test_a_paused_worker_holds_no_accounting_back(server, nas):
    """Every worker reads the one accounting socket: with either worker paused, one
    NAS's records (one source port) are all answered by the other. A retransmission
    that reaches another worker than its original is journaled again, answered, and
    stored once."""
    first, second = workers_of(server)
    tag = random.randrange(1 << 32)

    def start(name: str):
        return nas.accounting([("Acct-Status-Type", "Start"), ("User-Name", "alice"),
                               ("Acct-Session-Id", f"{name}-{tag:08x}"),
                               ("NAS-IP-Address", "192.0.2.91")])
    repeated = start("again")
    with Link(server.acct()) as link:  # one source port, as a NAS behind one socket
        for stopped in (first, second):
            with paused(stopped):
                for n in range(16):
                    ask_on(link, nas, start(f"paused-{stopped}-{n}"))
                ask_on(link, nas, repeated)  # first by one worker, then by the other
    server.wait_for_ledger()
    with sqlite3.connect(server.home / "var" / "vpop.db") as db:
        (answered,), = db.execute("SELECT count(*) FROM radacct WHERE acct_session_id LIKE ?",
                                  (f"paused-%-{tag:08x}",))
        (stored,), = db.execute(
            "SELECT count(*) FROM acct_record h JOIN radacct r ON r.id = h.radacct_id "
            "WHERE r.acct_session_id = ?", (f"again-{tag:08x}",))
    assert answered == 32
    assert stored == 1


def test_sighup_reaches_every_worker(server, nas):
    server.import_plan(GRACE)
    server.reload()
    # Accepted many times running, from many source ports: every worker has reloaded.
    assert nas.accepted_in_a_row("grace", "grace-pass", server.auth(), times=ROUNDS), \
        "not every worker accepts grace after SIGHUP"
    assert len(workers_of(server)) == WORKERS  # reloaded, not restarted


def test_sigterm_stops_every_process(server):
    workers = children_of(server.pid)
    assert len(workers) == WORKERS + 1  # and the ledger
    assert server.stop() == 0, server.diagnostics()
    deadline = time.monotonic() + STOP_TIMEOUT
    while left := [pid for pid in workers if process_state(pid) is not None]:
        assert time.monotonic() < deadline, f"processes {left} outlived the supervisor"
        time.sleep(0.1)
