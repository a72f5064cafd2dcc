"""A child process's life tied to its parent's: a SIGKILL'ed server leaves nothing behind.

Workers and the ledger ask the kernel for SIGKILL when the process that started them
dies (prctl PR_SET_PDEATHSIG). Without it, workers of a supervisor killed with SIGKILL
would go on answering on the shared ports beside the server started next.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Be killed when `parent` dies; False when it already has (the caller should exit)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's death goes unnoticed
        pass
    return os.getppid() == parent  # it may have died before the prctl


class Restarts:
    """When a child that died may start again. At once (within the supervisor's next
    look) after a long life; while it keeps dying young (its database, files or port
    gone), after a delay that doubles up to `longest`: a child that cannot start must
    not keep a CPU busy starting, nor fill the log."""

    def __init__(self, *, first: float = 0.2, longest: float = 30.0, settled: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.first, self.longest, self.settled, self.clock = first, longest, settled, clock
        self.delay = 0.0  # before the next start; grows while starts fail young
        self.started_at = clock()
        self.due_at: float | None = None  # set while a death waits for its restart

    def started(self) -> None:
        self.started_at = self.clock()
        self.due_at = None

    def died(self) -> float:
        """Note a death (once per death); the seconds until the next start."""
        now = self.clock()
        if self.due_at is None:
            if now - self.started_at >= self.settled:
                self.delay = 0.0
            else:
                self.delay = min(self.longest, max(self.first, self.delay * 2))
            self.due_at = now + self.delay
            return self.delay
        return max(0.0, self.due_at - now)

    def due(self) -> bool:
        return self.due_at is not None and self.clock() >= self.due_at

    def start_again(self, log: logging.Logger, what: str, status) -> bool:
        """Note the death of `what` (logged once, with the delay), and whether it may
        start again now."""
        first_look = self.due_at is None
        delay = self.died()
        if first_look:
            log.error("%s exited with %s; starting a new one%s", what, status,
                      f" in {delay:.1f} s" if delay else "")
        return self.due()
