"""Accounting acknowledged from the journal: one thread stores records in groups,
then lets their replies go.

Group commit as in the direct writer (vpop/server/writer.py), but the transaction
is a batch of rows appended to the journal file (vpop/store/journal.py): a few
microseconds a record and one fsync a batch. The ledger process applies them to the
database. Same interface as AccountingWriter, so the listeners do not know which
they have.
"""

from __future__ import annotations

import logging
from typing import Callable

from vpop.accounting.leases import LeaseBook
from vpop.server.writer import GroupingThread, answer_stored
from vpop.store.journal import Journal, encode_entry

log = logging.getLogger(__name__)


class JournalWriter(GroupingThread):
    def __init__(self, journal: Journal, notify: Callable[[Callable[[], None]], None], *,
                 max_batch: int = 1000, leases: LeaseBook | None = None):
        super().__init__("accounting-journal", max_batch)
        self.journal = journal
        self.notify = notify  # runs a callback on the event loop thread
        self.book = leases  # the event loop's: a journaled Start holds its lease's place

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self.take()
            if batch:
                self._store(batch)

    def _store(self, batch: list) -> None:
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
        starts = self._starts(batch, last) if ok and self.book is not None else []

        def finish() -> None:
            if starts:
                self.book.journaled(starts)
            for _, done, _ in batch:
                done(ok)
        self.notify(finish)

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
