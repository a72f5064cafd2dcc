"""The other end of vpop's client-side exchanges, scripted: no sockets."""

from __future__ import annotations

import random

from vpop.radius import attributes as A
from vpop.radius import codec


class Scripted(random.Random):
    """Hands out the draws it is given (Identifiers, say), then falls back to a seeded
    choice."""

    def __init__(self, *draws: int):
        super().__init__(1)
        self.draws = list(draws)

    def randrange(self, *args):
        return self.draws.pop(0) if self.draws else super().randrange(*args)

    def getrandbits(self, k: int) -> int:
        return self.draws.pop(0) if self.draws else super().getrandbits(k)


def reply_to(sent, code: int = codec.ACCESS_ACCEPT, *, secret: bytes, attrs: bytes = b"",
             signed: bool = True, echo: bool = True) -> bytes:
    """What a RADIUS server answers to the datagram it was sent (`sent.data`): its
    Proxy-States echoed unless `echo` is false, a Message-Authenticator where `signed`
    and the code takes one."""
    request = codec.decode(sent.data)
    states = b"".join(codec.attribute(A.PROXY_STATE, s)
                      for s in request.attrs.get(A.PROXY_STATE, ())) if echo else b""
    return codec.encode_reply(code, request.ident, request.authenticator, attrs + states,
                              secret, message_authenticator=signed)
