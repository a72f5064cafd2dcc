"""Accounting for proxy-mode ISPs, forwarded from a durable queue (RFC 2866 §2, §5.2).

A record is queued in the same transaction that stores it, so once the NAS has its
Accounting-Response nothing is lost, however long the ISP is away. This module
decides what to send and what a reply means; the shell reads and updates the queue.
Per session, one record is in flight at a time, oldest first, so the ISP sees each
session's records in order. Each attempt carries Acct-Delay-Time as the time since
the NAS's event (the NAS's own delay plus the time queued).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vpop.errors import MalformedPacket
from vpop.isp.pool import Pools
from vpop.isp.proxy import SendUpstream
from vpop.radius import attributes as A
from vpop.radius import codec

SKIP = frozenset({A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE, A.ACCT_DELAY_TIME})
MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedRecord:
    id: int
    isp: str
    session: str  # the session's key: records of one session go in order
    attrs: bytes  # the NAS's attributes, Acct-Delay-Time and signatures left out
    delay: int  # Acct-Delay-Time the NAS sent
    received: float  # seconds since the epoch, when vpop stored it
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Delivered:
    id: int


@dataclass(frozen=True, slots=True)
class Retry:
    id: int
    attempts: int
    not_before: float  # seconds since the epoch


def queued_attributes(packet: codec.Packet, user_name: bytes | None = None) -> bytes:
    """What is kept of the NAS's Accounting-Request for the ISP."""
    out = []
    for key, values in packet.attrs.items():
        if key in SKIP:
            continue
        if key == A.USER_NAME and user_name is not None:
            values = [user_name]
        for value in values:
            out.append(codec.vendor_attribute(key[0], key[1], value) if isinstance(key, tuple)
                       else codec.attribute(key, value))
    return b"".join(out)


def backoff(attempts: int) -> float:
    """Seconds before the next try: 1, 2, 4 ... up to a minute."""
    return min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1))


@dataclass(slots=True)
class _InFlight:
    record: QueuedRecord
    server: str
    ident: int
    authenticator: bytes
    expires: float


class AccountingForwarder:
    def __init__(self, pools: Pools, *, rng: random.Random | None = None):
        self.pools = pools
        self.rng = rng or random.SystemRandom()
        self.in_flight: dict[tuple[str, int], _InFlight] = {}
        self._sessions: set[str] = set()
        self.counters = {"sent": 0, "delivered": 0, "timeouts": 0, "bad_replies": 0}

    def busy(self, record_id: int) -> bool:
        return any(f.record.id == record_id for f in self.in_flight.values())

    def offer(self, records: list[QueuedRecord], now: float, wallclock: float) -> list:
        """Send what may go now; `records` are due, oldest first."""
        actions = []
        for record in records:
            if record.session in self._sessions:
                continue  # an older record of this session is still on its way
            isp = self.pools.isps.get(record.isp)
            server = None
            if isp is not None:
                server = self.pools.choose(isp, key=record.session, rng=self.rng)
            if server is None or not server.acct_port:
                actions.append(Retry(record.id, record.attempts + 1,
                                     wallclock + backoff(record.attempts + 1)))
                continue
            ident = self._ident(server.name)
            if ident is None:
                break
            delay = record.delay + max(0, int(wallclock - record.received))
            attrs = record.attrs + codec.attribute(A.ACCT_DELAY_TIME,
                                                   min(delay, 0xFFFFFFFF).to_bytes(4, "big"))
            data = codec.encode_request(codec.ACCOUNTING_REQUEST, ident, attrs, server.secret)
            self.in_flight[(server.name, ident)] = _InFlight(
                record, server.name, ident, data[4:20],
                now + self.pools.settings.response_window)
            self._sessions.add(record.session)
            self.counters["sent"] += 1
            actions.append(SendUpstream(data, (server.address, server.acct_port)))
        return actions

    def _ident(self, server: str) -> int | None:
        for _ in range(8):
            ident = self.rng.randrange(256)
            if (server, ident) not in self.in_flight:
                return ident
        free = [i for i in range(256) if (server, i) not in self.in_flight]
        return free[0] if free else None

    def on_reply(self, data: bytes, addr: tuple, now: float) -> list:
        if len(data) < codec.MIN_LENGTH:
            self.counters["bad_replies"] += 1
            return []
        for (name, ident), flight in list(self.in_flight.items()):
            if ident != data[1]:
                continue
            server = self.pools.health[name].server if name in self.pools.health else None
            if server is None or (server.address, server.acct_port) != tuple(addr[:2]):
                continue
            try:
                ok = codec.reply_ok(data, flight.authenticator, server.secret) and \
                    data[0] == codec.ACCOUNTING_RESPONSE
            except MalformedPacket:
                ok = False
            if not ok:
                self.counters["bad_replies"] += 1
                self.pools.bad_reply(name)
                return []
            del self.in_flight[(name, ident)]
            self._sessions.discard(flight.record.session)
            self.pools.answered(name, now)
            self.counters["delivered"] += 1
            return [Delivered(flight.record.id)]
        return []

    def poll(self, now: float, wallclock: float) -> list:
        """Unanswered records go back to the queue with a later time."""
        actions = []
        for key, flight in list(self.in_flight.items()):
            if flight.expires > now:
                continue
            del self.in_flight[key]
            self._sessions.discard(flight.record.session)
            self.counters["timeouts"] += 1
            self.pools.timed_out(flight.server, now)
            attempts = flight.record.attempts + 1
            actions.append(Retry(flight.record.id, attempts, wallclock + backoff(attempts)))
        return actions
