"""Drains the accounting queue toward proxy-mode ISPs (one worker runs it)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Callable

from vpop.isp.acct_forward import AccountingForwarder, Delivered, Retry
from vpop.isp.proxy import SendUpstream
from vpop.store import acct_forward as queue

log = logging.getLogger(__name__)
INTERVAL = 0.25
PURGE_INTERVAL = 3600.0
KEEP_DELIVERED = 7 * 86400.0  # long after any NAS stops retransmitting


class ForwarderShell:
    def __init__(self, loop: asyncio.AbstractEventLoop, forwarder: AccountingForwarder,
                 sessions, *, clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time):
        self.loop, self.forwarder, self.sessions = loop, forwarder, sessions
        self.clock, self.wallclock = clock, wallclock
        self.socks: dict[int, socket.socket] = {}
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, 0))
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._readable, sock)
            self.socks[family] = sock
        self._done: list[int] = []
        self._purged = 0.0
        self._retries: list[Retry] = []
        self._task = asyncio.ensure_future(self._run())

    def close(self) -> None:
        self._task.cancel()
        for sock in self.socks.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()

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
            if type(action) is SendUpstream:
                family = socket.AF_INET6 if ":" in action.addr[0] else socket.AF_INET
                try:
                    self.socks[family].sendto(action.data, action.addr)
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
                self._handle(self.forwarder.poll(self.clock(), self.wallclock()))
                done, self._done = self._done, []
                retries, self._retries = self._retries, []
                due = await self.loop.run_in_executor(None, self._exchange, done, retries)
                fresh = [r for r in due if not self.forwarder.busy(r.id)]
                self._handle(self.forwarder.offer(fresh, self.clock(), self.wallclock()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("accounting forwarder failed; retrying")

    def _exchange(self, done: list[int], retries: list[Retry]) -> list:
        """In a thread: settle what was answered, then read what is due."""
        now = self.wallclock()
        with self.sessions.begin() as session:
            queue.delivered(session, done, now)
            if self._purged + PURGE_INTERVAL < now:
                queue.purge(session, now - KEEP_DELIVERED)
                self._purged = now
            for retry in retries:
                queue.retry_later(session, retry.id, retry.attempts, retry.not_before)
        with self.sessions() as session:
            return queue.due(session, self.wallclock())
