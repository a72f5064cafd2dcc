"""The proxy's sockets: carries out what vpop.isp.proxy.ProxyEngine decides, logs its
servers' state changes and stores them at once (for `vpop isp status`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from typing import Callable

from vpop.isp.pool import ServerState, Transition
from vpop.isp.proxy import Finished, ProxyEngine, ProxyJob
from vpop.isp.qos import QosRecorder
from vpop.radius.exchange import Transmit
from vpop.server.sockets import family_of, open_udp
from vpop.store import qos as qos_store

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.05  # how often timeouts and probes are looked at


class ProxyShell:
    def __init__(self, loop: asyncio.AbstractEventLoop, engine: ProxyEngine,
                 recv_buffer: int, clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time, sessions=None):
        self.loop, self.engine, self.clock, self.wallclock = loop, engine, clock, wallclock
        self.qos = QosRecorder()
        self.sessions = sessions  # where server states are stored (None: not stored)
        self._started = wallclock()
        self._known: set[str] = set()  # servers whose state was stored by this process
        self._unsaved: list[ServerState] = []
        self._saving = False
        # (family, index) -> socket: each index is a source port with its own 256 IDs.
        self.socks: dict[tuple[int, int], socket.socket] = {}
        for index in range(engine.sockets):
            for family in (socket.AF_INET, socket.AF_INET6):
                sock = self.socks[(family, index)] = open_udp(family=family,
                                                             recv_buffer=recv_buffer)
                loop.add_reader(sock.fileno(), self._readable, sock, index)
        self.callbacks: dict[int, Callable[[Finished], None]] = {}
        self._poller = asyncio.ensure_future(self._poll())

    def forward(self, job: ProxyJob, done: Callable[[Finished], None]) -> None:
        self.callbacks[id(job)] = done
        self._carry_out(self.engine.forward(job, self.clock()))

    @property
    def in_flight(self) -> int:
        return len(self.callbacks)

    def close(self) -> None:
        self._poller.cancel()
        for sock in self.socks.values():
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def _readable(self, sock: socket.socket, index: int) -> None:
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("proxy recvfrom: %s", exc)
                continue
            self._carry_out(self.engine.on_reply(data, addr, self.clock(), index))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                self._carry_out(self.engine.poll(self.clock()))
                transitions = self.engine.pools.take_changes()
                for event in transitions:
                    log.warning("upstream %s: %s -> %s (%s)", event.server, event.old,
                                event.new, event.reason)
                self._store_states(transitions)
                self._record_observations()
            except Exception:
                log.exception("proxy timer failed")

    def _store_states(self, transitions: list[Transition]) -> None:
        """The states the log just told, stored now rather than with the next QoS bucket;
        servers new to this process (at start, after a reload) with the state it gives
        them. One write at a time, in order; a failed one is logged and not retried."""
        if self.sessions is None:
            return
        now = self.wallclock()
        offset = now - self.clock()
        pools = self.engine.pools
        for name in pools.health.keys() - self._known:
            self._unsaved.append(ServerState(
                server=name, isp=pools.isp_of.get(name, ""), state=pools.health[name].status,
                since=_utc(now if self._known else self._started),
                reason="added" if self._known else "vpop started"))
        self._known = set(pools.health)
        self._unsaved += [ServerState(server=t.server, isp=pools.isp_of.get(t.server, ""),
                                      state=t.new, since=_utc(t.at + offset), reason=t.reason)
                          for t in transitions]
        if self._unsaved and not self._saving:
            batch, self._unsaved = self._unsaved, []
            self._saving = True
            self.loop.run_in_executor(None, self._write_states, batch).add_done_callback(
                self._written)

    def _write_states(self, states: list[ServerState]) -> None:
        with self.sessions.begin() as session:
            qos_store.record_states(session, states)

    def _written(self, future: asyncio.Future) -> None:
        self._saving = False
        if not future.cancelled() and future.exception() is not None:
            log.warning("upstream states not stored: %s", future.exception())

    def _record_observations(self) -> None:
        """Engine clock to wall clock, into the QoS monitor's buckets."""
        observations, self.engine.observations = self.engine.observations, []
        if not observations:
            return
        offset = self.wallclock() - self.clock()
        for o in observations:
            at = o.at + offset
            if o.outcome == "probe":
                self.qos.probe(o.isp, o.server, at=at, rtt_ms=o.ms)
            elif o.outcome == "probe-lost":
                self.qos.probe(o.isp, o.server, at=at, rtt_ms=None)
            else:
                self.qos.request(o.isp, o.server, at=at, outcome=o.outcome, response_ms=o.ms)

    def _carry_out(self, actions: list) -> None:
        for action in actions:
            if type(action) is Transmit:
                sock = self.socks[(family_of(action.addr[0]), action.sock)]
                try:
                    sock.sendto(action.data, action.addr)
                except OSError as exc:
                    log.warning("sendto upstream %s: %s", action.addr[0], exc)
            elif type(action) is Finished:
                done = self.callbacks.pop(id(action.job), None)
                if done is not None:
                    try:
                        done(action)
                    except Exception:
                        log.exception("relaying an upstream reply failed")


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
