"""Drains the accounting queue toward proxy-mode ISPs (one worker runs it).

Each pass commits the delivered marks and retries gathered since the last one, only
then reads what is due (a session's next record waits for its predecessor's mark),
stores every new datagram and only then sends it. Datagrams go from one source port,
the same after a restart, so a record resent as it was looks to the ISP like the
retransmission it is.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Callable

from vpop.isp.acct_forward import AccountingForwarder, Attempt, Delivered, Retry
from vpop.radius.exchange import Transmit
from vpop.server.sockets import family_of, open_udp
from vpop.store import acct_forward as queue

log = logging.getLogger(__name__)
INTERVAL = 0.25
PURGE_INTERVAL = 3600.0
KEEP_DELIVERED = 7 * 86400.0  # long after any NAS stops retransmitting
FAMILIES = (socket.AF_INET, socket.AF_INET6)


def open_source_sockets(port: int, tries: int = 16) -> dict[int, socket.socket]:
    """An IPv4 and an IPv6 socket bound to one port; 0: one the kernel picks for both."""
    for _ in range(tries if port == 0 else 1):
        socks: dict[int, socket.socket] = {}
        chosen = port
        try:
            for family in FAMILIES:
                sock = socks[family] = open_udp(port=chosen, family=family)
                chosen = sock.getsockname()[1]
            return socks
        except OSError:
            for sock in socks.values():
                sock.close()
            if port:
                raise
    raise OSError(f"no UDP port free on both IPv4 and IPv6 in {tries} tries")


def bind_source(sessions, configured: int) -> dict[int, socket.socket]:
    """The configured port, else the one the queue says was used last, else a new one."""
    if configured:
        return open_source_sockets(configured)
    with sessions() as session:
        remembered = queue.last_source_port(session)
    if remembered:
        try:
            return open_source_sockets(remembered)
        except OSError as exc:
            log.warning("accounting to ISPs: source port %d, used before, is not free (%s); "
                        "records in flight at the last stop go again from another port, "
                        "where the ISP cannot tell them for retransmissions", remembered, exc)
    return open_source_sockets(0)


class ForwarderShell:
    def __init__(self, loop: asyncio.AbstractEventLoop, forwarder: AccountingForwarder,
                 sessions, *, source_port: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time):
        self.loop, self.forwarder, self.sessions = loop, forwarder, sessions
        self.clock, self.wallclock = clock, wallclock
        self.socks = bind_source(sessions, source_port)
        self.port = self.socks[socket.AF_INET].getsockname()[1]
        with sessions() as session:
            forwarder.remember(queue.resendable(session,
                                                wallclock() - forwarder.resend_window))
        for sock in self.socks.values():
            loop.add_reader(sock.fileno(), self._readable, sock)
        log.info("accounting to ISPs goes from source port %d", self.port)
        self._done: list[int] = []
        self._purged = 0.0
        self._retries: list[Retry] = []
        self._sending = True
        self._task = asyncio.ensure_future(self._run())

    @property
    def pending(self) -> bool:
        """Records in flight, or answered and not yet committed as delivered."""
        return self.forwarder.pending

    def stop_sending(self) -> None:
        """For a graceful stop: send nothing more; answers and timeouts still settle."""
        self._sending = False

    def close(self) -> None:
        self._task.cancel()
        for sock in self.socks.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()
        if self._done or self._retries:  # what the cancelled pass may not have committed
            try:
                self._commit(self._done, self._retries)
            except Exception as exc:
                log.warning("accounting to ISPs: delivered marks not stored at stop: %s", exc)

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self._handle(self.forwarder.on_reply(data, addr, self.clock()))

    def _handle(self, actions: list) -> None:
        for action in actions:
            if type(action) is Attempt:
                action = action.send
            if type(action) is Transmit:
                try:
                    self.socks[family_of(action.addr[0])].sendto(action.data, action.addr)
                except OSError as exc:
                    log.warning("sendto ISP accounting server %s: %s", action.addr[0], exc)
            elif type(action) is Delivered:
                self._done.append(action.id)
            elif type(action) is Retry:
                self._retries.append(action)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("accounting forwarder failed; retrying")

    async def _pass(self) -> None:
        self._handle(self.forwarder.poll(self.clock(), self.wallclock()))
        # Replies that arrive meanwhile are appended, and committed by the next pass.
        done, retries = self._done[:], self._retries[:]
        due = await self.loop.run_in_executor(None, self._exchange, done, retries)
        del self._done[:len(done)], self._retries[:len(retries)]
        self.forwarder.settled(done)
        if not self._sending:
            return
        actions = self.forwarder.offer(due, self.clock(), self.wallclock())
        attempts = [a for a in actions if type(a) is Attempt]
        if attempts:
            try:
                await self.loop.run_in_executor(None, self._store, attempts)
            except Exception:
                self.forwarder.abandon([a.id for a in attempts])
                self._handle([a for a in actions if type(a) is not Attempt])
                raise
        self._handle(actions)

    def _commit(self, done: list[int], retries: list[Retry]) -> None:
        now = self.wallclock()
        with self.sessions.begin() as session:
            queue.delivered(session, done, now)
            if self._purged + PURGE_INTERVAL < now:
                queue.purge(session, now - KEEP_DELIVERED)
                self._purged = now
            for retry in retries:
                queue.retry_later(session, retry.id, retry.attempts, retry.not_before)

    def _exchange(self, done: list[int], retries: list[Retry]) -> list:
        """In a thread: settle what was answered, then read what is due."""
        self._commit(done, retries)
        with self.sessions() as session:
            return queue.due(session, self.wallclock())

    def _store(self, attempts: list[Attempt]) -> None:
        """In a thread: every new datagram is durable before it is sent."""
        with self.sessions.begin() as session:
            queue.sending(session, attempts, self.port)
