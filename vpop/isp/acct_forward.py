"""Accounting for proxy-mode ISPs, forwarded from a durable queue (RFC 2866 §2, §5.2).

A record is queued in the same transaction that stores it, so once the NAS has its
Accounting-Response nothing is lost, however long the ISP is away. This module
decides what to send and what a reply means; the shell reads and updates the queue.

Per session, one record is in flight at a time, oldest first, so the ISP sees each
session's records in order, and the next one goes only once the ISP's answer to the
last is committed (`settled`): a crash never resends a record known to be delivered.

Each new datagram is an `Attempt` the shell stores before it sends it. A record sent
again to the same server within `resend_window` seconds of building it, after a
timeout or a crash, goes byte for byte as before (Identifier, Request Authenticator,
Acct-Delay-Time, as RFC 2866 §3 asks of a retransmission; the shell keeps the source
port), so an ISP that detects duplicates (RFC 5080 §2.2.2) recognises one whose answer
was lost. Later, or to another server, it is built anew, with a new Identifier and
Acct-Delay-Time as the time since the NAS's event (its own delay plus the time queued;
RFC 2866 §5.2): no ISP remembers the first copy that long (RFC 5080 §2.2.2: at most
30 seconds), and the delay it is told stays true. An Identifier that may still be
resent as it was is not given to another record meanwhile (RFC 5080 §2.2.2: a new
Request Authenticator under it would make the ISP forget the first).

Identifiers, what is in flight, deadlines and the checks of an answer are the
client-side exchange's (vpop/radius/exchange.py); the resend window, the order per
session and the choice of server are this module's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

from vpop.accounting.routing import own_class_index
from vpop.errors import MalformedPacket
from vpop.isp.pool import ALIVE, Pools
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.exchange import TOO_SHORT, Address, Answer, Discarded, Exchange, Transmit

SKIP = frozenset({A.MESSAGE_AUTHENTICATOR, A.PROXY_STATE, A.ACCT_DELAY_TIME})
MAX_BACKOFF = 60.0
RESEND_WINDOW = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardOrder:
    """A record owed to a proxy-mode ISP, as the receiver hands it on with the record:
    queued in the transaction that stores the record."""
    isp: str
    session_key: str  # the session's key: records of one session go in order
    attrs: bytes  # the NAS's attributes, Acct-Delay-Time and signatures left out
    delay: int  # Acct-Delay-Time the NAS sent
    received: float  # seconds since the epoch, when vpop took it


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedRecord:
    id: int
    isp: str
    session: str  # the session's key: records of one session go in order
    attrs: bytes  # the NAS's attributes, Acct-Delay-Time and signatures left out
    delay: int  # Acct-Delay-Time the NAS sent
    received: float  # seconds since the epoch, when vpop stored it
    attempts: int = 0
    # The last attempt, as stored before it was sent: server, datagram, when built.
    server: str = ""
    datagram: bytes = b""
    built: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """A new datagram: the shell stores it, then sends `send`."""
    id: int
    server: str
    built: float  # seconds since the epoch; its Acct-Delay-Time is as of then
    retry_at: float  # when the record is due again if no answer comes, even after a crash
    send: Transmit


@dataclass(frozen=True, slots=True)
class Delivered:
    id: int


@dataclass(frozen=True, slots=True)
class Retry:
    id: int
    attempts: int
    not_before: float  # seconds since the epoch


def queued_attributes(packet: codec.Packet, user_name: bytes | None = None) -> bytes:
    """What is kept of the NAS's Accounting-Request for the ISP: not our own routing
    Class, which is no concern of the ISP's (and one running vpop would take it for its
    own, vpop.accounting.routing.own_class_index)."""
    out = []
    for key, values in packet.attrs.items():
        if key in SKIP:
            continue
        if key == A.USER_NAME and user_name is not None:
            values = [user_name]
        if key == A.CLASS:
            own = own_class_index(values)
            values = [v for n, v in enumerate(values) if n != own]
        for value in values:
            out.append(codec.vendor_attribute(key[0], key[1], value) if isinstance(key, tuple)
                       else codec.attribute(key, value))
    return b"".join(out)


def backoff(attempts: int) -> float:
    """Seconds before the next try: 1, 2, 4 ... up to a minute."""
    return min(MAX_BACKOFF, 2.0 ** max(0, attempts - 1))


class AccountingForwarder:
    def __init__(self, pools: Pools, *, resend_window: float = RESEND_WINDOW,
                 rng: random.Random | None = None):
        self.pools = pools
        self.resend_window = resend_window
        self.rng = rng or random.SystemRandom()
        # One source port. A request's context: (record, server name, when built).
        self.exchange = Exchange(rng=self.rng)
        self.settling: dict[int, str] = {}  # answered, not yet committed: id -> session
        # Identifiers of datagrams that may still be resent as they are, per destination:
        # identifier -> until when (wall clock)
        self._reserved: dict[Address, dict[int, float]] = {}
        self._sessions: set[str] = set()
        self.counters = {"sent": 0, "resent": 0, "delivered": 0, "timeouts": 0,
                         "bad_replies": 0}

    @property
    def in_flight(self) -> dict:
        """The datagrams awaiting the ISP's answer."""
        return self.exchange.pending

    @property
    def pending(self) -> bool:
        """Something is in flight, or answered and not yet committed."""
        return bool(self.exchange.pending or self.settling)

    def remember(self, records: list[QueuedRecord]) -> None:
        """At start: the datagrams stored by an earlier run that may be resent as they
        are keep their Identifiers from new records."""
        for record in records:
            health = self.pools.health.get(record.server) if record.server else None
            if record.datagram and health is not None:
                self._reserve(_address(health.server), record.datagram[1], record.built)

    def offer(self, records: list[QueuedRecord], now: float, wallclock: float) -> list:
        """Send what may go now; `records` are due, oldest first."""
        actions = []
        deadline = now + self.pools.settings.response_window
        for record in records:
            if record.session in self._sessions:
                continue  # this session has a record in flight or not yet settled
            server = self._server_for(record)
            if server is None or not server.acct_port:
                actions.append(Retry(record.id, record.attempts + 1,
                                     wallclock + backoff(record.attempts + 1)))
                continue
            addr = _address(server)
            if self._resendable(record, server, wallclock):
                send = self.exchange.resend(record.datagram, addr, secret=server.secret,
                                            now=now, deadline=deadline,
                                            context=(record, server.name, record.built))
                if send is None:
                    continue  # its Identifier is out with another record: wait for it
                self._flying(record, addr, send)
                self.counters["resent"] += 1
                actions.append(send)
                continue
            # RFC 2866 §3, §5.2: new contents (Acct-Delay-Time), a new Identifier.
            again = record.datagram[1] if record.datagram and record.server == server.name \
                else None
            delay = record.delay + max(0, int(wallclock - record.received))
            attrs = record.attrs + codec.attribute(A.ACCT_DELAY_TIME,
                                                   min(delay, 0xFFFFFFFF).to_bytes(4, "big"))
            send = self.exchange.send(addr, partial(_accounting_request, attrs, server.secret),
                                      secret=server.secret, now=now, deadline=deadline,
                                      context=(record, server.name, wallclock),
                                      avoid=self._avoid(addr, wallclock, again))
            if send is None:
                continue  # every Identifier toward this server is taken for now
            self._flying(record, addr, send)
            self.counters["sent"] += 1
            actions.append(Attempt(record.id, server.name, wallclock,
                                   wallclock + self.pools.settings.response_window, send))
        return actions

    def _server_for(self, record: QueuedRecord):
        """The server of the last attempt while it is alive (it may hold the record and
        recognise the resend), else the ISP's choice."""
        isp = self.pools.isps.get(record.isp)
        if isp is None:
            return None
        health = self.pools.health.get(record.server) if record.server else None
        if health is not None and health.status == ALIVE and \
                self.pools.isp_of.get(record.server) == record.isp:
            return health.server
        return self.pools.choose(isp, key=record.session, rng=self.rng)

    def _resendable(self, record: QueuedRecord, server, wallclock: float) -> bool:
        if not record.datagram or record.server != server.name or \
                wallclock - record.built >= self.resend_window:
            return False
        try:  # still signed with this server's secret (it may have been changed)
            return codec.request_authenticator_ok(codec.decode(record.datagram), server.secret)
        except MalformedPacket:
            return False

    def _flying(self, record: QueuedRecord, addr: Address, send: Transmit) -> None:
        reserved = self._reserved.get(addr)
        if reserved is not None:
            reserved.pop(send.data[1], None)
        self._sessions.add(record.session)

    def _reserve(self, addr: Address, ident: int, built: float) -> None:
        until = built + self.resend_window
        reserved = self._reserved.setdefault(addr, {})
        if until > reserved.get(ident, 0.0):
            reserved[ident] = until

    def _avoid(self, addr: Address, wallclock: float, again: int | None) -> set[int]:
        """Identifiers a new datagram toward `addr` must not take: those that may still
        be resent as they were, and the record's own last one."""
        avoid = {ident for ident, until in self._reserved.get(addr, {}).items()
                 if until > wallclock}
        if again is not None:
            avoid.add(again)
        return avoid

    def abandon(self, ids: list[int]) -> None:
        """Attempts the shell could not store, so did not send: as if never offered."""
        gone = set(ids)
        for request in list(self.exchange.pending.values()):
            record = request.context[0]
            if record.id in gone:
                self.exchange.cancel(request)
                self._sessions.discard(record.session)
                self.counters["sent"] -= 1

    def on_reply(self, data: bytes, addr: tuple, now: float) -> list:
        event = self.exchange.on_reply(data, addr)
        if type(event) is Answer:
            record, server, _ = event.request.context
            # The session's next record waits until this one is committed as delivered.
            self.settling[record.id] = record.session
            self.pools.answered(server, now)
            self.counters["delivered"] += 1
            return [Delivered(record.id)]
        if type(event) is Discarded:
            self.counters["bad_replies"] += 1
            self.pools.bad_reply(event.request.context[1])
        elif event is TOO_SHORT:
            self.counters["bad_replies"] += 1
        return []

    def settled(self, ids: list[int]) -> None:
        """These records' delivered marks are committed: their sessions may go on."""
        for record_id in ids:
            session = self.settling.pop(record_id, None)
            if session is not None:
                self._sessions.discard(session)

    def poll(self, now: float, wallclock: float) -> list:
        """Unanswered records go back to the queue with a later time."""
        for addr, reserved in list(self._reserved.items()):
            for ident, until in list(reserved.items()):
                if until <= wallclock:
                    del reserved[ident]
            if not reserved:
                del self._reserved[addr]
        actions = []
        for timeout in self.exchange.expire(now):
            request = timeout.request
            record, server, built = request.context
            self._sessions.discard(record.session)
            self._reserve(request.addr, request.ident, built)
            self.counters["timeouts"] += 1
            self.pools.timed_out(server, now)
            attempts = record.attempts + 1
            actions.append(Retry(record.id, attempts, wallclock + backoff(attempts)))
        return actions


def _address(server) -> Address:
    return (server.address, server.acct_port)


def _accounting_request(attrs: bytes, secret: bytes, ident: int, _authenticator: bytes) -> bytes:
    """RFC 2866 §3: the Request Authenticator is a hash over the packet, not the one given."""
    return codec.encode_request(codec.ACCOUNTING_REQUEST, ident, attrs, secret)
