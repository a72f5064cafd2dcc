#!/usr/bin/env python3
"""A NAS-like PAP client for fail-over measurements: fixed rate, retransmissions.

Unlike loadgen.py (a closed loop that counts a silent request as lost), this
sends new Access-Requests at a fixed rate and retransmits each unanswered one
as a NAS does: the same packet (Identifier, Request Authenticator, source port)
after `--retry-interval` seconds, up to `--retries` times, then gives up. A proxy
that relies on the NAS's retransmissions (FreeRADIUS re-sends or fails over
when a duplicate arrives) sees the same traffic as from a real NAS.

Every request's fate is kept: first sent, answered (and by which attempt), code.
`summarise(outcomes, t_event)` reduces them around an event such as the death of
an upstream server: the time until requests succeed again and what failed.

    nas_failover.py --target 127.0.0.1:1812 --user alice@isp-a.example \\
        --password alice-pass --rate 50 --duration 30
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import selectors
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

from vpop.errors import MalformedPacket
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.crypto import encrypt_user_password

IDS = 256


@dataclass(slots=True)
class Outcome:
    """One request from the NAS's point of view (times: seconds on the monotonic clock)."""
    sent: float  # first transmission
    attempts: int = 1
    answered: float | None = None
    code: int | None = None  # Access-Accept/Reject; None: no answer after every retry
    bad: bool = False  # an answer arrived that does not verify


@dataclass(frozen=True, slots=True, kw_only=True)
class Nas:
    host: str
    port: int
    secret: bytes
    user: str
    password: bytes
    rate: float  # new requests per second
    retries: int = 3  # retransmissions after the first attempt
    retry_interval: float = 5.0  # seconds between attempts (a NAS's "radius timeout")
    # An Identifier is reused on its source port no sooner than this after its request
    # ended; meanwhile another source port is opened, as a NAS with a pool of source ports
    # does. Reused sooner, a proxy sees a "conflicting packet" that cancels the old request
    # before its own timers run, and that is what would be measured instead of fail-over.
    id_reuse_delay: float = 60.0
    nas_ip: bytes = b"\x7f\x00\x00\x01"

    def request(self, ident: int) -> tuple[bytes, bytes]:
        authenticator = os.urandom(16)
        attrs = b"".join((
            codec.attribute(A.USER_NAME, self.user.encode()),
            codec.attribute(A.USER_PASSWORD,
                            encrypt_user_password(self.password, self.secret, authenticator)),
            codec.attribute(A.NAS_IP_ADDRESS, self.nas_ip),
        ))
        data = codec.encode_request(codec.ACCESS_REQUEST, ident, attrs, self.secret,
                                    authenticator=authenticator)
        return data, authenticator


@dataclass(slots=True)
class _Port:
    """One source port and its 256 Identifiers, like one RADIUS client socket of a NAS."""
    sock: socket.socket
    free: collections.deque = field(default_factory=lambda: collections.deque(range(IDS)))
    # identifier -> (outcome, packet, authenticator, next retransmission at)
    pending: dict = field(default_factory=dict)
    resting: collections.deque = field(default_factory=collections.deque)  # (until, ident)

    def release(self, ident: int, until: float) -> None:
        del self.pending[ident]
        self.resting.append((until, ident))

    def take(self, now: float) -> int | None:
        while self.resting and self.resting[0][0] <= now:
            self.free.append(self.resting.popleft()[1])
        return self.free.popleft() if self.free else None


def run(nas: Nas, duration: float, *, events=(), clock=time.monotonic) -> list[Outcome]:
    """Send for `duration` seconds, then wait for the last requests to finish.

    `events`: (seconds after the start, callable) run once from the loop when due,
    e.g. killing an upstream server; each callable's return is ignored.
    """
    family = socket.AF_INET6 if ":" in nas.host else socket.AF_INET
    selector = selectors.DefaultSelector()
    ports: list[_Port] = []
    outcomes: list[Outcome] = []
    due = sorted(events, key=lambda e: e[0])
    lifetime = nas.retry_interval * (nas.retries + 1)

    def free_id(now: float) -> tuple[_Port, int]:
        for port in ports:
            ident = port.take(now)
            if ident is not None:
                return port, ident
        # Every Identifier is busy or resting: open another source port.
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.connect((nas.host, nas.port))
        sock.setblocking(False)
        port = _Port(sock)
        ports.append(port)
        selector.register(sock, selectors.EVENT_READ, port)
        return port, port.take(now)

    def send(port: _Port, packet: bytes) -> None:
        try:
            port.sock.send(packet)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # lost like any datagram; the retransmission timer still runs

    start = clock()
    next_new = start
    end_sending = start + duration
    end = end_sending + lifetime + 1.0
    try:
        while True:
            now = clock()
            while due and now >= start + due[0][0]:
                due.pop(0)[1]()
                now = clock()
            if now >= end or (now >= end_sending and not any(p.pending for p in ports)):
                break
            while now < end_sending and next_new <= now:
                port, ident = free_id(now)
                packet, authenticator = nas.request(ident)
                outcome = Outcome(sent=now)
                outcomes.append(outcome)
                port.pending[ident] = (outcome, packet, authenticator, now + nas.retry_interval)
                send(port, packet)
                next_new += 1.0 / nas.rate
            for port in ports:
                for ident, (outcome, packet, authenticator, again) in list(port.pending.items()):
                    if now < again:
                        continue
                    if outcome.attempts > nas.retries:  # given up: the NAS reports a failure
                        port.release(ident, now + nas.id_reuse_delay)
                        continue
                    outcome.attempts += 1
                    port.pending[ident] = (outcome, packet, authenticator,
                                           now + nas.retry_interval)
                    send(port, packet)
            wait = 0.05  # the retransmission timers' resolution
            if now < end_sending:
                wait = min(wait, next_new - now)
            if due:
                wait = min(wait, start + due[0][0] - now)
            for key, _ in selector.select(max(0.0, wait)):
                _receive(key.data, nas, clock)
    finally:
        selector.close()
        for port in ports:
            port.sock.close()
    return outcomes


def _receive(port: _Port, nas: Nas, clock) -> None:
    while True:
        try:
            data = port.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:  # ICMP for an earlier datagram
            continue
        if len(data) < 20 or data[1] not in port.pending:
            continue  # late answer to a request already given up on
        outcome, _, authenticator, _ = port.pending[data[1]]
        try:
            good = codec.reply_ok(data, authenticator, nas.secret)
        except MalformedPacket:
            good = False
        if not good:
            outcome.bad = True
            continue
        outcome.answered = clock()
        port.release(data[1], outcome.answered + nas.id_reuse_delay)
        outcome.code = data[0]


# --- reduction ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    requests: int
    accepted: int
    rejected: int
    unanswered: int  # no answer after every retransmission
    failed: int  # rejected + unanswered: what the NAS reports as failed logins
    retransmitted_ok: int  # accepted, but only after one or more retransmissions
    # From the event: when the first request sent after it was accepted (None: never).
    recovery_s: float | None
    # The longest stretch without any Access-Accept that began after the event.
    longest_gap_s: float
    max_accept_latency_s: float | None


def summarise(outcomes: list[Outcome], event_at: float | None) -> Summary:
    accepts = sorted(o.answered for o in outcomes if o.code == codec.ACCESS_ACCEPT)
    latencies = [o.answered - o.sent for o in outcomes if o.code == codec.ACCESS_ACCEPT]
    recovery = None
    gap = 0.0
    if event_at is not None:
        after = [o.answered for o in outcomes
                 if o.sent >= event_at and o.code == codec.ACCESS_ACCEPT]
        recovery = min(after) - event_at if after else None
        previous = event_at
        for t in accepts:
            if t >= event_at:
                gap = max(gap, t - previous)
                previous = t
    rejected = sum(1 for o in outcomes if o.code == codec.ACCESS_REJECT)
    unanswered = sum(1 for o in outcomes if o.code is None)
    return Summary(
        requests=len(outcomes),
        accepted=len(accepts),
        rejected=rejected,
        unanswered=unanswered,
        failed=rejected + unanswered,
        retransmitted_ok=sum(1 for o in outcomes
                             if o.code == codec.ACCESS_ACCEPT and o.attempts > 1),
        recovery_s=None if recovery is None else round(recovery, 3),
        longest_gap_s=round(gap, 3),
        max_accept_latency_s=round(max(latencies), 3) if latencies else None,
    )


# --- command line -------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:1812", help="host:port")
    parser.add_argument("--secret", default="testing123")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--password", default="alice-pass")
    parser.add_argument("--rate", type=float, default=50.0, help="new requests per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sending")
    parser.add_argument("--retries", type=int, default=3, help="retransmissions per request")
    parser.add_argument("--retry-interval", type=float, default=5.0,
                        help="seconds between attempts")
    parser.add_argument("--id-reuse-delay", type=float, default=60.0,
                        help="seconds before an Identifier is used again on its port")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    if not 0 < args.rate <= 10_000 or not 0 < args.duration <= 3600 or args.retries < 0:
        parser.error("--rate in (0, 10000], --duration in (0, 3600], --retries >= 0")
    nas = Nas(host=host.strip("[]"), port=int(port), secret=args.secret.encode(),
              user=args.user, password=args.password.encode(), rate=args.rate,
              retries=args.retries, retry_interval=args.retry_interval,
              id_reuse_delay=args.id_reuse_delay)
    summary = summarise(run(nas, args.duration), None)
    print(json.dumps(asdict(summary)))
    return 0 if summary.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
