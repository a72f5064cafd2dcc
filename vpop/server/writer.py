"""Durable accounting: one thread commits records in groups, then lets replies go.

Group commit: every record waiting when a transaction starts shares it, so the
cost of a durable commit is spread over many requests without acknowledging any
record before it is on disk.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from vpop.store.accounting import apply_record

log = logging.getLogger(__name__)
_STOP = object()


class AccountingWriter:
    def __init__(self, sessions: sessionmaker[Session], notify: Callable[[Callable[[], None]], None],
                 max_batch: int = 1000):
        self.sessions = sessions
        self.notify = notify  # runs a callback on the event loop thread
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="accounting-writer", daemon=True)
        self.batches = 0
        self.failures = 0

    def start(self) -> None:
        self.thread.start()

    def submit(self, record, done: Callable[[bool], None]) -> None:
        self.queue.put((record, done))

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self.queue.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            results = self._commit(batch)
            self.batches += 1
            self.notify(lambda b=batch, r=results: [done(ok) for (_, done), ok in zip(b, r)])

    def _commit(self, batch: list) -> list[bool]:
        try:
            with self.sessions.begin() as session:
                for record, _ in batch:
                    apply_record(session, record)
            return [True] * len(batch)
        except Exception:
            log.exception("accounting batch of %d failed; retrying one by one", len(batch))
        results = []
        for record, _ in batch:  # isolate the record that cannot be stored
            try:
                with self.sessions.begin() as session:
                    apply_record(session, record)
                results.append(True)
            except Exception:
                self.failures += 1
                log.exception("accounting record %s not stored", record.unique_id)
                results.append(False)
        return results
