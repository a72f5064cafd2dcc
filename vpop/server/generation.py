"""A worker's side of the data generation (vpop.store.generation): about once a second
it looks whether provisioning made a new generation, loads the subscribers that
changed (or has everything loaded again), and reports the generation it serves.

What is read from the store runs in a thread; the swap runs on the event loop, the
only thread that reads the subscriber directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from vpop.aaa.subscribers import SubscriberChanges
from vpop.store import generation as generations
from vpop.store.snapshot import load_subscriber_changes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Look:
    """What a look at the generation found: nothing new, the changes of some
    subscribers, or a generation that needs everything loaded again."""

    generation: int
    changes: SubscriberChanges | None = None
    everything: bool = False


class GenerationFollower:
    def __init__(self, sessions, *, worker: int, host: str | None = None,
                 pid: int | None = None,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
                 clock: Callable[[], float] = time.monotonic):
        self.sessions = sessions
        self.worker = worker
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.now, self.clock = now, clock
        self.generation = 0  # the one this worker serves
        self._failed: int | None = None  # a generation whose load failed: not retried
        self._reported: tuple[int, float] | None = None  # (generation, when)

    def look(self, loaded: int) -> Look:
        """(In a thread.) The step from generation `loaded` to the current one."""
        with self.sessions() as session:
            state = generations.current(session)
            if state.generation == loaded or state.generation == self._failed:
                return Look(generation=loaded)
            if state.needs_everything(loaded):
                return Look(generation=state.generation, everything=True)
            names = generations.changed_subscribers(session, loaded, state.generation)
            return Look(generation=state.generation,
                        changes=load_subscriber_changes(session, names))

    def report(self) -> None:
        """(In a thread.) Record the generation served: at once when it changed, else
        every REPORT_INTERVAL seconds, so `vpop import` can tell this worker runs."""
        now = self.clock()
        if self._reported is not None and self._reported[0] == self.generation \
                and now - self._reported[1] < generations.REPORT_INTERVAL:
            return
        with self.sessions.begin() as session:
            generations.report_serving(session, host=self.host, pid=self.pid,
                                       worker=self.worker, generation=self.generation,
                                       now=self.now())
        self._reported = (self.generation, now)

    def forget(self, *, stale: bool = False) -> None:
        """(In a thread.) Remove this worker's row (it stops); with `stale`, also any
        row not refreshed for a day (processes gone without a word)."""
        before = self.now() - dt.timedelta(days=1) if stale else None
        with self.sessions.begin() as session:
            generations.forget_serving(session, host=self.host, pids=[self.pid], before=before)

    async def follow(self, directory: Callable[[], object],
                     load_everything: Callable[[], Awaitable[bool]],
                     lock: asyncio.Lock) -> None:
        """The worker's task: look, swap in what changed, report; every
        FOLLOW_INTERVAL seconds until cancelled. `load_everything()` is the worker's
        reload of its data (True when it succeeded), called holding `lock`, which keeps
        a reload and a swap from running at once."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with lock:
                    await self._step(loop, directory, load_everything)
                await loop.run_in_executor(None, self.report)
            except Exception as exc:  # the store may be away for a while
                log.warning("provisioning changes not followed: %s", exc)
            await asyncio.sleep(generations.FOLLOW_INTERVAL)

    async def _step(self, loop, directory, load_everything) -> None:
        started = self.clock()
        step = await loop.run_in_executor(None, self.look, self.generation)
        if step.generation == self.generation:
            return
        target = directory()
        if step.changes is not None and hasattr(target, "update"):
            target.update(step.changes)
            self.generation = step.generation
            log.info("generation %d: %d subscribers loaded in %.2f s", step.generation,
                     len(step.changes.accounts), self.clock() - started)
            return
        # The worker's reload sets self.generation to what it loaded.
        if not await load_everything():
            self._failed = step.generation
