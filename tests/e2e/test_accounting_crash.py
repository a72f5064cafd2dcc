"""Crash safety: an acknowledged accounting record is never lost.

A stream of accounting goes to `vpop serve`; the server is killed with SIGKILL in the
middle of it (its ledger process dies with it), started again on the same database, and
then:

* none of its processes (workers, ledger) is left running;
* every record it acknowledged is in the database: at once without the accounting
  journal; with it (the ledger held with SIGSTOP, so nothing was applied), in the
  journal at the crash, and in the database once the restarted server's ledger has
  applied the journal, before any retransmission;
* the NAS's retransmissions of everything else (with a longer Acct-Delay-Time, so
  new packets, as RFC 2866 §5.2 asks) are all acknowledged, and each record is
  stored exactly once, however many of them the first server had stored unacknowledged.
"""

from __future__ import annotations

import dataclasses
import os
import re
import select
import signal
import socket
import time

import pytest
from sqlalchemy import text

from e2e_support import DICTIONARY, SECRET, VpopServer, children_of, wait_gone
from vpop.radius import codec
from vpop.store.engine import make_engine
from vpop.store.journal import Journal, decode_entry, journal_files

pytestmark = pytest.mark.e2e

SESSIONS = 400  # each: Start, two Interim-Updates, Stop
WINDOW = 64  # requests in flight, as a busy NAS or proxy keeps them
KILL_AFTER = 500  # acknowledgements before the SIGKILL
T0 = 1_772_323_200


def records():
    """(session id, status, session time, pairs without Acct-Delay-Time) in order."""
    out = []
    for n in range(SESSIONS):
        sid = f"crash-{n:04d}"
        for step, status in enumerate(("Start", "Interim-Update", "Interim-Update", "Stop")):
            pairs = [("Acct-Status-Type", status), ("Acct-Session-Id", sid),
                     ("User-Name", f"user{n % 50}"), ("NAS-IP-Address", "192.0.2.77"),
                     ("NAS-Port", n), ("Event-Timestamp", T0 + n + 300 * step)]
            if step:
                pairs += [("Acct-Session-Time", 300 * step),
                          ("Acct-Input-Octets", 1000 * step), ("Acct-Output-Octets", 10 * step)]
            out.append((sid, status.lower().replace("-update", ""), 300 * step if step else 0,
                        pairs))
    return out


def packet(pairs, ident: int, delay: int) -> tuple[bytes, bytes]:
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, ident,
                                DICTIONARY.encode_pairs([*pairs, ("Acct-Delay-Time", delay)]),
                                SECRET, message_authenticator=False)
    return data, data[4:20]


class Stream:
    """Sends records with a window of outstanding requests, one socket per 256 idents."""

    def __init__(self, addr, window: int = WINDOW):
        self.addr, self.window = addr, window
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(addr)
        self.pending: dict[int, tuple[int, bytes]] = {}  # ident -> (record index, authenticator)
        self.acked: set[int] = set()
        self.sent: set[int] = set()

    def run(self, indexes, all_records, *, delay: int, stop_after: int | None = None,
            timeout: float = 10.0) -> None:
        queue = list(indexes)
        free = list(range(256))
        deadline = time.monotonic() + timeout
        while (queue or self.pending) and time.monotonic() < deadline:
            while queue and free and len(self.pending) < self.window:
                index = queue.pop(0)
                ident = free.pop(0)
                data, auth = packet(all_records[index][3], ident, delay)
                self.sock.send(data)
                self.pending[ident] = (index, auth)
                self.sent.add(index)
            ready, _, _ = select.select([self.sock], [], [], 0.5)
            if not ready:
                continue
            reply = self.sock.recv(4096)
            entry = self.pending.pop(reply[1], None)
            if entry is None:
                continue
            index, auth = entry
            assert codec.reply_ok(reply, auth, SECRET) and reply[0] == codec.ACCOUNTING_RESPONSE
            self.acked.add(index)
            free.append(reply[1])
            if stop_after is not None and len(self.acked) >= stop_after:
                return

    def close(self) -> None:
        self.sock.close()


def journaled(server) -> set[tuple[str, str, int]]:
    """What the journal files hold (applied or not), as the database's rows read."""
    entries = []
    for path in journal_files(str(server.journal_path)):
        journal = Journal(path)
        try:
            entries += [decode_entry(body)[0] for _, body in journal.entries()]
        finally:
            journal.close()
    return {(r.session_id, r.status, r.session_time) for r in entries}


def stored(server) -> list[tuple[str, str, int]]:
    engine = make_engine(server.db_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(
                "SELECT r.acct_session_id, h.status, h.session_time FROM acct_record h "
                "JOIN radacct r ON r.id = h.radacct_id"))]
    finally:
        engine.dispose()


@pytest.fixture
def servers(tmp_path):
    started: list[VpopServer] = []
    yield started
    for server in started:
        if server.process is not None and server.exit_status is None:
            server.stop()


@pytest.mark.parametrize("journal,workers", [(True, 1), (False, 1), (True, 2)],
                         ids=["journal", "direct", "journal-2-workers"])
def test_sigkill_loses_no_acknowledged_record_and_retransmissions_make_no_duplicates(
        tmp_path, servers, journal, workers):
    first = VpopServer.create(tmp_path / "vpop", metrics=False, journal=journal,
                              workers=workers)
    servers.append(first)
    first.start()
    if journal:  # held still: every acknowledged record is in the journal only
        os.kill(first.ledger_pid(), signal.SIGSTOP)
    children = children_of(first.pid)
    assert len(children) == (workers if workers > 1 else 0) + journal
    all_records = records()
    stream = Stream(first.acct())
    stream.run(range(len(all_records)), all_records, delay=0, stop_after=KILL_AFTER)
    in_flight = len(stream.pending)
    first.process.send_signal(signal.SIGKILL)  # mid-stream: requests are in flight
    assert first.stop() == -signal.SIGKILL
    stream.close()
    wait_gone(children)  # its workers and ledger die with it
    assert in_flight > 0, "the stream had nothing in flight when the server was killed"

    keys = [(sid, status, t) for sid, status, t, _ in all_records]
    after_crash = stored(first)
    assert len(after_crash) == len(set(after_crash)), "a record was stored twice"
    if journal:
        assert not after_crash, "the stopped ledger applied records"
    kept = set(after_crash) | (journaled(first) if journal else set())
    lost = {i for i in stream.acked if keys[i] not in kept}
    assert not lost, f"acknowledged but not stored: {sorted(keys[i] for i in lost)[:5]}"

    second = dataclasses.replace(first, process=None, exit_status=None, _output_file=None)
    servers.append(second)
    second.start()
    if journal:  # each worker's journal says what it recovered from its killed writer
        said = re.findall(r"accounting journal (\S+): the previous writer \(pid (\d+)\) did not "
                          r"stop cleanly; recovered its last segment: (\d+) entries kept",
                          second.log_text())
        assert len(said) == workers, second.log_text()
        assert sum(int(kept) for _, _, kept in said) >= len(stream.acked)
    if journal:  # the new ledger applies what the old one had not: each record once
        second.wait_for_ledger()
        after_restart = stored(second)
        assert len(after_restart) == len(set(after_restart)), "a record was stored twice"
        lost = {i for i in stream.acked if keys[i] not in set(after_restart)}
        assert not lost, f"acknowledged but not applied: {sorted(keys[i] for i in lost)[:5]}"
    retry = Stream(second.acct())
    # Everything not acknowledged: what was in flight is retransmitted with a longer delay.
    retry.run([i for i in range(len(all_records)) if i not in stream.acked], all_records,
              delay=5)
    retry.close()
    assert len(stream.acked | retry.acked) == len(all_records), "not every record was answered"
    if journal:
        second.wait_for_ledger()
    final = stored(second)
    assert sorted(final) == sorted(keys), "the database does not hold each record exactly once"
    assert second.stop() == 0
