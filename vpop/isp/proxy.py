"""The proxy's upstream leg as a state machine: no sockets, no clock of its own.

forward() and poll() return actions for the shell: Transmit (a datagram to an ISP
server, vpop.radius.exchange) and Finished (an exchange ended: the upstream reply, or
None when every try went unanswered within the request's time budget). Identifiers,
pending requests, deadlines and the checks of a reply (Response Authenticator,
Message-Authenticator, our own Proxy-State) are the client-side exchange's
(vpop/radius/exchange.py); this module chooses the server, fails over and keeps the
pools' view of each server's health.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from vpop.errors import MalformedPacket
from vpop.isp.forwarding import upstream_attributes
from vpop.isp.model import Isp, UpstreamServer
from vpop.isp.pool import Pools
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.exchange import TOO_SHORT, Answer, Discarded, Exchange, Request

STICKY_SECONDS = 60.0  # how long an EAP State keeps its server (RFC 3579 §2.6.1)


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
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


class ProxyEngine:
    def __init__(self, pools: Pools, *, budget: float = 5.0, rng: random.Random | None = None,
                 token: bytes | None = None, sockets: int = 4):
        self.pools = pools
        self.budget = budget  # a request's whole time, all retries included
        # Choosing servers and identifiers needs no secrecy; authenticators do.
        self.rng = rng or random.Random()
        # Source ports: 256 requests in flight per server on each.
        self.exchange = Exchange(rng=self.rng, sockets=sockets,
                                 random_bytes=rng.randbytes if rng is not None else None)
        self.token = token or os.urandom(4)  # identifies this process's Proxy-States
        self._sticky: dict[bytes, tuple[str, float]] = {}
        self.observations: list[Observation] = []  # drained by the shell
        self._serial = 0
        self.counters = {"forwarded": 0, "answered": 0, "timeouts": 0, "bad_replies": 0,
                         "unmatched": 0, "exhausted": 0}

    @property
    def sockets(self) -> int:
        return self.exchange.sockets

    @property
    def pending(self) -> dict:
        """Upstream requests awaiting their reply, probes included."""
        return self.exchange.pending

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
        job.tried.add(server.name)
        state = self._state()

        def build(ident: int, authenticator: bytes) -> bytes:
            attrs = upstream_attributes(job.packet, nas_secret=job.nas_secret,
                                        secret=server.secret, authenticator=authenticator,
                                        user_name=job.user_name, proxy_state=state)
            return codec.encode_request(codec.ACCESS_REQUEST, ident, attrs, server.secret,
                                        authenticator=authenticator)
        try:
            send = self.exchange.send(
                (server.address, server.auth_port), build, secret=server.secret, now=now,
                deadline=min(now + window, job.deadline), context=(job, server),
                proxy_state=state,
                require_message_authenticator=server.require_message_authenticator)
        except (MalformedPacket, ValueError):
            self.counters["exhausted"] += 1
            return [Finished(job, None, None, b"")]
        if send is None:  # every identifier of every socket busy: try another server
            return self._attempt(job, now)
        self.counters["forwarded"] += 1
        return [send]

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

    # --- replies ----------------------------------------------------------------------

    def on_reply(self, data: bytes, addr: tuple, now: float, sock: int = 0) -> list:
        """A datagram on proxy socket `sock`: match it, check it, finish its exchange."""
        event = self.exchange.on_reply(data, addr, sock)
        if type(event) is not Answer:
            if type(event) is Discarded:
                # Left pending: the real answer may still come; a forgery must not win.
                self.counters["bad_replies"] += 1
                self.pools.bad_reply(event.request.context[1].name)
                self._observe(event.request, "invalid", None)
            elif event is TOO_SHORT:
                self.counters["bad_replies"] += 1
            else:
                self.counters["unmatched"] += 1
            return []
        request, reply = event.request, event.packet
        job, server = request.context
        elapsed = (now - request.sent) * 1000
        if job is None:
            self._observe(request, "probe", elapsed)
            self.pools.probe_answered(server.name, now)
            return []
        self.counters["answered"] += 1
        self._observe(request, "reject" if reply.code == codec.ACCESS_REJECT else "accept",
                      elapsed)
        self.pools.answered(server.name, now)
        if reply.code == codec.ACCESS_CHALLENGE:
            state = reply.first(A.STATE)
            if state is not None:
                if len(self._sticky) > 100_000:
                    self._expire_sticky(now)
                self._sticky[state] = (server.name, now + STICKY_SECONDS)
        return [Finished(job, reply, server, request.authenticator)]

    def replace_pools(self, pools: Pools) -> None:
        """After a reload: new ISPs and servers; exchanges in flight carry on."""
        self.pools = pools

    # --- time -------------------------------------------------------------------------

    def poll(self, now: float) -> list:
        """Expire unanswered requests (retrying elsewhere), and send due probes."""
        actions = []
        for timeout in self.exchange.expire(now):
            request = timeout.request
            job, server = request.context
            if job is None:
                self._observe(request, "probe-lost", None)
                self.pools.probe_unanswered(server.name, now)
                continue
            self._observe(request, "timeout", None)
            self.counters["timeouts"] += 1
            self.pools.timed_out(server.name, now)
            actions.extend(self._attempt(job, now))
        for server in self.pools.probes_due(now):
            actions.extend(self._probe(server, now))
        return actions

    def _probe(self, server: UpstreamServer, now: float) -> list:
        """RFC 5997 Status-Server, with our Proxy-State and a Message-Authenticator."""
        state = self._state()
        probe = codec.attribute(A.PROXY_STATE, state)

        def build(ident: int, authenticator: bytes) -> bytes:
            return codec.encode_request(codec.STATUS_SERVER, ident, probe, server.secret,
                                        authenticator=authenticator)
        send = self.exchange.send(
            (server.address, server.auth_port), build, secret=server.secret, now=now,
            deadline=now + self.pools.settings.response_window, context=(None, server),
            proxy_state=state,
            require_message_authenticator=server.require_message_authenticator)
        return [send] if send is not None else []

    def _state(self) -> bytes:
        """Our Proxy-State: this process's token and a counter; unique, not secret
        (the reply's authenticators are what prove it came from the server)."""
        self._serial = (self._serial + 1) & 0xFFFFFFFF
        return self.token + self._serial.to_bytes(4, "big")

    def _observe(self, request: Request, outcome: str, ms: float | None) -> None:
        name = request.context[1].name
        self.observations.append(Observation(request.sent, self.pools.isp_of.get(name, ""),
                                             name, outcome, ms))

    def _expire_sticky(self, now: float) -> None:
        self._sticky = {k: v for k, v in self._sticky.items() if v[1] >= now}
