"""Attribute hiding: RFC 2865 §7.1 vector, cross-checks against pyrad's codec, bad lengths."""

from __future__ import annotations

import random

import pytest
from pyrad import packet as pyrad_packet
from pyrad.packet import AccessAccept, AuthPacket

from vpop.errors import MalformedPacket
from vpop.radius.crypto import (
    decrypt_mschap_mppe_keys,
    decrypt_salted,
    decrypt_user_password,
    encrypt_mschap_mppe_keys,
    encrypt_salted,
    encrypt_user_password,
    random_salt,
)

SECRET = b"xyzzy5461"
AUTHENTICATOR = bytes.fromhex("0f403f9473978057bd83d5cb98f4227a")


def _printable(rng: random.Random, length: int) -> bytes:
    return bytes(rng.randrange(0x21, 0x7F) for _ in range(length))


# --- User-Password (RFC 2865 §5.2) ---------------------------------------------

def test_user_password_rfc2865_example():
    # RFC 2865 §7.1: "nemo" / "arctangent", secret "xyzzy5461".
    hidden = bytes.fromhex("0dbe708d93d413ce3196e43f782a0aee")
    assert encrypt_user_password(b"arctangent", SECRET, AUTHENTICATOR) == hidden
    assert decrypt_user_password(hidden, SECRET, AUTHENTICATOR) == b"arctangent"


@pytest.mark.parametrize("length", range(1, 129))
def test_user_password_matches_pyrad(length):
    rng = random.Random(length)
    secret, authenticator = _printable(rng, 12), rng.randbytes(16)
    password = _printable(rng, length)
    theirs = AuthPacket(secret=secret, authenticator=authenticator)

    hidden = encrypt_user_password(password, secret, authenticator)
    assert len(hidden) == max(16, -(-length // 16) * 16)
    assert hidden == theirs.PwCrypt(password)
    assert theirs.PwDecrypt(hidden) == password.decode("ascii")
    assert decrypt_user_password(hidden, secret, authenticator) == password


def test_empty_user_password_is_one_block():
    hidden = encrypt_user_password(b"", SECRET, AUTHENTICATOR)
    assert len(hidden) == 16
    assert decrypt_user_password(hidden, SECRET, AUTHENTICATOR) == b""


def test_user_password_wrong_secret_does_not_round_trip():
    hidden = encrypt_user_password(b"arctangent", SECRET, AUTHENTICATOR)
    assert decrypt_user_password(hidden, b"other", AUTHENTICATOR) != b"arctangent"


@pytest.mark.parametrize("length", [0, 1, 15, 17, 31, 144])
def test_user_password_bad_length_is_malformed(length):
    with pytest.raises(MalformedPacket):
        decrypt_user_password(bytes(length), SECRET, AUTHENTICATOR)


def test_user_password_too_long_to_send():
    with pytest.raises(ValueError):
        encrypt_user_password(bytes(129), SECRET, AUTHENTICATOR)


def test_authenticator_must_be_16_octets():
    with pytest.raises(ValueError):
        encrypt_user_password(b"pw", SECRET, AUTHENTICATOR[:15])


# --- salted values (RFC 2868 §3.5, RFC 2548 §2.4.2) -------------------------------

class _FixedDraw:
    """Stands in for pyrad's module-level random source so its salt is known."""

    def __init__(self, value: int):
        self.value = value

    def randrange(self, start, stop=None):
        return self.value


@pytest.mark.parametrize("length", [0, 1, 14, 15, 16, 31, 32, 100, 239])
def test_salted_matches_pyrad_bytes(monkeypatch, length):
    rng = random.Random(1000 + length)
    secret, request_authenticator = _printable(rng, 16), rng.randbytes(16)
    value = rng.randbytes(length)
    draw = rng.randrange(0, 32767)
    monkeypatch.setattr(pyrad_packet, "random_generator", _FixedDraw(draw))
    salt = (0x8000 + draw).to_bytes(2, "big")
    theirs = AuthPacket(secret=secret, authenticator=request_authenticator)

    hidden = encrypt_salted(value, secret, request_authenticator, salt)
    assert hidden == theirs.SaltCrypt(value)
    assert len(hidden) == 2 + max(16, -(-(length + 1) // 16) * 16)
    assert decrypt_salted(hidden, secret, request_authenticator) == value


@pytest.mark.parametrize("length", [1, 16, 17, 64, 200])
def test_salted_round_trips_with_pyrad_reply(length):
    # In an Access-Accept the Request Authenticator of the request is the vector.
    rng = random.Random(2000 + length)
    secret, request_authenticator = _printable(rng, 10), rng.randbytes(16)
    value = rng.randbytes(length)
    request = AuthPacket(secret=secret, authenticator=request_authenticator)
    reply = AuthPacket(code=AccessAccept, secret=secret, authenticator=bytes(16))
    reply.request_authenticator = request_authenticator

    ours = encrypt_salted(value, secret, request_authenticator, b"\x91\x02")
    assert reply.SaltDecrypt(ours) == value
    assert decrypt_salted(request.SaltCrypt(value), secret, request_authenticator) == value


def test_salted_mppe_key_round_trip():
    key = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
    hidden = encrypt_salted(key, SECRET, AUTHENTICATOR, b"\x80\x01")
    assert hidden[:2] == b"\x80\x01" and len(hidden) == 2 + 32
    assert decrypt_salted(hidden, SECRET, AUTHENTICATOR) == key


def test_salts_give_different_ciphertexts():
    one = encrypt_salted(b"key", SECRET, AUTHENTICATOR, b"\x80\x01")
    two = encrypt_salted(b"key", SECRET, AUTHENTICATOR, b"\x80\x02")
    assert one[2:] != two[2:]


def test_random_salts_have_the_high_bit_and_vary():
    rng = random.Random(11)
    salts = {random_salt(rng) for _ in range(200)}
    assert all(len(s) == 2 and s[0] & 0x80 for s in salts) and len(salts) > 190
    assert decrypt_salted(encrypt_salted(b"key", SECRET, AUTHENTICATOR, random_salt(rng)),
                          SECRET, AUTHENTICATOR) == b"key"


@pytest.mark.parametrize("salt", [b"\x00\x01", b"\x7f\xff", b"\x80", b"\x80\x00\x00"])
def test_salt_must_be_two_octets_with_high_bit(salt):
    with pytest.raises(ValueError):
        encrypt_salted(b"key", SECRET, AUTHENTICATOR, salt)


def test_salted_value_too_long_to_send():
    with pytest.raises(ValueError):
        encrypt_salted(bytes(240), SECRET, AUTHENTICATOR, b"\x80\x01")


@pytest.mark.parametrize("length", [0, 1, 2, 17, 19, 33])
def test_salted_bad_length_is_malformed(length):
    with pytest.raises(MalformedPacket):
        decrypt_salted(b"\x80\x01"[:length] + bytes(max(0, length - 2)), SECRET, AUTHENTICATOR)


def test_salted_length_octet_beyond_data_is_malformed():
    # One block whose length octet is turned from 15 into 200.
    forged = encrypt_salted(bytes(15), SECRET, AUTHENTICATOR, b"\x80\x01")
    tampered = forged[:2] + bytes((forged[2] ^ 15 ^ 200,)) + forged[3:]
    with pytest.raises(MalformedPacket):
        decrypt_salted(tampered, SECRET, AUTHENTICATOR)


def test_salted_excess_padding_is_malformed():
    # Two blocks for a 3-octet value: 28 padding octets, more than 15.
    forged = encrypt_salted(bytes(20), SECRET, AUTHENTICATOR, b"\x80\x01")
    tampered = forged[:2] + bytes((forged[2] ^ 20 ^ 3,)) + forged[3:]
    with pytest.raises(MalformedPacket):
        decrypt_salted(tampered, SECRET, AUTHENTICATOR)


# --- MS-CHAP-MPPE-Keys (RFC 2548 §2.4.1) ------------------------------------------

def test_mschap_mppe_keys_is_hidden_like_user_password():
    keys = bytes(8) + bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F") + bytes(8)
    hidden = encrypt_mschap_mppe_keys(keys, SECRET, AUTHENTICATOR)
    assert hidden == AuthPacket(secret=SECRET, authenticator=AUTHENTICATOR).PwCrypt(keys)
    # Zero octets are key material here, so decryption keeps them.
    assert decrypt_mschap_mppe_keys(hidden, SECRET, AUTHENTICATOR) == keys


@pytest.mark.parametrize("length", [16, 24, 48])
def test_mschap_mppe_keys_lengths(length):
    with pytest.raises(ValueError):
        encrypt_mschap_mppe_keys(bytes(length), SECRET, AUTHENTICATOR)
    with pytest.raises(MalformedPacket):
        decrypt_mschap_mppe_keys(bytes(length), SECRET, AUTHENTICATOR)
