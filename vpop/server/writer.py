"""Durable accounting in the database: the recorder, and the direct mode's writer thread.

The recorder stores a group of records in one transaction (the ledger process's
batches from the journal, or, without the journal, what a worker's writer thread took
from its queue) and lets event time pass at most once per `tick` between them (the
reaper, the utilization events). Group commit: every record waiting when a transaction
starts shares it, so the cost of a durable commit is spread over many requests without
acknowledging any record before it is on disk. Lease usage goes back to the event
loop's LeaseBook (through `notify`) after every commit.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import queue
import threading
import time
from typing import Callable, NamedTuple

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from vpop.accounting.leases import LeaseBook, LeaseIndex
from vpop.config import AccountingSettings, DynAuthSettings
from vpop.accounting.utilization import EventClock
from vpop.isp.acct_forward import ForwardOrder
from vpop.isp.realms import find_realm
from vpop.store import accounting as store
from vpop.store import acct_forward
from vpop.store import dynauth as dynauth_store
from vpop.store.isp_snapshot import load_isps

log = logging.getLogger(__name__)
_STOP = object()


class JournalBatch(NamedTuple):
    """Where a batch the ledger applies comes from: each item's (stream, entry id), and
    how far each stream gets with it (its last entry read, past unreadable ones)."""
    positions: list[tuple[str, int]]
    through: dict[str, int]

    def single(self, n: int) -> "JournalBatch":
        """Item n alone, moving its stream to it (when a batch is retried one by one)."""
        stream, entry = self.positions[n]
        return JournalBatch([(stream, entry)], {stream: entry})


class Ack:
    """What follows a record's commit: `send` its Accounting-Response at once, from the
    storing thread, then `done` on the event loop (duplicate cache, counters, log).

    The answer then does not wait for the event loop to come round to the callback,
    which under load took 1 ms (median) to over 30 ms. A retransmission arriving between
    the two is answered from the duplicate cache's Awaiting entry, which `send` marks.
    """
    __slots__ = ("send", "done")

    def __init__(self, send: Callable[[], None], done: Callable[[bool], None]):
        self.send, self.done = send, done

    def __call__(self, ok: bool) -> None:
        self.done(ok)


def answer_stored(batch: list, results: list[bool]) -> None:
    """From the storing thread, right after the commit: the answers of what is stored."""
    for (_, done, _), ok in zip(batch, results):
        if ok and type(done) is Ack:
            done.send()


class Recorder:
    """Stores accounting in the database: (record, done, forward) items in one
    transaction with the journal's progress (`commit`), and event time passing (`tick`).
    The direct mode's writer thread and the ledger process both record through it.
    Lease usage goes back to the event loop's LeaseBook through `notify`."""

    def __init__(self, sessions: sessionmaker[Session],
                 notify: Callable[[Callable[[], None]], None], *,
                 settings: AccountingSettings | None = None, leases: LeaseBook | None = None,
                 wallclock: Callable[[], float] = time.time,
                 stop_wait: float = DynAuthSettings().stop_wait):
        self.settings = settings or AccountingSettings()
        # Seconds after a Disconnect-ACK within which a session's Stop is expected
        # ([dynauth] stop_wait): each tick marks the sessions past it stop-overdue.
        self.stop_wait = stop_wait
        self.sessions = sessions
        self.notify = notify  # runs a callback on the event loop thread
        self.book = leases  # the event loop's, for admission; updated through notify
        self.wallclock = wallclock
        self.clock = EventClock()
        self.leases = LeaseIndex()
        self.realm_isp = None  # User-Name -> the ISP of its realm, for attribution
        self._revision: tuple | None = None
        self.database_down = False  # the last commit found the database unavailable
        self.failures = 0
        # stored, duplicates, reaped, closed by Accounting-On/Off, one per flag
        self.counts: collections.Counter[str] = collections.Counter()

    def snapshot(self) -> dict[str, int]:
        """Counters for the metrics endpoint (read from another thread: a copy)."""
        return dict(self.counts)

    def commit(self, batch: list, journal: JournalBatch | None = None) -> list[bool]:
        """Store (record, done, forward) items in one transaction; whether each is in.

        `journal`: the items are journal entries (the ledger's case); entries their
        stream has already applied are skipped, and how far each stream got is
        committed with them, so each is applied exactly once.
        """
        self.database_down = False
        try:
            with self.sessions.begin() as session:
                applied = self._apply(session, batch, journal)
            self._committed(*applied)
            return [True] * len(batch)
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc.orig, _unavailable_errors()):
                self.failures += len(batch)
                self.database_down = True
                log.error("accounting batch of %d not stored, the database is unavailable: %s",
                          len(batch), str(exc.orig).strip().splitlines()[0] if exc.orig else exc)
                return [False] * len(batch)
            log.exception("accounting batch of %d failed; retrying one by one", len(batch))
        except Exception:
            log.exception("accounting batch of %d failed; retrying one by one", len(batch))
        results = []
        for n, item in enumerate(batch):  # isolate the record that cannot be stored
            one = journal.single(n) if journal else None
            try:
                with self.sessions.begin() as session:
                    applied = self._apply(session, [item], one)
                self._committed(*applied)
                results.append(True)
            except Exception:
                self.failures += 1
                log.exception("accounting record %s not stored", item[0].unique_id)
                results.append(False)
        return results

    def _apply(self, session: Session, batch: list, journal: JournalBatch | None):
        store.lock(session)
        if journal is not None:
            applied = {stream: store.journal_applied(session, stream)
                       for stream in journal.through}
            batch = [item for item, (stream, entry) in zip(batch, journal.positions)
                     if entry > applied[stream]]
            for stream, last in journal.through.items():
                store.set_journal_applied(session, stream, max(applied[stream], last))
        records = [record for record, _, _ in batch]
        wall = self.wallclock()
        result = (store.apply_batch(session, records, leases=self.leases,
                                    settle=self.settings.interim_interval,
                                    stale=self.settings.stale_after(),
                                    now=self.clock.now(wall), wall=wall,
                                    realm_isp=self.realm_isp, locked=True)
                  if records else store.BatchResult())
        _enqueue(session, [forward for _, _, forward in batch if forward])
        return records, result

    def _committed(self, records, result: store.BatchResult) -> None:
        if not records:
            return
        if result.now is not None:  # records kept out as implausible do not move it
            self.clock.observe(result.now, self.wallclock())
        self.counts["stored"] += result.stored
        self.counts["duplicates"] += result.duplicates
        self.counts["closed by Accounting-On/Off"] += result.closed
        self.counts["reaped"] += result.reaped
        for flag, n in result.flags.items():
            self.counts[f"flag {flag}"] += n
        self._tell_book(result.lease_levels, result.lease_onlines)

    def _tell_book(self, levels: dict[int, int], onlines: list[int], leases=None) -> None:
        book = self.book
        if book is None or not (levels or onlines or leases is not None):
            return

        def update() -> None:
            if leases is not None:
                book.set_leases(leases)
            book.set_counts(levels)
            book.started(onlines)
        self.notify(update)

    def refresh_leases(self) -> None:
        try:
            with self.sessions() as session:
                self._revision, leases, levels = store.lease_state(session, self._revision)
                if leases is not None or self.realm_isp is None:
                    self.realm_isp = realm_resolver(load_isps(session))
                if self.clock.watermark is None:  # event time goes on from what is stored
                    newest = store.event_clock(session)
                    if newest is not None:
                        self.clock.observe(newest, self.wallclock())
        except Exception:
            log.exception("could not read the leases; keeping %d known", len(self.leases))
            return
        if leases is not None:
            self.leases = leases
            log.info("accounting: %d leases", len(leases))
        self._tell_book(levels, [], leases=leases)

    def tick(self) -> None:
        """Let event time pass: reap sessions gone stale by the event clock (which moves
        on with the wall clock while no newer record arrives), let the utilization events
        see it."""
        self.refresh_leases()
        wall = self.wallclock()
        self.mark_stop_overdue(wall)
        now = self.clock.now(wall)
        if now is None:
            return  # no record seen yet: event time has not begun
        try:
            with self.sessions.begin() as session:
                result = store.tick(session, now=now, leases=self.leases,
                                    settle=self.settings.interim_interval,
                                    stale=self.settings.stale_after(), wall=wall)
        except Exception:
            log.exception("accounting tick failed")
            return
        if result.reaped:
            self.counts["reaped"] += result.reaped
            log.info("reaper closed %d stale sessions", result.reaped)
        self._tell_book(result.lease_levels, [])

    def mark_stop_overdue(self, wall: float) -> None:
        """Sessions whose NAS ACKed a Disconnect more than stop_wait ago and that are still
        open: marked stop-overdue ("ACKed but still online"), each logged once."""
        now = dt.datetime.fromtimestamp(wall, dt.timezone.utc)
        try:
            with self.sessions.begin() as session:
                overdue = dynauth_store.mark_stop_overdue(
                    session, before=now - dt.timedelta(seconds=self.stop_wait), now=now)
        except Exception:
            log.exception("could not mark the sessions whose Stop is overdue")
            return
        for radacct_id, username, nas in overdue:
            self.counts["stop overdue after Disconnect-ACK"] += 1
            log.warning("session %d (%s at %s): Disconnect ACKed more than %g s ago and "
                        "still no Stop: marked stop-overdue", radacct_id, username, nas,
                        self.stop_wait)


class AccountingWriter:
    """Direct mode (no journal): the hand-off from the event loop to one thread per
    worker that records what is waiting in groups, and answers them once committed:
    (record, done, forward) items queued, taken as many as are waiting."""

    def __init__(self, sessions: sessionmaker[Session], notify: Callable[[Callable[[], None]], None],
                 max_batch: int | None = None, *, settings: AccountingSettings | None = None,
                 leases: LeaseBook | None = None, wallclock: Callable[[], float] = time.time,
                 stop_wait: float = DynAuthSettings().stop_wait):
        self.settings = settings or AccountingSettings()
        self.max_batch = max_batch or self.settings.max_batch
        self.notify = notify
        self.recorder = Recorder(sessions, notify, settings=self.settings, leases=leases,
                                 wallclock=wallclock, stop_wait=stop_wait)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="accounting-writer", daemon=True)
        self.batches = 0

    @property
    def counts(self) -> collections.Counter[str]:
        return self.recorder.counts

    @property
    def failures(self) -> int:
        return self.recorder.failures

    def snapshot(self) -> dict[str, int]:
        return self.recorder.snapshot()

    def start(self) -> None:
        self.thread.start()

    def submit(self, record, done: Callable[[bool], None], forward=None) -> None:
        """`forward`: the record is also owed to a proxy-mode ISP (a ForwardOrder); it is
        queued for it with the record."""
        self.queue.put((record, done, forward))

    def submit_group(self, items: list) -> None:
        """Several (record, done, forward) items in one hand-off."""
        self.queue.put(items)

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout=30)

    def take(self, timeout: float | None = None) -> tuple[list, bool]:
        """(the items waiting, at least one unless `timeout` passed; whether to stop)."""
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return [], False
        if item is _STOP:
            return [], True
        batch = item if type(item) is list else [item]
        while len(batch) < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            if type(item) is list:
                batch.extend(item)
            else:
                batch.append(item)
        return batch, False

    def _run(self) -> None:
        recorder = self.recorder
        recorder.refresh_leases()
        next_tick = time.monotonic() + self.settings.tick
        stopping = False
        while not stopping:
            batch, stopping = self.take(max(0.0, next_tick - time.monotonic()))
            if batch:
                results = recorder.commit(batch)
                self.batches += 1
                answer_stored(batch, results)
                self.notify(lambda b=batch, r=results:
                            [done(ok) for (_, done, _), ok in zip(b, r)])
            if time.monotonic() >= next_tick:
                recorder.tick()
                next_tick = time.monotonic() + self.settings.tick


def realm_resolver(isps) -> Callable[[str], str | None]:
    """User-Name -> the name of the ISP whose realm it carries, for attributing sessions
    that have no routing Class."""
    if not any(isp.realms for isp in isps):
        return lambda name: None

    def isp_of(name: str) -> str | None:
        found = find_realm(name, isps)
        return found.isp.name if found is not None else None
    return isp_of


def _enqueue(session: Session, orders: list[ForwardOrder]) -> None:
    for order in orders:
        acct_forward.enqueue(session, order)


def _unavailable_errors() -> tuple[type, ...]:
    """Driver errors that mean the database cannot be reached, not that a record is bad."""
    errors: list[type] = []
    try:
        import psycopg2
        errors.append(psycopg2.OperationalError)
    except ImportError:
        pass
    import sqlite3
    errors.append(sqlite3.OperationalError)
    return tuple(errors)
