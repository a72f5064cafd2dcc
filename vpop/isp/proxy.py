"""The proxy's upstream leg as a state machine: no sockets, no clock of its own.

forward() and poll() return actions for the shell: SendUpstream (a datagram to an
ISP server) and Finished (an exchange ended: the upstream reply, or None when every
try went unanswered within the request's time budget). Replies are matched by
(server, identifier) and checked: Response Authenticator, Message-Authenticator,
and our own Proxy-State.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from vpop.isp.forwarding import upstream_attributes
from vpop.isp.model import Isp, UpstreamServer
from vpop.isp.pool import Pools
from vpop.errors import MalformedPacket
from vpop.radius import attributes as A
from vpop.radius import codec

REPLY_CODES = frozenset({codec.ACCESS_ACCEPT, codec.ACCESS_REJECT, codec.ACCESS_CHALLENGE})
STICKY_SECONDS = 60.0  # how long an EAP State keeps its server (RFC 3579 §2.6.1)


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True)
class SendUpstream:
    data: bytes
    addr: tuple[str, int]
    sock: int = 0  # which of the shell's source sockets: each has 256 identifiers


@dataclass(slots=True)
class Finished:
    job: "ProxyJob"
    reply: codec.Packet | None  # None: no server answered in time
    server: UpstreamServer | None
    authenticator: bytes  # the upstream request's, to open hidden reply attributes


@dataclass(slots=True)
class Observation:
    """One measured exchange for the QoS monitor (vpop/isp/qos.py)."""
    at: float  # the engine's clock, when the exchange started
    isp: str
    server: str
    outcome: str  # accept | reject | timeout | invalid | probe | probe-lost
    ms: float | None = None  # response time or Status-Server round trip


@dataclass(slots=True, kw_only=True)
class ProxyJob:
    """One NAS request being proxied; `context` is the shell's, carried back as is."""
    packet: codec.Packet
    nas_secret: bytes
    isp: Isp
    user_name: bytes | None  # upstream User-Name (realm stripped or rewritten)
    key: str = ""  # for keyed balance: Calling-Station-Id
    deadline: float = 0.0
    tried: set[str] = field(default_factory=set)
    context: Any = None


@dataclass(slots=True)
class _Pending:
    job: ProxyJob | None  # None: a Status-Server probe
    server: UpstreamServer
    sock: int
    ident: int
    authenticator: bytes
    proxy_state: bytes
    sent: float
    expires: float

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.server.name, self.sock, self.ident)


class ProxyEngine:
    def __init__(self, pools: Pools, *, budget: float = 5.0, rng: random.Random | None = None,
                 token: bytes | None = None, sockets: int = 4):
        self.pools = pools
        self.budget = budget  # a request's whole time, all retries included
        # Choosing servers and identifiers needs no secrecy; authenticators do.
        self.rng = rng or random.Random()
        self.random_bytes = rng.randbytes if rng is not None else codec.RandomBytes()
        self.token = token or os.urandom(4)  # identifies this process's Proxy-States
        self.sockets = sockets  # source ports: 256 requests in flight per server on each
        self.pending: dict[tuple[str, int, int], _Pending] = {}
        self._by_addr = _server_index(pools)
        self._next_ident: dict[str, int] = {}  # per server: next (socket * 256 + ident)
        self._sticky: dict[bytes, tuple[str, float]] = {}
        self.observations: list[Observation] = []  # drained by the shell
        self._serial = 0
        self.counters = {"forwarded": 0, "answered": 0, "timeouts": 0, "bad_replies": 0,
                         "unmatched": 0, "exhausted": 0}

    # --- requests ---------------------------------------------------------------------

    def forward(self, job: ProxyJob, now: float) -> list:
        job.deadline = now + self.budget
        return self._attempt(job, now)

    def _attempt(self, job: ProxyJob, now: float) -> list:
        server = self._sticky_server(job, now) or self.pools.choose(
            job.isp, key=job.key, exclude=job.tried, rng=self.rng)
        window = self.pools.settings.response_window
        if server is None or now + min(window, 0.05) > job.deadline:
            self.counters["exhausted"] += 1
            return [Finished(job, None, None, b"")]
        slot = self._slot(server)
        if slot is None:  # every identifier of every socket busy: try another server
            job.tried.add(server.name)
            return self._attempt(job, now)
        sock, ident = slot
        job.tried.add(server.name)
        authenticator = self.random_bytes(16)  # RFC 2865 §3: unpredictable
        state = self._state(ident)
        try:
            attrs = upstream_attributes(job.packet, nas_secret=job.nas_secret,
                                        secret=server.secret, authenticator=authenticator,
                                        user_name=job.user_name, proxy_state=state)
            data = codec.encode_request(codec.ACCESS_REQUEST, ident, attrs, server.secret,
                                        authenticator=authenticator)
        except (MalformedPacket, ValueError):
            self.counters["exhausted"] += 1
            return [Finished(job, None, None, b"")]
        pending = _Pending(job, server, sock, ident, authenticator, state, now,
                           min(now + window, job.deadline))
        self.pending[pending.key] = pending
        self.counters["forwarded"] += 1
        return [SendUpstream(data, (server.address, server.auth_port), sock)]

    def _sticky_server(self, job: ProxyJob, now: float) -> UpstreamServer | None:
        """EAP rounds stay on the server that holds the conversation (its State)."""
        state = job.packet.first(A.STATE)
        if state is None:
            return None
        entry = self._sticky.get(state)
        if entry is None or entry[1] < now or entry[0] in job.tried:
            return None
        health = self.pools.health.get(entry[0])
        return health.server if health is not None and health.status != "dead" else None

    def _slot(self, server: UpstreamServer) -> tuple[int, int] | None:
        """A free (socket, identifier) toward this server, round robin."""
        size = 256 * self.sockets
        start = self._next_ident.get(server.name, self.rng.randrange(size))
        for step in range(size):
            slot = (start + step) % size
            sock, ident = divmod(slot, 256)
            if (server.name, sock, ident) not in self.pending:
                self._next_ident[server.name] = (slot + 1) % size
                return sock, ident
        return None

    # --- replies ----------------------------------------------------------------------

    def on_reply(self, data: bytes, addr: tuple, now: float, sock: int = 0) -> list:
        """A datagram on proxy socket `sock`: match it, check it, finish its exchange."""
        if len(data) < codec.MIN_LENGTH:
            self.counters["bad_replies"] += 1
            return []
        pending = self._match(sock, data[1], addr)
        if pending is None:
            self.counters["unmatched"] += 1
            return []
        server = pending.server
        try:
            reply = codec.decode(data)
            valid = codec.response_ok(reply, pending.authenticator, server.secret,
                                      to_status_server=pending.job is None)
        except MalformedPacket:
            valid = False
        if valid:
            states = reply.attrs.get(A.PROXY_STATE, ())
            valid = bool(states) and states[-1] == pending.proxy_state
            if pending.job is None:
                valid = valid or not states  # RFC 5997 replies need not echo it
            if reply.ma_offset < 0 and server.require_message_authenticator:
                # BlastRADIUS: an unsigned Access-* reply could be forged; so could a
                # Status-Server answer, which would bring a dead server back.
                valid = False
        if not valid:
            # Left pending: the real answer may still come; a forgery must not win.
            self.counters["bad_replies"] += 1
            self.pools.bad_reply(server.name)
            self._observe(pending, "invalid", None)
            return []
        del self.pending[pending.key]
        elapsed = (now - pending.sent) * 1000
        if pending.job is None:
            self._observe(pending, "probe", elapsed)
            self.pools.probe_answered(server.name, now)
            return []
        if reply.code not in REPLY_CODES:
            self.counters["bad_replies"] += 1
            return self._attempt(pending.job, now)
        self.counters["answered"] += 1
        self._observe(pending, "reject" if reply.code == codec.ACCESS_REJECT else "accept",
                      elapsed)
        self.pools.answered(server.name, now)
        if reply.code == codec.ACCESS_CHALLENGE:
            state = reply.first(A.STATE)
            if state is not None:
                if len(self._sticky) > 100_000:
                    self._expire_sticky(now)
                self._sticky[state] = (server.name, now + STICKY_SECONDS)
        return [Finished(pending.job, reply, server, pending.authenticator)]

    def _match(self, sock: int, ident: int, addr: tuple) -> _Pending | None:
        host, port = addr[0], addr[1]
        for name in self._names_at(host, port):
            pending = self.pending.get((name, sock, ident))
            if pending is not None:
                return pending
        return None

    def _names_at(self, host: str, port: int) -> list[str]:
        return self._by_addr.get((host, port), [])

    def replace_pools(self, pools: Pools) -> None:
        """After a reload: new ISPs and servers; exchanges in flight carry on."""
        self.pools = pools
        self._by_addr = _server_index(pools)

    # --- time -------------------------------------------------------------------------

    def poll(self, now: float) -> list:
        """Expire unanswered requests (retrying elsewhere), and send due probes."""
        actions = []
        expired = [p for p in self.pending.values() if p.expires <= now]
        for pending in expired:
            del self.pending[pending.key]
            if pending.job is None:
                self._observe(pending, "probe-lost", None)
                self.pools.probe_unanswered(pending.server.name, now)
                continue
            self._observe(pending, "timeout", None)
            self.counters["timeouts"] += 1
            self.pools.timed_out(pending.server.name, now)
            actions.extend(self._attempt(pending.job, now))
        for server in self.pools.probes_due(now):
            actions.extend(self._probe(server, now))
        return actions

    def _probe(self, server: UpstreamServer, now: float) -> list:
        slot = self._slot(server)
        if slot is None:
            return []
        sock, ident = slot
        authenticator = self.random_bytes(16)
        state = self._state(ident)
        data = codec.encode_request(codec.STATUS_SERVER, ident,
                                    codec.attribute(A.PROXY_STATE, state), server.secret,
                                    authenticator=authenticator)
        window = self.pools.settings.response_window
        pending = _Pending(None, server, sock, ident, authenticator, state, now, now + window)
        self.pending[pending.key] = pending
        return [SendUpstream(data, (server.address, server.auth_port), sock)]

    def _state(self, ident: int) -> bytes:
        """Our Proxy-State: this process's token and a counter; unique, not secret
        (the reply's authenticators are what prove it came from the server)."""
        self._serial = (self._serial + 1) & 0xFFFFFF
        return self.token + ident.to_bytes(1, "big") + self._serial.to_bytes(3, "big")

    def _observe(self, pending: _Pending, outcome: str, ms: float | None) -> None:
        name = pending.server.name
        self.observations.append(Observation(pending.sent, self.pools.isp_of.get(name, ""),
                                             name, outcome, ms))

    def _expire_sticky(self, now: float) -> None:
        self._sticky = {k: v for k, v in self._sticky.items() if v[1] >= now}


def _server_index(pools: Pools) -> dict[tuple[str, int], list[str]]:
    index: dict[tuple[str, int], list[str]] = {}
    for health in pools.health.values():
        server = health.server
        index.setdefault((server.address, server.auth_port), []).append(server.name)
    return index
