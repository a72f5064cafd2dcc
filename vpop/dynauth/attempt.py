"""One request's exchange with its NAS, tries and deadlines included; no I/O.

Built on the client-side exchange (vpop/radius/exchange.py: Identifier, reply
matching, Response Authenticator and Message-Authenticator checks): a try waits
`timeout` seconds, and an unanswered request is sent again byte for byte (RFC 5080
§2.2.1: same Identifier, same Request Authenticator, same Event-Timestamp) up to
`retries` times; then it has timed out. A reply that does not verify is ignored and
the request keeps waiting for the real one. The shell (vpop/server/dynauth.py, or an
event loop's) sends what `start` and `expire` return and hands over what arrives.
"""

from __future__ import annotations

import random

from vpop.dynauth.request import DynAuthRequest
from vpop.dynauth.result import Result, failed, from_answer, timed_out
from vpop.dynauth.session import Endpoint
from vpop.radius.dictionary import Dictionary
from vpop.radius.exchange import Answer, Discarded, Exchange, Transmit


class Attempt:
    def __init__(self, request: DynAuthRequest, endpoint: Endpoint, *, timeout: float,
                 retries: int, dictionary: Dictionary, rng: random.Random | None = None):
        self.request = request
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.dictionary = dictionary
        self.exchange = Exchange(rng=rng or random.Random())
        self.pending = None  # the exchange's Request
        self.tries = 0
        self.ignored: list[str] = []  # why replies were ignored, for the log

    @property
    def deadline(self) -> float | None:
        return self.pending.deadline if self.pending is not None else None

    def start(self, now: float) -> Transmit:
        addr = (self.endpoint.host, self.endpoint.port)
        secret = self.endpoint.secret
        sent = self.exchange.send(addr, lambda ident, _: self.request.datagram(ident, secret),
                                  secret=secret, now=now, deadline=now + self.timeout)
        assert sent is not None  # a fresh exchange has every Identifier free
        self.pending = next(iter(self.exchange.pending.values()))
        self.tries = 1
        return sent

    def on_datagram(self, data: bytes, addr: tuple) -> Result | None:
        """The Result when `data` answers the request; None when it is ignored."""
        event = self.exchange.on_reply(data, addr)
        if isinstance(event, Answer):
            self.pending = None
            return from_answer(event.packet, self.dictionary, tries=self.tries,
                               endpoint=str(self.endpoint))
        self.ignored.append(event.reason if isinstance(event, Discarded) else event.reason)
        return None

    def expire(self, now: float) -> Transmit | Result | None:
        """At or after the deadline: the retransmission, or the timeout once the budget is
        spent; None before the deadline."""
        if self.pending is None or now < self.pending.deadline:
            return None
        if self.tries > self.retries:
            self.exchange.cancel(self.pending)
            self.pending = None
            return timed_out(tries=self.tries, endpoint=str(self.endpoint))
        self.tries += 1
        again = self.exchange.retransmit(self.pending, deadline=now + self.timeout)
        if again is None:  # cannot happen with one request per exchange; say so if it does
            return failed("the retransmission's Identifier was taken",
                          endpoint=str(self.endpoint), tries=self.tries)
        return again
