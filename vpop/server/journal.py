"""Accounting acknowledged from the journal, on the event loop's own thread.

A listener hands over what one wake-up read; it is appended to the worker's journal
(vpop/store/journal.py) in one write and one fdatasync, and the replies go out
right after. The ledger process applies the journal to the database.

No thread of its own: a group's write and sync take about 0.1-0.3 ms, during which
the event loop waits (with the GIL released), and the next wake-up's datagrams make
the next group. A hand-off to a storing thread cost more than that in CPU and in
waiting (the queue, the GIL going back and forth, the event loop woken again for the
bookkeeping), and left more threads than cores wanting the CPU under load
(bench/HISTORY.md). Same interface as AccountingWriter, so the listeners do not know
which they have.
"""

from __future__ import annotations

import collections
import logging

from vpop.accounting.leases import LeaseBook
from vpop.server.writer import answer_stored
from vpop.store.journal import Journal, encode_entry

log = logging.getLogger(__name__)


class JournalWriter:
    def __init__(self, journal: Journal, *, leases: LeaseBook | None = None):
        self.journal = journal
        self.book = leases  # the event loop's: a journaled Start holds its lease's place
        self.batches = 0
        self.failures = 0
        self.counts: collections.Counter[str] = collections.Counter()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    def submit(self, record, done, forward=None) -> None:
        self.submit_group([(record, done, forward)])

    def submit_group(self, batch: list) -> None:
        """Store (record, done, forward) items, then answer them; `done(ok)` for each."""
        try:
            last = self.journal.append([encode_entry(record, forward)
                                        for record, _, forward in batch])
            ok = True
        except Exception:
            log.exception("accounting batch of %d not journaled", len(batch))
            self.failures += len(batch)
            ok = False
        self.batches += 1
        if ok:
            self.counts["journaled"] += len(batch)
            answer_stored(batch, [True] * len(batch))
            if self.book is not None:
                starts = self._starts(batch, last)
                if starts:
                    self.book.journaled(starts)
        for _, done, _ in batch:
            done(ok)

    def _starts(self, batch: list, last: int) -> list[tuple[int, int]]:
        """(lease id, entry id) of the Starts in a stored batch (ids are consecutive)."""
        leases = self.book.leases
        if not len(leases):
            return []
        first = last - len(batch) + 1
        found = []
        for n, (record, _, _) in enumerate(batch):
            if record.status == "start" and record.routing.isp in leases.isps:
                lease = leases.match(record.routing.isp, record.nas_address,
                                     record.nas_port_number, record.event_time)
                if lease is not None:
                    found.append((lease.id, first + n))
        return found
