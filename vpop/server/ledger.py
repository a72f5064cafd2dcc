"""The ledger: a process of its own that applies the accounting journal to the database.

Workers acknowledge accounting once it is in the journal (vpop/store/journal.py), each
worker in a file of its own. The ledger reads the files in the order the records were
stored (merged by their stamps), applies them in large batches through the same
`Recorder.commit` that direct mode uses (sessions, history, routing records,
rollups, gauges, events, the queue to proxy-mode ISPs) with its progress in the same
transaction, lets event time pass for the reaper and the utilization events, and
recycles the journal segments it has applied. It runs at a lower priority than the
workers, and while records arrive faster than it could apply them it waits (up to a
bound on its backlog): under a burst, acknowledgements come first and the ledger
catches up afterwards (its backlog is the metric `vpop_accounting_journal_backlog`).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

from vpop.config import AccountingSettings
from vpop.config import Settings
from vpop.logs import setup_logging
from vpop.server.lifetime import Restarts, die_with_parent
from vpop.server.metrics import publish_snapshot
from vpop.server.writer import JournalBatch, Recorder
from vpop.store import accounting as store
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.journal import (Journal, causal_cut, decode_entry, journal_files,
                                journal_head)

log = logging.getLogger(__name__)
POLL = 0.02  # seconds between looks at an empty journal
RETRY = 1.0  # seconds before trying again when the database is unavailable
FORGET_EVERY = 0.5  # seconds between recycling the segments applied
STATS_INTERVAL = 1.0
INFLOW_WINDOW = 0.5  # seconds over which the journal's growth is measured
DRAIN_TIMEOUT = 60.0  # on SIGTERM: apply what is journaled, for at most this long


def journal_path(settings: Settings) -> str:
    """The configured journal file: worker 0's; the others' are beside it."""
    return settings.relative(settings.accounting.journal)


def ledger_position(journal_file: str, database_url: str) -> tuple[int, int]:
    """(entries the journals gave out, entries the ledger has applied), over the files
    of every worker, for tools and tests that wait for the ledger."""
    heads = [head for path in journal_files(journal_file)
             if (head := journal_head(path)) is not None]
    if not heads:
        return 0, 0
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return (sum(last for _, last in heads),
                    sum(store.journal_applied(session, stream) for stream, _ in heads))
    finally:
        engine.dispose()


class Ledger:
    """Applies the journals, one per worker, to the database; `step` is one batch."""

    def __init__(self, settings: Settings, journals: list[Journal], sessions):
        self.settings = settings
        self.journals = journals
        self.recorder = Recorder(sessions, lambda callback: callback(),
                                 settings=settings.accounting,
                                 stop_wait=settings.dynauth.stop_wait)
        with sessions() as session:
            # stream name -> the last entry id applied
            self.applied = {j.stream: store.journal_applied(session, j.stream)
                            for j in journals}
        self.forgotten = dict.fromkeys(self.applied, 0)  # applied segments up to here recycled

    def step(self) -> int:
        """Apply the next batch; how many entries it moved past (0: none, or the
        database is unavailable and the batch waits)."""
        limit = self.settings.accounting.max_batch
        now = time.time_ns()  # before any read: see causal_cut
        reads = [j.read_after(self.applied[j.stream], limit) for j in self.journals]
        cut = causal_cut(reads, limit, now)
        merged = sorted((stamp, n, entry, body) for n, rows in enumerate(cut)
                        for entry, stamp, body in rows)
        if not merged:
            return 0
        items, kept, unreadable = [], [], []
        for _, n, entry, body in merged:
            try:
                record, forward = decode_entry(body)
            except Exception as exc:
                unreadable.append((n, entry, body, f"unreadable: {exc}"))
                continue
            items.append((record, None, forward))
            kept.append((n, entry, body))
        if unreadable:  # kept aside before progress passes them
            self._set_aside(unreadable)
            log.error("accounting journal: %d unreadable entries set aside", len(unreadable))
        # progress: each file's last row, past unreadable ones too
        through = {self.journals[n].stream: rows[-1][0] for n, rows in enumerate(cut) if rows}
        positions = [(self.journals[n].stream, entry) for n, entry, _ in kept]
        results = self.recorder.commit(items, journal=JournalBatch(positions, through))
        if self.recorder.database_down:
            return 0
        self._set_aside([(n, entry, body, "not applied: see the log")
                         for (n, entry, body), ok in zip(kept, results) if not ok])
        self.applied.update(through)
        return len(merged)

    def _set_aside(self, entries: list[tuple[int, int, bytes, str]]) -> None:
        """(file index, entry id, body, reason): kept aside in each journal."""
        by_file: dict[int, list] = {}
        for n, entry, body, reason in entries:
            by_file.setdefault(n, []).append((entry, body, reason))
        for n, rows in by_file.items():
            self.journals[n].set_aside(rows)

    def forget(self) -> None:
        """Recycle each journal's segments that are applied."""
        for journal in self.journals:
            applied = self.applied[journal.stream]
            if applied > self.forgotten[journal.stream]:
                journal.forget_through(applied)
                self.forgotten[journal.stream] = applied

    def last_id(self) -> int:
        """Entries given out, over every file."""
        return sum(journal.last_id() for journal in self.journals)

    def applied_count(self) -> int:
        """Entries applied, over every file (ids start at 1 and are consecutive)."""
        return sum(self.applied.values())

    def progress(self) -> str:
        return ", ".join(f"{j.path} through {self.applied[j.stream]}" for j in self.journals)

    def backlog(self) -> int:
        return sum(j.backlog(self.applied[j.stream]) for j in self.journals)


def deferring(inflow: float, backlog: int, settings: AccountingSettings) -> bool:
    """Whether the ledger waits rather than applies: while records arrive faster (per
    second) than `ledger_defer_rate`, faster than it could apply them anyway, it leaves
    the CPU to the workers acknowledging them, until its backlog reaches
    `ledger_defer_backlog`."""
    return (0 < settings.ledger_defer_rate < inflow
            and backlog < settings.ledger_defer_backlog)


class Inflow:
    """How fast entries reach the journal: measured over windows of INFLOW_WINDOW s."""

    def __init__(self, head: int, now: float):
        self.head, self.at, self.rate = head, now, 0.0

    def observe(self, head: int, now: float) -> float:
        if now - self.at >= INFLOW_WINDOW:
            self.rate = (head - self.head) / (now - self.at)
            self.head, self.at = head, now
        return self.rate


def open_journals(settings: Settings) -> list[Journal]:
    """The journal files of every worker (and any an earlier run left beside them)."""
    journals: list[Journal] = []
    try:
        for path in journal_files(journal_path(settings), settings.server.workers):
            journals.append(Journal(path))
    except BaseException:
        for journal in journals:
            journal.close()
        raise
    return journals


def run_ledger(settings: Settings, stats_path: Path | None, stopping) -> None:
    """Apply the journal until `stopping()`; then what is left, within DRAIN_TIMEOUT."""
    engine = make_engine(settings.database_url)
    journals = open_journals(settings)
    try:
        ledger = Ledger(settings, journals, make_sessionmaker(engine))
        recorder = ledger.recorder
        recorder.tick()  # reads the leases
        log.info("ledger (pid %d): journals applied: %s", os.getpid(), ledger.progress())

        def snapshot() -> dict:
            return {"accounting": recorder.snapshot(), "journal_backlog": ledger.backlog()}
        tick = settings.accounting.tick
        next_tick = next_forget = next_stats = time.monotonic()
        drain_until = None
        inflow = Inflow(ledger.last_id(), time.monotonic())
        while True:
            head = ledger.last_id()
            rate = inflow.observe(head, time.monotonic())
            wait = drain_until is None and not stopping() and deferring(
                rate, head - ledger.applied_count(), settings.accounting)
            moved = 0 if wait else ledger.step()
            now = time.monotonic()
            if drain_until is None and stopping():
                drain_until = now + DRAIN_TIMEOUT
            if drain_until is not None and (not moved or now > drain_until):
                break
            if recorder.database_down:
                time.sleep(RETRY)
            elif not moved:
                time.sleep(POLL)
            if now >= next_tick:
                recorder.tick()
                next_tick = now + tick
            if now >= next_forget:
                ledger.forget()
                next_forget = now + FORGET_EVERY
            if stats_path and now >= next_stats:
                publish_snapshot(stats_path, snapshot())
                next_stats = now + STATS_INTERVAL
        ledger.forget()
        if stats_path:
            publish_snapshot(stats_path, snapshot())
        log.info("ledger stopped: applied %s; %d left", ledger.progress(), ledger.backlog())
    finally:
        for journal in journals:
            journal.close()
        engine.dispose()


def _ledger_main(settings: Settings, stats_path: Path | None, parent: int) -> None:
    if not die_with_parent(parent):
        return
    setup_logging(settings)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us, after its workers
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # leases are re-read every tick anyway
    try:
        os.nice(settings.accounting.ledger_niceness)
    except OSError:
        pass
    run_ledger(settings, stats_path, lambda: bool(stop))


class LedgerProcess:
    """The server's handle on its ledger: start, restart when it dies, stop.

    The ledger is a fresh interpreter (`python -m vpop.server.ledger`, the settings
    pickled on its stdin): it inherits no sockets, threads or event loop from the
    server, whichever process starts it and whenever.
    """

    def __init__(self, settings: Settings, stats_dir: str | None):
        self.settings = settings
        self.stats_path = Path(stats_dir) / "ledger.pickle" if stats_dir else None
        self.process: subprocess.Popen | None = None
        self.restarts = Restarts()

    def start(self) -> None:
        self.restarts.started()
        self.process = subprocess.Popen([sys.executable, "-m", "vpop.server.ledger"],
                                        stdin=subprocess.PIPE)
        with self.process.stdin as stdin:
            stdin.write(pickle.dumps((self.settings, self.stats_path, os.getpid())))

    def check(self) -> None:
        """Call from the thread that started it (the parent-death signal is per thread)."""
        if self.process is not None and self.process.poll() is not None:
            if self.restarts.start_again(log, "the ledger", self.process.returncode):
                self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: it applies what is left, then exits
        try:
            self.process.wait(DRAIN_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            log.error("the ledger did not stop; killing it")
            self.process.kill()
            self.process.wait(5)


if __name__ == "__main__":
    _ledger_main(*pickle.load(sys.stdin.buffer))
