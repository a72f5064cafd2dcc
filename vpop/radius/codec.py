"""RADIUS wire format (RFC 2865 §3, §5.26; RFC 3579 §3.2): bytes in, values out.

pyrad supplies the dictionary parser and the per-type value codecs; this module
keeps the packet framing, VSA splitting and the authenticators, because they sit
on the hot path and must treat every malformed input as MalformedPacket, never
as a crash. The byte-level steps themselves are vpop.radius.wire's (compiled when
built, with a Python reference).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vpop.radius import wire
# The framing constants live with the wire primitives; Message-Authenticator goes first
# (MA_PLACEHOLDER: RFC 3579 §3.2 and the BlastRADIUS guidance).
from vpop.radius.wire_py import (HEADER, MA_PLACEHOLDER, MAX_LENGTH,  # noqa: F401
                                 MESSAGE_AUTHENTICATOR, MIN_LENGTH, VENDOR_SPECIFIC, ZERO16)

_decode, _ma_ok, _hashed_ok, _encode_reply = (
    wire.decode, wire.message_authenticator_ok, wire.hashed_authenticator_ok, wire.encode_reply)

# RFC 2865 §4 / RFC 2866 §4 / RFC 5176 §3 / RFC 5997 packet codes.
ACCESS_REQUEST = 1
ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
ACCESS_CHALLENGE = 11
STATUS_SERVER = 12
DISCONNECT_REQUEST = 40
DISCONNECT_ACK = 41
DISCONNECT_NAK = 42
COA_REQUEST = 43
COA_ACK = 44
COA_NAK = 45

PROXY_STATE = 33

# Requests whose authenticator is a hash over the packet, not a random nonce.
HASHED_REQUESTS = frozenset({ACCOUNTING_REQUEST, DISCONNECT_REQUEST, COA_REQUEST})

Key = int | tuple[int, int]  # attribute type, or (vendor id, vendor type)


# Not frozen: made per request, and a frozen dataclass's __init__ pays a call per field.
@dataclass(slots=True)
class Packet:
    """A decoded packet: raw attribute values by key, in arrival order per key."""

    code: int
    ident: int
    authenticator: bytes
    attrs: dict[Key, list[bytes]]
    raw: bytes  # the packet up to its Length field
    ma_offset: int  # offset of the Message-Authenticator value, -1 if absent

    def first(self, key: Key) -> bytes | None:
        values = self.attrs.get(key)
        return values[0] if values else None


def decode(data: bytes) -> Packet:
    """Split a datagram into header and attributes; raise MalformedPacket on any fault.

    RFC 2865 §3: octets beyond Length are padding and are ignored; VSAs are split
    into (vendor, type) keys per §5.26 when they follow its layout.
    """
    return Packet(*_decode(data))


hmac_md5 = wire.hmac_md5  # HMAC-MD5 (RFC 2104)


def request_authenticator_ok(packet: Packet, secret: bytes) -> bool:
    """RFC 2866 §3 / RFC 5176 §2.3: hashed request authenticators."""
    return _hashed_ok(packet.raw, ZERO16, secret)


def message_authenticator_ok(packet: Packet, secret: bytes,
                             request_authenticator: bytes | None = None) -> bool:
    """RFC 3579 §3.2: HMAC-MD5 over the packet with the attribute's value zeroed.

    Responses are keyed with the request's authenticator; hashed requests
    (accounting, CoA) with sixteen zero octets in the authenticator field.
    """
    off = packet.ma_offset
    if off < 0:
        return False
    if request_authenticator is not None:
        auth = request_authenticator
    elif packet.code in HASHED_REQUESTS:
        auth = ZERO16
    else:
        auth = packet.authenticator
    return _ma_ok(packet.raw, off, auth, secret)


class RandomBytes:
    """Unpredictable octets (os.urandom) for Request Authenticators (RFC 2865 §3),
    drawn 4 KiB at a time: one system call per 256 authenticators, not one each."""

    def __init__(self, chunk: int = 4096):
        self.chunk = chunk
        self._buffer = b""
        self._pos = 0

    def __call__(self, count: int) -> bytes:
        pos = self._pos
        if pos + count > len(self._buffer):
            self._buffer = os.urandom(max(self.chunk, count))
            pos = 0
        self._pos = pos + count
        return self._buffer[pos:pos + count]


# Replies signed by their Response Authenticator alone (RFC 2866 §3, RFC 5176 §2.3).
# NASes disagree on the key of a Message-Authenticator there (the request's
# authenticator: hostapd 2.11, RFC 5176 §3.4; zeros: FreeRADIUS), and their requests
# are signed, so no one gets chosen octets echoed: it would guard nothing, only risk a drop.
UNSIGNED_REPLIES = frozenset({ACCOUNTING_RESPONSE, COA_ACK, COA_NAK,
                              DISCONNECT_ACK, DISCONNECT_NAK})


def encode_reply(code: int, ident: int, request_authenticator: bytes, attrs: bytes,
                 secret: bytes, *, message_authenticator: bool = True,
                 to_status_server: bool = False) -> bytes:
    """A response, signed per RFC 2865 §3 (and RFC 2866 §3, RFC 5176 §2.3).

    Access replies and every reply to Status-Server (RFC 5997 §3) carry a
    Message-Authenticator first (RFC 3579 §3.2, the BlastRADIUS guidance), keyed
    with the request's authenticator; UNSIGNED_REPLIES carry none, and neither does
    any reply when `message_authenticator` is false.
    """
    if message_authenticator and (to_status_server or code not in UNSIGNED_REPLIES):
        vector = request_authenticator
    else:
        vector = None
    return _encode_reply(code, ident, request_authenticator, attrs, secret, vector)


def encode_request(code: int, ident: int, attrs: bytes, secret: bytes, *,
                   authenticator: bytes = ZERO16, message_authenticator: bool = True) -> bytes:
    """A request packet as a NAS or proxy sends it.

    Access-Request and Status-Server carry the caller's random authenticator;
    accounting and CoA requests get the hashed one (RFC 2866 §3, RFC 5176 §2.3).
    """
    body = MA_PLACEHOLDER + attrs if message_authenticator else attrs
    header = HEADER.pack(code, ident, 20 + len(body))
    if 20 + len(body) > MAX_LENGTH:
        raise ValueError("request exceeds 4096 octets")
    hashed = code in HASHED_REQUESTS
    auth = ZERO16 if hashed else authenticator
    if message_authenticator:
        mac = hmac_md5(secret, header + auth + body)
        body = body[:2] + mac + body[18:]
    if hashed:
        auth = wire.md5(header + ZERO16 + body + secret)
    return header + auth + body


def reply_ok(data: bytes, request_authenticator: bytes, secret: bytes, *,
             to_status_server: bool = False) -> bool:
    """Check a response's authenticator (and its Message-Authenticator when present)."""
    return response_ok(decode(data), request_authenticator, secret,
                       to_status_server=to_status_server)


def response_ok(packet: Packet, request_authenticator: bytes, secret: bytes, *,
                to_status_server: bool = False) -> bool:
    """reply_ok() for a response already decoded.

    A Message-Authenticator is keyed with the request's authenticator (RFC 3579
    §3.2, RFC 5176 §3.4, RFC 5997 §3); on UNSIGNED_REPLIES one keyed with zeros, as
    FreeRADIUS signs them, is accepted too: the Response Authenticator has already
    vouched for the packet.
    """
    if not _hashed_ok(packet.raw, request_authenticator, secret):
        return False
    if packet.ma_offset < 0 or message_authenticator_ok(packet, secret, request_authenticator):
        return True
    return (packet.code in UNSIGNED_REPLIES and not to_status_server
            and message_authenticator_ok(packet, secret, ZERO16))


def attribute(kind: int, value: bytes) -> bytes:
    """One RFC 2865 §5 attribute (type, length, value)."""
    if len(value) > 253:
        raise ValueError(f"attribute {kind} value longer than 253 octets")
    return bytes((kind, len(value) + 2)) + value


def vendor_attribute(vendor: int, kind: int, value: bytes) -> bytes:
    """RFC 2865 §5.26 Vendor-Specific carrying one sub-attribute."""
    if len(value) > 247:
        raise ValueError(f"vendor attribute {vendor}:{kind} value longer than 247 octets")
    return bytes((VENDOR_SPECIFIC, len(value) + 8)) + vendor.to_bytes(4, "big") + \
        bytes((kind, len(value) + 2)) + value
