"""The client side of RADIUS over UDP: requests sent, awaited and answered; no I/O.

Used wherever vpop is the client: the proxy toward the ISPs' servers
(vpop/isp/proxy.py), the accounting forwarder (vpop/isp/acct_forward.py), and
CoA/Disconnect toward NASes. What to send where, and what a timeout means (another
server, a later try), is the caller's policy; this module keeps the wire's rules:

- Identifiers. A server tells requests apart, and recognises a retransmission, by
  the client's source address and port and the Identifier (RFC 2865 §3; RFC 5080
  §2.2.2 adds the Request Authenticator). So an Identifier is allocated per source
  socket *and* destination (address, port): requests in flight from one source port
  to one server have distinct Identifiers, while another server may be sent the same
  Identifier from the same port at the same time. Each source socket (`sockets`, an
  index the shell maps to its sockets, one per address family) adds 256 Identifiers
  toward every server. An Identifier is drawn at random among the free ones.
- Pending requests, each with its Request Authenticator, secret, deadline and the
  caller's context, keyed by (source socket, destination address, port, Identifier).
- Replies are matched by the socket they arrived on, the address and port they came
  from and their Identifier, then checked: the reply's code answers the request's
  (ANSWERS), the Response Authenticator and any Message-Authenticator
  (vpop.radius.codec.response_ok), a Message-Authenticator where the request asks
  for one (BlastRADIUS), and the caller's Proxy-State last where it gave one. A reply
  that fails is Discarded and its request stays pending: the real answer may still
  come, and a forgery must not end the exchange.
- Deadlines: expire(now) returns a Timeout per request past its deadline and forgets
  it; a reply that arrives later is Unmatched (or, if the slot was given to a new
  request meanwhile, Discarded against that request's authenticator).
  next_deadline() says when expire() has something to do.
- Retransmission (RFC 5080 §2.2.1, RFC 2866 §3): retransmit() sends a request again
  byte for byte (same Identifier and Request Authenticator), resend() takes up a
  datagram built earlier (stored across a restart, say); any change of contents is a
  new request with send(), hence a new Identifier (RFC 2866 §5.2).

Time (`now`) and randomness (`rng`, `random_bytes`) are the caller's; what to do is
returned as values: Transmit(data, addr, sock) and the events Answer, Discarded,
Unmatched and Timeout. Destination addresses must be written as the shell's
recvfrom reports a reply's source (canonical IP text), or replies will not match.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from vpop.errors import MalformedPacket
from vpop.radius import codec

IDENTIFIERS = 256  # RFC 2865 §3: one octet
DRAWS = 8  # random draws before the free Identifiers are searched in order

# The replies that answer each request (RFC 2865 §4, RFC 2866 §4, RFC 5176 §3;
# RFC 5997 §3: Status-Server on an authentication port is answered with
# Access-Accept, on an accounting port with Accounting-Response).
ANSWERS: dict[int, frozenset[int]] = {
    codec.ACCESS_REQUEST: frozenset({codec.ACCESS_ACCEPT, codec.ACCESS_REJECT,
                                     codec.ACCESS_CHALLENGE}),
    codec.ACCOUNTING_REQUEST: frozenset({codec.ACCOUNTING_RESPONSE}),
    codec.COA_REQUEST: frozenset({codec.COA_ACK, codec.COA_NAK}),
    codec.DISCONNECT_REQUEST: frozenset({codec.DISCONNECT_ACK, codec.DISCONNECT_NAK}),
    codec.STATUS_SERVER: frozenset({codec.ACCESS_ACCEPT, codec.ACCOUNTING_RESPONSE}),
}
_NONE: frozenset[int] = frozenset()

Address = tuple[str, int]


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True)
class Transmit:
    """A datagram for the shell to send from source socket `sock` to `addr`."""
    data: bytes
    addr: Address
    sock: int = 0


@dataclass(slots=True, eq=False)
class Request:
    """A request awaiting its reply; `context` is the caller's, carried back as is."""
    data: bytes  # the datagram as sent, for a retransmission
    addr: Address
    sock: int
    key: tuple[int, str, int, int]  # (sock, host, port, Identifier)
    authenticator: bytes  # the Request Authenticator: the reply's is keyed with it
    secret: bytes
    sent: float  # when first sent, on the caller's clock
    deadline: float
    context: Any = None
    proxy_state: bytes | None = None  # the reply must echo it last (RFC 2865 §5.33)
    require_message_authenticator: bool = False

    @property
    def ident(self) -> int:
        return self.data[1]

    @property
    def code(self) -> int:
        return self.data[0]


@dataclass(slots=True)
class Answer:
    """A verified reply; its request is no longer pending."""
    request: Request
    packet: codec.Packet


@dataclass(slots=True)
class Discarded:
    """A reply that matched a pending request but did not verify; the request stays."""
    request: Request
    reason: str


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A datagram that answers nothing pending (or is too short to say)."""
    reason: str


@dataclass(slots=True)
class Timeout:
    """A request past its deadline, no longer pending."""
    request: Request


TOO_SHORT = Unmatched("shorter than a RADIUS header")
UNKNOWN = Unmatched("no such request pending")


class Exchange:
    def __init__(self, *, rng: random.Random, sockets: int = 1,
                 random_bytes: Callable[[int], bytes] | None = None):
        if sockets < 1:
            raise ValueError("an exchange needs at least one source socket")
        self.sockets = sockets
        self._slots = IDENTIFIERS * sockets  # (source socket, Identifier) per destination
        self._socket = 0  # the source socket new requests go out on while it has room
        self.rng = rng  # Identifiers: no secrecy needed
        # Request Authenticators must be unpredictable (RFC 2865 §3).
        self.random_bytes = random_bytes or codec.RandomBytes()
        # In the order sent. Deadlines are found by a walk over it in expire(): what is
        # pending is at most 256 per source socket and server, and a shell looks a few
        # times a second, which costs less than keeping every request in a heap.
        self.pending: dict[tuple[int, str, int, int], Request] = {}

    def __len__(self) -> int:
        return len(self.pending)

    # --- sending ----------------------------------------------------------------------

    def send(self, addr: Address, build: Callable[[int, bytes], bytes], *, secret: bytes,
             now: float, deadline: float, context: Any = None,
             proxy_state: bytes | None = None, require_message_authenticator: bool = False,
             avoid: Container[int] = ()) -> Transmit | None:
        """A new request to `addr`: `build(identifier, authenticator)` makes the datagram
        (a hashed request, such as accounting or CoA, ignores the authenticator given
        and carries its own). None when every Identifier toward `addr` is pending on
        every source socket. `avoid`: Identifiers not to use, on any socket (ones that
        may still be resent as they were). An exception from `build` leaves nothing
        pending."""
        pending = self.pending
        # The first draw is nearly always free: taken here, without _free_slot's loop.
        # On the source socket in use: the answers then come to one socket, read in
        # one batch, not to every socket in turn (one wake-up of the loop each).
        sock, ident = self._socket, self.rng.getrandbits(8)
        key = (sock, addr[0], addr[1], ident)
        if key in pending or ident in avoid:
            slot = self._free_slot(addr, avoid)
            if slot is None:
                return None
            sock, ident = slot
            self._socket = sock
            key = (sock, addr[0], addr[1], ident)
        data = build(ident, self.random_bytes(16))
        if data[1] != ident:
            raise ValueError(f"request built with Identifier {data[1]}, not {ident}")
        pending[key] = Request(data, addr, sock, key, data[4:20], secret, now, deadline,
                               context, proxy_state, require_message_authenticator)
        return Transmit(data, addr, sock)

    def resend(self, data: bytes, addr: Address, *, secret: bytes, now: float,
               deadline: float, sock: int = 0, context: Any = None,
               proxy_state: bytes | None = None,
               require_message_authenticator: bool = False) -> Transmit | None:
        """A datagram built earlier, sent again as it is (RFC 5080 §2.2.1), pending from
        now on. None while its Identifier is pending with another request."""
        if len(data) < codec.MIN_LENGTH:
            raise ValueError("not a RADIUS datagram")
        key = (sock, addr[0], addr[1], data[1])
        if key in self.pending:
            return None
        self.pending[key] = Request(data, addr, sock, key, data[4:20], secret, now, deadline,
                                    context, proxy_state, require_message_authenticator)
        return Transmit(data, addr, sock)

    def retransmit(self, request: Request, *, deadline: float) -> Transmit | None:
        """The same request again, byte for byte, with a new deadline; a request that has
        timed out is pending again, unless its slot has been given to another (None)."""
        current = self.pending.get(request.key)
        if current is not request:
            if current is not None:
                return None
            self.pending[request.key] = request
        request.deadline = deadline
        return Transmit(request.data, request.addr, request.sock)

    def cancel(self, request: Request) -> None:
        """Forget a pending request (its Identifier is free again)."""
        if self.pending.get(request.key) is request:
            del self.pending[request.key]

    def _free_slot(self, addr: Address, avoid: Container[int]) -> tuple[int, int] | None:
        """A (source socket, Identifier) with nothing pending toward `addr`."""
        host, port = addr[0], addr[1]
        pending = self.pending
        size = self._slots
        draw = self.rng.randrange
        sock = self._socket  # first on the socket in use, then anywhere
        for _ in range(DRAWS):
            ident = draw(IDENTIFIERS)
            if (sock, host, port, ident) not in pending and ident not in avoid:
                return sock, ident
        start = draw(size)
        for step in range(size):
            sock, ident = divmod((start + step) % size, IDENTIFIERS)
            if (sock, host, port, ident) not in pending and ident not in avoid:
                return sock, ident
        return None

    # --- replies ----------------------------------------------------------------------

    def on_reply(self, data: bytes, addr: tuple, sock: int = 0) -> Answer | Discarded | Unmatched:
        """A datagram that arrived on source socket `sock` from `addr`."""
        if len(data) < codec.MIN_LENGTH:
            return TOO_SHORT
        request = self.pending.get((sock, addr[0], addr[1], data[1]))
        if request is None:
            return UNKNOWN
        try:
            packet = codec.decode(data)
        except MalformedPacket:
            return Discarded(request, "malformed")
        fault = _fault(packet, request)
        if fault:
            return Discarded(request, fault)
        del self.pending[request.key]
        return Answer(request, packet)

    # --- time -------------------------------------------------------------------------

    def expire(self, now: float) -> list[Timeout]:
        """The requests whose deadline has come, in the order sent; no longer pending."""
        pending = self.pending
        due = [request for request in pending.values() if request.deadline <= now]
        for request in due:
            del pending[request.key]
        return [Timeout(request) for request in due]

    def next_deadline(self) -> float | None:
        """When expire() next has something to do; None while nothing is pending."""
        return min((request.deadline for request in self.pending.values()), default=None)


def _fault(packet: codec.Packet, request: Request) -> str:
    """Why a reply does not answer `request`; empty when it does."""
    code = request.data[0]
    status_server = code == codec.STATUS_SERVER
    if not codec.response_ok(packet, request.authenticator, request.secret,
                             to_status_server=status_server):
        return "Response Authenticator or Message-Authenticator"
    if packet.code not in ANSWERS.get(code, _NONE):
        return f"code {packet.code} does not answer code {code}"
    if packet.ma_offset < 0 and request.require_message_authenticator:
        # BlastRADIUS: an unsigned reply could be forged; so could a Status-Server
        # answer, which would bring a dead server back.
        return "no Message-Authenticator"
    expected = request.proxy_state
    if expected is not None:
        states = packet.attrs.get(codec.PROXY_STATE)
        if states:
            if states[-1] != expected:
                return "not our Proxy-State"
        elif not status_server:  # RFC 5997 §3: a Status-Server answer need not echo it
            return "no Proxy-State"
    return ""
