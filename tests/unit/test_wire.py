"""The wire primitives: the compiled module and the Python reference, held to the same
RFC vectors and to each other on random and damaged input."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from vpop.errors import MalformedPacket
# An install builds the compiled module (setup.py): if it is missing, these tests fail
# rather than the server running slower without a word.
from vpop.radius import _wire, wire, wire_py

IMPLEMENTATIONS = [pytest.param(wire_py, id="python"), pytest.param(_wire, id="compiled")]


def test_the_compiled_module_is_in_use():
    assert wire.COMPILED and wire.decode is _wire.decode


# RFC 1321 §A.5, the test suite.
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("data,digest", [
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "d174ab98d277d9f5a5611c2c9f419d9f"),
    (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
])
def test_md5_matches_rfc_1321(impl, data, digest):
    assert impl.md5(data).hex() == digest


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_md5_matches_the_standard_library_across_block_boundaries(impl):
    rng = random.Random(1321)
    for size in list(range(0, 200)) + [1000, 4096]:
        data = rng.randbytes(size)
        assert impl.md5(data) == hashlib.md5(data).digest(), size


# RFC 2202 §2, test cases 1, 2 and 6 (a key longer than the 64-octet block).
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("key,data,digest", [
    (b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
    (b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    (b"\xaa" * 80, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"),
])
def test_hmac_md5_matches_rfc_2202(impl, key, data, digest):
    assert impl.hmac_md5(key, data).hex() == digest


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_hmac_md5_matches_the_standard_library(impl):
    rng = random.Random(2104)
    for _ in range(300):
        key, message = rng.randbytes(rng.randrange(0, 150)), rng.randbytes(rng.randrange(0, 300))
        assert impl.hmac_md5(key, message) == hmac.digest(key, message, "md5")


# --- packets: both implementations on the same input --------------------------------

def _attribute(rng: random.Random) -> bytes:
    choice = rng.random()
    if choice < 0.2:  # a VSA that follows RFC 2865 §5.26
        kind = 26
        value = rng.randbytes(4) + b"".join(
            bytes((rng.randrange(256), n + 2)) + rng.randbytes(n)
            for n in (rng.randrange(0, 20) for _ in range(rng.randrange(1, 4))))
    elif choice < 0.3:  # a VSA that does not (kept whole)
        kind, value = 26, rng.randbytes(rng.randrange(0, 30))
    else:
        kind, value = rng.choice((1, 2, 4, 31, 33, 44, 87, 200)), rng.randbytes(rng.randrange(0, 40))
    return bytes((kind, len(value) + 2)) + value


def _packet(rng: random.Random) -> bytes:
    attrs = bytes((80, 18)) + rng.randbytes(16) if rng.random() < 0.6 else b""
    attrs += b"".join(_attribute(rng) for _ in range(rng.randrange(0, 12)))
    length = 20 + len(attrs)
    return bytes((rng.randrange(1, 50), rng.randrange(256))) + length.to_bytes(2, "big") + \
        rng.randbytes(16) + attrs


def _damaged(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        what = rng.random()
        if what < 0.3 and len(data) > 1:
            del data[rng.randrange(len(data)):]
        elif what < 0.8 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data += rng.randbytes(rng.randrange(1, 10))
    return bytes(data)


def _outcome(impl, data: bytes):
    try:
        return impl.decode(data)
    except MalformedPacket as exc:
        return ("malformed", exc.reason)


def test_decode_agrees_on_valid_damaged_and_random_packets():
    rng = random.Random(2865)
    outcomes = {"decoded": 0, "malformed": 0}
    for n in range(6000):
        data = _packet(rng)
        if n % 3 == 1:
            data = _damaged(rng, data)
        elif n % 3 == 2:
            data = rng.randbytes(rng.randrange(0, 80))
        compiled, reference = _outcome(_wire, data), _outcome(wire_py, data)
        assert compiled == reference, data.hex()
        outcomes["malformed" if compiled[0] == "malformed" else "decoded"] += 1
    # the input reached both kinds of answer, many times each
    assert min(outcomes.values()) > 1000, outcomes


def test_decode_keeps_the_datagram_when_it_is_the_packet():
    data = _packet(random.Random(5))
    assert _wire.decode(data)[4] is data
    assert _wire.decode(data + b"pad")[4] == data  # RFC 2865 §3: padding ignored
    assert _wire.decode(bytearray(data))[4] == data


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_decode_names_the_fault(impl):
    header = bytes((1, 0, 0, 26)) + bytes(16)
    for data, reason in [
        (b"\x01\x00\x00", "shorter than the RADIUS header"),
        (bytes((1, 0, 0, 19)) + bytes(16), "length field out of range"),
        (bytes((1, 0, 0x10, 1)) + bytes(16), "length field out of range"),
        (bytes((1, 0, 0, 30)) + bytes(16), "length field exceeds the datagram"),
        (bytes((1, 0, 0, 21)) + bytes(17), "truncated attribute header"),
        (header + bytes((1, 1, 0, 0, 0, 0)), "attribute 1 has a bad length"),
        (header + bytes((1, 7, 0, 0, 0, 0)), "attribute 1 has a bad length"),
        (header + bytes((80, 6, 0, 0, 0, 0)), "bad Message-Authenticator"),
    ]:
        with pytest.raises(MalformedPacket) as caught:
            impl.decode(data)
        assert caught.value.reason == reason


def test_authenticators_and_replies_agree():
    rng = random.Random(3579)
    for _ in range(2000):
        secret = rng.randbytes(rng.randrange(1, 70))
        auth, vector = rng.randbytes(16), rng.choice((None, bytes(16), rng.randbytes(16)))
        attrs = rng.randbytes(rng.randrange(0, 300))
        code, ident = rng.randrange(256), rng.randrange(256)
        reply = _wire.encode_reply(code, ident, auth, attrs, secret, vector)
        assert reply == wire_py.encode_reply(code, ident, auth, attrs, secret, vector)
        assert _wire.hashed_authenticator_ok(reply, auth, secret)
        assert wire_py.hashed_authenticator_ok(reply, auth, secret)
        if vector is not None:
            assert _wire.message_authenticator_ok(reply, 22, vector, secret)
        damaged = _damaged(rng, reply)
        for offset in (22, rng.randrange(-5, len(damaged) + 5)):
            assert _wire.message_authenticator_ok(damaged, offset, auth, secret) == \
                wire_py.message_authenticator_ok(damaged, offset, auth, secret)
        assert _wire.hashed_authenticator_ok(damaged, auth, secret) == \
            wire_py.hashed_authenticator_ok(damaged, auth, secret)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_encode_reply_refuses_what_does_not_fit(impl):
    with pytest.raises(ValueError, match="4096"):
        impl.encode_reply(2, 1, bytes(16), bytes(4096 - 20 - 17), b"s", bytes(16))
    assert len(impl.encode_reply(2, 1, bytes(16), bytes(4096 - 20 - 18), b"s", bytes(16))) == 4096
    with pytest.raises(ValueError):
        impl.encode_reply(2, 1, bytes(15), b"", b"s", None)


def test_md5_chain_agrees_and_inverts():
    rng = random.Random(2548)
    for _ in range(500):
        data = rng.randbytes(16 * rng.randrange(0, 9))
        secret, first = rng.randbytes(rng.randrange(0, 40)), rng.randbytes(rng.choice((16, 18)))
        hidden = _wire.md5_chain(data, secret, first, False)
        assert hidden == wire_py.md5_chain(data, secret, first, False)
        assert _wire.md5_chain(hidden, secret, first, True) == data
        assert wire_py.md5_chain(hidden, secret, first, True) == data
    with pytest.raises(ValueError):
        _wire.md5_chain(bytes(15), b"s", bytes(16), True)


def test_attributes_without_agrees_and_keeps_the_rest_byte_for_byte():
    rng = random.Random(5080)
    for _ in range(2000):
        data = _packet(rng)
        raw = wire_py.decode(data)[4]
        skip = wire.type_set(*rng.sample(range(256), rng.randrange(0, 6)) + [80])
        kept = _wire.attributes_without(raw, skip)
        assert kept == wire_py.attributes_without(raw, skip)
        # the same as walking the attributes by hand
        expected, pos = b"", 20
        while pos < len(raw):
            if not skip[raw[pos]]:
                expected += raw[pos:pos + raw[pos + 1]]
            pos += raw[pos + 1]
        assert kept == expected
    # a damaged tail is cut where the attributes stop making sense, never overrun
    header = bytes((1, 0, 0, 0)) + bytes(16)
    assert _wire.attributes_without(header + bytes((1, 3, 65, 2, 0)), wire.type_set()) == \
        bytes((1, 3, 65))
    assert wire_py.attributes_without(header + bytes((1, 3, 65, 2, 9)), wire.type_set()) == \
        bytes((1, 3, 65))
