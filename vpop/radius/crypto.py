"""Hiding attribute values on the wire: pure functions of bytes, no I/O.

Three RADIUS schemes share one MD5 chain (c(i) = p(i) xor MD5(S + c(i-1))):
User-Password (RFC 2865 §5.2), MS-CHAP-MPPE-Keys (RFC 2548 §2.4.1, "the same
method defined for the User-Password") and the salted scheme of Tunnel-Password
(RFC 2868 §3.5) and MS-MPPE-Send-Key/-Recv-Key (RFC 2548 §2.4.2, §2.4.3).
The chain itself is vpop.radius.wire.md5_chain; this module frames and checks.

In an Access-Accept the authenticator to pass is the Request Authenticator of
the Access-Request being answered (RFC 2548 §2.4.2, RFC 2868 §3.5).
"""

from __future__ import annotations

import random

from vpop.errors import MalformedPacket
from vpop.radius.wire import md5_chain

BLOCK = 16
AUTHENTICATOR_LENGTH = 16
MAX_USER_PASSWORD = 128       # RFC 2865 §5.2: 16 to 128 octets on the wire
SALT_LENGTH = 2
# 253 value octets - 2 salt octets leave 15 blocks; one octet is the length octet.
MAX_SALTED_VALUE = 15 * BLOCK - 1
MSCHAP_MPPE_KEYS_LENGTH = 32  # RFC 2548 §2.4.1: LM-Key 8 + NT-Key 16 + padding 8


def _check_authenticator(authenticator: bytes) -> None:
    if len(authenticator) != AUTHENTICATOR_LENGTH:
        raise ValueError(f"authenticator must be {AUTHENTICATOR_LENGTH} octets, "
                         f"got {len(authenticator)}")


def _pad(data: bytes) -> bytes:
    """Zero-pad to a non-empty multiple of 16 octets."""
    blocks = max(1, -(-len(data) // BLOCK))
    return data.ljust(blocks * BLOCK, b"\x00")


def encrypt_user_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Hide a User-Password (RFC 2865 §5.2): pad with NULs to 16n octets, chain MD5."""
    _check_authenticator(authenticator)
    if len(password) > MAX_USER_PASSWORD:
        raise ValueError(f"User-Password longer than {MAX_USER_PASSWORD} octets")
    return md5_chain(_pad(password), secret, authenticator, False)


def decrypt_user_password(data: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Recover a User-Password; trailing NUL padding is removed (RFC 2865 §5.2)."""
    _check_authenticator(authenticator)
    if not data or len(data) % BLOCK or len(data) > MAX_USER_PASSWORD:
        raise MalformedPacket(f"User-Password of {len(data)} octets is not 16n, "
                              f"at most {MAX_USER_PASSWORD}")
    return md5_chain(data, secret, authenticator, True).rstrip(b"\x00")


def encrypt_mschap_mppe_keys(keys: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Hide the 32-octet MS-CHAP-MPPE-Keys value like a User-Password (RFC 2548 §2.4.1)."""
    _check_authenticator(authenticator)
    if len(keys) != MSCHAP_MPPE_KEYS_LENGTH:
        raise ValueError(f"MS-CHAP-MPPE-Keys must be {MSCHAP_MPPE_KEYS_LENGTH} octets")
    return md5_chain(keys, secret, authenticator, False)


def decrypt_mschap_mppe_keys(data: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Recover MS-CHAP-MPPE-Keys; unlike User-Password, zero octets are kept (key material)."""
    _check_authenticator(authenticator)
    if len(data) != MSCHAP_MPPE_KEYS_LENGTH:
        raise MalformedPacket(f"MS-CHAP-MPPE-Keys of {len(data)} octets, "
                              f"expected {MSCHAP_MPPE_KEYS_LENGTH}")
    return md5_chain(data, secret, authenticator, True)


def random_salt(rng: random.Random) -> bytes:
    """A salt for encrypt_salted: 15 random bits under the most significant one, which
    is set (RFC 2868 §3.5, RFC 2548 §2.4.2). Unique within a packet is the caller's
    concern (a second salt can be this one with the last bit flipped)."""
    return (rng.getrandbits(15) | 0x8000).to_bytes(SALT_LENGTH, "big")


def random_octets(rng: random.Random, count: int) -> bytes:
    """`count` octets from `rng` (a SystemRandom in the server: unpredictable, as a
    challenge must be, RFC 1994 §2.3)."""
    return rng.getrandbits(8 * count).to_bytes(count, "big")


def encrypt_salted(value: bytes, secret: bytes, authenticator: bytes, salt: bytes) -> bytes:
    """Salt + hidden (length octet + value + zero padding) (RFC 2868 §3.5, RFC 2548 §2.4.2).

    ``salt`` is 2 octets with the high bit set (RFC 2868 §3.5), unique per attribute
    within a packet; the caller draws it. A Tunnel-Password tag octet, if any,
    precedes the result and is the codec's business.
    """
    _check_authenticator(authenticator)
    if len(salt) != SALT_LENGTH or not salt[0] & 0x80:
        raise ValueError("salt must be 2 octets with the most significant bit set")
    if len(value) > MAX_SALTED_VALUE:
        raise ValueError(f"salted value longer than {MAX_SALTED_VALUE} octets")
    plain = _pad(bytes((len(value),)) + value)
    return salt + md5_chain(plain, secret, authenticator + salt, False)


def decrypt_salted(data: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Recover a salted value from salt + ciphertext, checking lengths and padding size.

    The salt's high bit is not checked: it is the sender's duty and does not affect
    decryption. A wrong secret is usually caught by the length-octet check.
    """
    _check_authenticator(authenticator)
    cipher = data[SALT_LENGTH:]
    if len(data) < SALT_LENGTH + BLOCK or len(cipher) % BLOCK:
        raise MalformedPacket(f"salted value of {len(data)} octets is not 2 + 16n")
    plain = md5_chain(cipher, secret, authenticator + data[:SALT_LENGTH], True)
    length = plain[0]
    # RFC 2548 §2.4.2: the padding is 0 to 15 octets after the length octet and value.
    if not 0 <= len(plain) - 1 - length < BLOCK:
        raise MalformedPacket(f"salted value length octet {length} does not fit "
                              f"{len(plain)} octets (wrong secret?)")
    return plain[1:1 + length]
