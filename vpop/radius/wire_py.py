"""RADIUS wire primitives in Python: the reference for the compiled vpop.radius._wire.

Each function here has a compiled twin of the same name and signature in
`_wire.c`; vpop.radius.wire picks the compiled one when it is built. They are
the steps every request pays for — decode, the authenticators, the MD5 chain —
and nothing else: what a packet means stays in codec.py and crypto.py.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from vpop.errors import MalformedPacket

HEADER = struct.Struct("!BBH")  # RFC 2865 §3: Code, Identifier, Length
MIN_LENGTH, MAX_LENGTH = 20, 4096
VENDOR_SPECIFIC, MESSAGE_AUTHENTICATOR = 26, 80
ZERO16 = bytes(16)
# RFC 3579 §3.2 and the BlastRADIUS guidance: Message-Authenticator goes first.
MA_PLACEHOLDER = bytes((MESSAGE_AUTHENTICATOR, 18)) + ZERO16


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


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


def message_authenticator_ok(raw: bytes, offset: int, authenticator: bytes,
                             secret: bytes) -> bool:
    """RFC 3579 §3.2: HMAC-MD5 over the packet with `authenticator` in the header and
    the attribute's value (at `offset`) zeroed, compared with that value."""
    if len(authenticator) != 16:
        raise ValueError(f"authenticator must be 16 octets, got {len(authenticator)}")
    if offset < 20 or offset + 16 > len(raw):
        return False
    signed = b"".join((raw[:4], authenticator, raw[20:offset], ZERO16, raw[offset + 16:]))
    return hmac.compare_digest(hmac_md5(secret, signed), raw[offset:offset + 16])


def hashed_authenticator_ok(raw: bytes, substitute: bytes, secret: bytes) -> bool:
    """Whether raw[4:20] is MD5(raw[:4] + substitute + raw[20:] + secret): a hashed
    request (RFC 2866 §3, RFC 5176 §2.3) substitutes zeros, a response (RFC 2865 §3)
    the request's authenticator."""
    if len(substitute) != 16:
        raise ValueError(f"substitute must be 16 octets, got {len(substitute)}")
    if len(raw) < 20:
        return False
    expected = hashlib.md5(raw[:4] + substitute + raw[20:] + secret).digest()
    return hmac.compare_digest(expected, raw[4:20])


def encode_reply(code: int, ident: int, request_authenticator: bytes, attrs: bytes,
                 secret: bytes, ma_vector: bytes | None) -> bytes:
    """A response: Message-Authenticator first, keyed with `ma_vector` (none if None),
    then the Response Authenticator (RFC 2865 §3)."""
    if len(request_authenticator) != 16 or (ma_vector is not None and len(ma_vector) != 16):
        raise ValueError("authenticators are 16 octets")
    body = MA_PLACEHOLDER + attrs if ma_vector is not None else attrs
    if 20 + len(body) > MAX_LENGTH:
        raise ValueError("reply exceeds 4096 octets")
    header = HEADER.pack(code, ident, 20 + len(body))
    if ma_vector is not None:
        mac = hmac_md5(secret, header + ma_vector + body)
        body = body[:2] + mac + body[18:]
    response = hashlib.md5(header + request_authenticator + body + secret).digest()
    return header + response + body


def md5_chain(data: bytes, secret: bytes, first: bytes, decrypt: bool) -> bytes:
    """RFC 2865 §5.2: b(1) = MD5(S + first), b(i) = MD5(S + c(i-1)); out(i) = in(i)
    xor b(i). `data` is a multiple of 16 octets; c(i) is the ciphertext block, the
    output when encrypting and the input when decrypting."""
    if len(data) % 16:
        raise ValueError("data must be a multiple of 16 octets")
    out = bytearray()
    previous = first
    for start in range(0, len(data), 16):
        block = data[start:start + 16]
        key = hashlib.md5(secret + previous).digest()
        # XOR of two 16-octet blocks as integers: one C call instead of 16 Python steps
        mixed = (int.from_bytes(block, "big") ^ int.from_bytes(key, "big")).to_bytes(16, "big")
        out += mixed
        previous = block if decrypt else mixed
    return bytes(out)


def attributes_without(raw: bytes, skip: bytes) -> bytes:
    """The attributes of a decoded packet (`raw`, up to its Length) as they came, less
    those whose type has a non-zero octet in `skip` (256 octets, one per type): what a
    proxy passes on unchanged."""
    if len(skip) != 256:
        raise ValueError("skip must have 256 octets, one per type")
    out = []
    pos, end = 20, len(raw)
    while pos + 2 <= end and raw[pos + 1] >= 2 and pos + raw[pos + 1] <= end:
        size = raw[pos + 1]
        if not skip[raw[pos]]:
            out.append(raw[pos:pos + size])
        pos += size
    return b"".join(out)


def decode(data: bytes) -> tuple:
    """(code, ident, authenticator, attrs, raw, ma_offset): a datagram split into
    header and attributes (codec.Packet's fields); MalformedPacket on any fault."""
    data = bytes(data)
    size = len(data)
    if size < MIN_LENGTH:
        raise MalformedPacket("shorter than the RADIUS header")
    code, ident, length = HEADER.unpack_from(data)
    if length < MIN_LENGTH or length > MAX_LENGTH:
        raise MalformedPacket("length field out of range")
    if length > size:
        raise MalformedPacket("length field exceeds the datagram")
    # RFC 2865 §3: octets beyond Length are padding and are ignored.
    attrs: dict = {}
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
    return code, ident, data[4:20], attrs, raw, ma_offset


def _split_vsa(value: bytes, attrs: dict) -> None:
    """RFC 2865 §5.26 sub-attributes; a vendor that does not follow it is kept whole."""
    vendor = int.from_bytes(value[:4], "big")
    pos, end = 4, len(value)
    found: list = []
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
