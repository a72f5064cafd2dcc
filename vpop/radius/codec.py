"""RADIUS wire format (RFC 2865 §3, §5.26; RFC 3579 §3.2): bytes in, values out.

pyrad supplies the dictionary parser and the per-type value codecs; this module
keeps the packet framing, VSA splitting and the authenticators, because they sit
on the hot path and must treat every malformed input as MalformedPacket, never
as a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from vpop.errors import MalformedPacket

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

VENDOR_SPECIFIC = 26
MESSAGE_AUTHENTICATOR = 80
PROXY_STATE = 33

HEADER = struct.Struct("!BBH")
MIN_LENGTH, MAX_LENGTH = 20, 4096
ZERO16 = bytes(16)
# RFC 3579 §3.2 and the BlastRADIUS guidance: Message-Authenticator goes first.
MA_PLACEHOLDER = bytes((MESSAGE_AUTHENTICATOR, 18)) + ZERO16

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
    """Split a datagram into header and attributes; raise MalformedPacket on any fault."""
    size = len(data)
    if size < MIN_LENGTH:
        raise MalformedPacket("shorter than the RADIUS header")
    code, ident, length = HEADER.unpack_from(data)
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise MalformedPacket("length field out of range")
    if length > size:
        raise MalformedPacket("length field exceeds the datagram")
    # RFC 2865 §3: octets beyond Length are padding and are ignored.
    attrs: dict[Key, list[bytes]] = {}
    ma_offset = -1
    pos = 20
    while pos < length:
        if pos + 2 > length:
            raise MalformedPacket("truncated attribute header")
        kind = data[pos]
        alen = data[pos + 1]
        end = pos + alen
        if alen < 2 or end > length:
            raise MalformedPacket(f"attribute {kind} has a bad length")
        value = data[pos + 2:end]
        if kind == VENDOR_SPECIFIC and alen > 6:
            _split_vsa(value, attrs)
        else:
            if kind == MESSAGE_AUTHENTICATOR:
                if alen != 18 or ma_offset >= 0:
                    raise MalformedPacket("bad Message-Authenticator")
                ma_offset = pos + 2
            values = attrs.get(kind)
            if values is None:
                attrs[kind] = [value]
            else:
                values.append(value)
        pos = end
    raw = data if length == size else data[:length]
    return Packet(code, ident, data[4:20], attrs, raw, ma_offset)


def _split_vsa(value: bytes, attrs: dict[Key, list[bytes]]) -> None:
    """RFC 2865 §5.26 sub-attributes; a vendor that does not follow it is kept whole."""
    vendor = int.from_bytes(value[:4], "big")
    pos, end = 4, len(value)
    found: list[tuple[Key, bytes]] = []
    while pos < end:
        if pos + 2 > end:
            break
        vlen = value[pos + 1]
        if vlen < 2 or pos + vlen > end:
            break
        found.append(((vendor, value[pos]), value[pos + 2:pos + vlen]))
        pos += vlen
    else:
        for key, sub in found:
            attrs.setdefault(key, []).append(sub)
        return
    attrs.setdefault(VENDOR_SPECIFIC, []).append(value)


# --- authenticators -------------------------------------------------------------------

_HMAC_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_primed: dict[bytes, tuple] = {}


def hmac_md5(key: bytes, message: bytes) -> bytes:
    """HMAC-MD5 (RFC 2104), from MD5 states primed once per key.

    A client's shared secret keys every packet it sends and every reply, and
    priming the two pads costs as much as the MAC itself; hmac.digest() would
    also look the digest up by name on each call.
    """
    pads = _primed.get(key)
    if pads is None:
        pads = _prime(key)
    inner = pads[0].copy()
    inner.update(message)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def _prime(key: bytes) -> tuple:
    block = hashlib.md5(key).digest() if len(key) > _HMAC_BLOCK else key
    block = block.ljust(_HMAC_BLOCK, b"\0")
    pads = (hashlib.md5(block.translate(_IPAD)), hashlib.md5(block.translate(_OPAD)))
    if len(_primed) >= 4096:  # secrets are few; a bound keeps a mistake from growing it
        _primed.clear()
    _primed[key] = pads
    return pads


def request_authenticator_ok(packet: Packet, secret: bytes) -> bool:
    """RFC 2866 §3 / RFC 5176 §2.3: hashed request authenticators."""
    raw = packet.raw
    expected = hashlib.md5(raw[:4] + ZERO16 + raw[20:] + secret).digest()
    return hmac.compare_digest(expected, packet.authenticator)


def message_authenticator_ok(packet: Packet, secret: bytes,
                             request_authenticator: bytes | None = None) -> bool:
    """RFC 3579 §3.2: HMAC-MD5 over the packet with the attribute's value zeroed.

    Responses are keyed with the request's authenticator; hashed requests
    (accounting, CoA) with sixteen zero octets in the authenticator field.
    """
    off = packet.ma_offset
    if off < 0:
        return False
    raw = packet.raw
    if request_authenticator is not None:
        auth = request_authenticator
    elif packet.code in HASHED_REQUESTS:
        auth = ZERO16
    else:
        auth = packet.authenticator
    signed = b"".join((raw[:4], auth, raw[20:off], ZERO16, raw[off + 16:]))
    return hmac.compare_digest(hmac_md5(secret, signed), raw[off:off + 16])


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


def ma_vector(code: int, request_authenticator: bytes, *, to_status_server: bool = False) -> bytes:
    """The authenticator a response's Message-Authenticator is keyed with.

    RFC 3579 §3.2: the request's. An Accounting-Response to an Accounting-Request
    uses sixteen zero octets, as FreeRADIUS and its radclient do; one answering a
    Status-Server (RFC 5997) uses the request's.
    """
    if code == ACCOUNTING_RESPONSE and not to_status_server:
        return ZERO16
    return request_authenticator


def encode_reply(code: int, ident: int, request_authenticator: bytes, attrs: bytes,
                 secret: bytes, *, message_authenticator: bool = True,
                 to_status_server: bool = False) -> bytes:
    """A response packet, Message-Authenticator first, signed per RFC 2865 §3 and 3579."""
    if message_authenticator:
        body = MA_PLACEHOLDER + attrs
        header = HEADER.pack(code, ident, 20 + len(body))
        # ma_vector(), inline: this runs for every reply
        vector = ZERO16 if code == ACCOUNTING_RESPONSE and not to_status_server \
            else request_authenticator
        mac = hmac_md5(secret, header + vector + body)
        body = body[:2] + mac + body[18:]
    else:
        body = attrs
        header = HEADER.pack(code, ident, 20 + len(body))
    if 20 + len(body) > MAX_LENGTH:
        raise ValueError("reply exceeds 4096 octets")
    response = hashlib.md5(header + request_authenticator + body + secret).digest()
    return header + response + body


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
        auth = hashlib.md5(header + ZERO16 + body + secret).digest()
    return header + auth + body


def reply_ok(data: bytes, request_authenticator: bytes, secret: bytes, *,
             to_status_server: bool = False) -> bool:
    """Check a response's authenticator (and its Message-Authenticator when present)."""
    return response_ok(decode(data), request_authenticator, secret,
                       to_status_server=to_status_server)


def response_ok(packet: Packet, request_authenticator: bytes, secret: bytes, *,
                to_status_server: bool = False) -> bool:
    """reply_ok() for a response already decoded."""
    raw = packet.raw
    expected = hashlib.md5(raw[:4] + request_authenticator + raw[20:] + secret).digest()
    if not hmac.compare_digest(expected, packet.authenticator):
        return False
    if packet.ma_offset >= 0:
        return message_authenticator_ok(packet, secret, ma_vector(
            packet.code, request_authenticator, to_status_server=to_status_server))
    return True


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
