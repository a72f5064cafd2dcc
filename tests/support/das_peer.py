"""A NAS's dynamic-authorization port (RFC 5176), on a real UDP socket, answering CoA
and Disconnect requests as the test tells it:

    with NasStandIn(secret=b"testing123") as nas:
        nas.script("ack")                  # every request: ACK
        nas.script(("nak", 503))           # NAK with Error-Cause 503
        nas.script("silent")               # never answers
        nas.script("forged", "ack")        # first a reply signed with another secret,
                                           # then, to the retransmission, ACK
        ...  # send to ("127.0.0.1", nas.port)
        nas.requests                       # what arrived, decoded, with its checks

Each datagram that arrives takes the next step of the script; the last step repeats.
The stand-in checks every request's Request Authenticator and Message-Authenticator
with its secret and records the outcome beside the packet.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from vpop.radius import attributes as A
from vpop.radius import codec, wire

ACK_FOR = {codec.DISCONNECT_REQUEST: codec.DISCONNECT_ACK, codec.COA_REQUEST: codec.COA_ACK}
NAK_FOR = {codec.DISCONNECT_REQUEST: codec.DISCONNECT_NAK, codec.COA_REQUEST: codec.COA_NAK}


@dataclass
class Received:
    packet: codec.Packet
    data: bytes
    source: tuple
    authenticator_ok: bool
    message_authenticator_ok: bool

    def values(self, key) -> list[bytes]:
        return self.packet.attrs.get(key, [])


class NasStandIn:
    def __init__(self, *, secret: bytes = b"testing123", host: str = "127.0.0.1"):
        self.secret = secret
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.steps: list = ["ack"]
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nas-stand-in", daemon=True)
        self._thread.start()

    def script(self, *steps) -> None:
        with self._lock:
            self.steps = list(steps)

    def _next_step(self):
        with self._lock:
            return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            try:
                packet = codec.decode(data)
            except Exception:
                continue
            received = Received(
                packet=packet, data=data, source=source,
                authenticator_ok=codec.request_authenticator_ok(packet, self.secret),
                message_authenticator_ok=codec.message_authenticator_ok(packet, self.secret))
            with self._lock:
                self.requests.append(received)
            reply = self._reply(packet, self._next_step())
            if reply is not None:
                self.sock.sendto(reply, source)

    def _reply(self, packet: codec.Packet, step) -> bytes | None:
        if step == "silent":
            return None
        secret, code, attrs = self.secret, ACK_FOR[packet.code], b""
        if step == "forged":
            secret = b"not-the-secret"
        elif isinstance(step, tuple) and step[0] == "nak":
            code = NAK_FOR[packet.code]
            attrs = codec.attribute(A.ERROR_CAUSE, step[1].to_bytes(4, "big"))
        elif step != "ack":
            raise ValueError(f"unknown step {step!r}")
        # Signed as hostapd signs its answers: a Message-Authenticator keyed with the
        # request's authenticator (RFC 5176 §3.4), then the Response Authenticator.
        return _signed_reply(code, packet, attrs, secret)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def __enter__(self) -> "NasStandIn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _signed_reply(code: int, request: codec.Packet, attrs: bytes, secret: bytes) -> bytes:
    return wire.encode_reply(code, request.ident, request.authenticator, attrs, secret,
                             request.authenticator)
