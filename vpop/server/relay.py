"""The relay's I/O in a worker: an ISP's CoA/Disconnect sent on to the session's NAS
(vpop.dispatch.dynauth.RelayJob), the answer awaited on the event loop, and every
relayed request audited (dynauth_action, direction 'relayed', actor 'isp:<name>').

Each request goes from a socket of its own (the NAS sees a new source port, and its
answer cannot be taken for another's), through vpop.dynauth.attempt.Attempt on the
event loop (vpop.server.dynauth.send_async): tries of [dynauth] timeout seconds,
retransmitted byte for byte up to [dynauth] retries times.
The audit, and a Disconnect-ACK's mark on the session (its Stop is expected: vpop
closes it as Admin-Reset when the NAS's Stop gives no cause), are written by a thread
of the pool after the answer has gone to the ISP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from vpop.dynauth.attempt import Attempt
from vpop.dynauth.result import ACK, Result, failed
from vpop.server.dynauth import send_async
from vpop.store.dynauth import RELAYED, mark_disconnect_acked, record_action
from vpop.store.relay import relay_candidates

log = logging.getLogger(__name__)


def lookup_in(sessions) -> Callable:
    """relay_lookup for Deps: the store read a relayed request needs, in one
    transaction (run by the listener's thread pool)."""
    def lookup(query, isp):
        with sessions() as session:
            return relay_candidates(session, query, isp)
    return lookup


class RelayShell:
    def __init__(self, loop: asyncio.AbstractEventLoop, sessions, executor: Executor, *,
                 settings, dictionary, wallclock: Callable[[], float] = time.time):
        self.loop, self.sessions, self.executor = loop, sessions, executor
        self.settings = settings  # vpop.config.DynAuthSettings; replaced on a reload
        self.dictionary = dictionary
        self.wallclock = wallclock
        self.sending: set[asyncio.Future] = set()
        self.audits = 0  # audit writes not finished yet

    @property
    def in_flight(self) -> int:
        return len(self.sending) + self.audits

    def relay(self, job, done: Callable[[Result], None]) -> None:
        """Send `job`'s request (or take its refusal), then `done(result)` on the loop."""
        if job.refused is not None:
            self._finished(job, job.refused, done)
            return
        attempt = Attempt(job.request, job.endpoint, timeout=self.settings.timeout,
                          retries=self.settings.retries, dictionary=self.dictionary)
        task = asyncio.ensure_future(send_async(attempt))
        self.sending.add(task)

        def answered(task: asyncio.Future) -> None:
            self.sending.discard(task)
            if task.cancelled():
                return
            error = task.exception()
            result = task.result() if error is None else failed(
                f"relay failed: {error}", endpoint=str(job.endpoint))
            self._finished(job, result, done)
        task.add_done_callback(answered)

    def close(self) -> None:
        for task in list(self.sending):
            task.cancel()

    def _finished(self, job, result: Result, done: Callable[[Result], None]) -> None:
        if result.outcome != ACK:
            log.info("relayed %s from %s: %s", job.kind, job.peer.name, result.describe())
        try:
            done(result)  # the ISP's answer first
        except Exception:
            log.exception("answering %s failed", job.peer.name)
        self.audits += 1
        self.loop.run_in_executor(self.executor, self._audit, job, result,
                                  self.wallclock()).add_done_callback(self._audited)

    def _audit(self, job, result: Result, at: float) -> None:
        when = dt.datetime.fromtimestamp(at, dt.timezone.utc)
        facts = job.facts
        sent = job.request.text() if job.request is not None else ""
        with self.sessions.begin() as session:
            record_action(session, at=when, actor=job.peer.name, direction=RELAYED,
                          kind=job.kind, facts=facts, sent=sent, result=result,
                          reason=f"asked by {job.peer.name}" + (
                              f": {job.asked.replace(chr(10), ', ')}" if job.asked else ""),
                          isp=job.peer.isp.name)
            if result.outcome == ACK and job.kind == "disconnect" and facts is not None \
                    and facts.radacct_id is not None:
                mark_disconnect_acked(session, facts.radacct_id, when)

    def _audited(self, future: asyncio.Future) -> None:
        self.audits -= 1
        if not future.cancelled() and future.exception() is not None:
            log.warning("relayed request not audited: %s", future.exception())
