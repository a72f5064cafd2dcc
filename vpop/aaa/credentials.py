"""Stored credentials and their verification: PBKDF2 hashes, CHAP, MS-CHAP v1/v2, MPPE keys.

Pure functions of bytes; randomness (salts, challenges) comes from the caller.
MS-CHAP needs the NT hash (MD4 of the UTF-16LE password), so that is what a
subscriber record stores for MS-CHAP; PAP can use the PBKDF2 hash instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from Crypto.Cipher import DES
from Crypto.Hash import MD4

from vpop.aaa import schemes

PBKDF2_SCHEME = "pbkdf2-sha256"
CHAP_RESPONSE_LENGTH = 16
NT_HASH_LENGTH = 16
MSCHAP_CHALLENGE_LENGTH = 8        # RFC 2433: 8-octet challenge
MSCHAP2_CHALLENGE_LENGTH = 16      # RFC 2759: 16-octet authenticator challenge
MSCHAP_RESPONSE_LENGTH = 50        # RFC 2548 §2.1.3 / §2.3.2 value length
NT_RESPONSE_LENGTH = 24
MPPE_KEY_LENGTH = 16               # 128-bit keys, RFC 3079 §3

# RFC 2759 §8.7
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 §3.4
_MPPE_MASTER_MAGIC = b"This is the MPPE Master Key"
_MPPE_MAGIC2 = (b"On the client side, this is the send key; "
                b"on the server side, it is the receive key.")
_MPPE_MAGIC3 = (b"On the client side, this is the receive key; "
                b"on the server side, it is the send key.")
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


# --- stored password hashes -------------------------------------------------

def hash_password(password: str, *, salt: bytes, iterations: int = 200_000) -> str:
    """``pbkdf2-sha256$<iterations>$<b64 salt>$<b64 hash>`` for storage."""
    if not salt:
        raise ValueError("salt must not be empty")
    if iterations < 1:
        raise ValueError("iterations must be positive")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "$".join((PBKDF2_SCHEME, str(iterations), _b64(salt), _b64(digest)))


def verify_password_hash(password: bytes, stored: str) -> bool:
    """Check a cleartext password (as decrypted from User-Password) against a stored hash:
    vpop's own, or one with a scheme header as a directory keeps it ({SSHA} ...)."""
    if stored.startswith("{"):
        return schemes.verify(password, stored)
    parts = stored.split("$")
    if len(parts) != 4 or parts[0] != PBKDF2_SCHEME:
        raise ValueError("unknown password hash format")
    _, rounds, salt_b64, digest_b64 = parts
    try:
        iterations = int(rounds)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"corrupt password hash: {exc}") from None
    if iterations < 1 or not salt or not expected:
        raise ValueError("corrupt password hash")
    digest = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, dklen=len(expected))
    return hmac.compare_digest(digest, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- NT hash and DES building blocks (RFC 2433, RFC 2759) ---------------------

def _md4(data: bytes) -> bytes:
    return MD4.new(data).digest()


def nt_hash(password: str) -> bytes:
    """NtPasswordHash: MD4 of the UTF-16LE password, no terminator (RFC 2759 §8.3)."""
    return _md4(password.encode("utf-16-le"))


def hash_nt_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash: MD4 of the NT hash (RFC 2759 §8.4)."""
    return _md4(password_hash)


def _expand_des_key(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 octets with odd parity in the low bit (RFC 2433 App. B.3)."""
    bits = int.from_bytes(key7, "big")
    out = bytearray()
    for shift in range(49, -1, -7):
        octet = ((bits >> shift) & 0x7F) << 1
        out.append(octet | (bin(octet).count("1") % 2 == 0))
    return bytes(out)


def _challenge_response(challenge8: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse: DES of the challenge under 3 keys from the 21-octet padded hash."""
    padded = password_hash.ljust(21, b"\x00")
    return b"".join(
        DES.new(_expand_des_key(padded[i:i + 7]), DES.MODE_ECB).encrypt(challenge8)
        for i in (0, 7, 14))


# --- CHAP (RFC 1994, RFC 2865 §5.3) ------------------------------------------

def chap_verify(chap_id: int, cleartext: bytes, challenge: bytes, response: bytes) -> bool:
    """RFC 1994 §4.1: Response = MD5(Identifier || secret || Challenge)."""
    expected = hashlib.md5(bytes((chap_id,)) + cleartext + challenge).digest()
    return hmac.compare_digest(expected, response)


def chap_password_check(chap_password: bytes, chap_challenge: bytes | None,
                        request_authenticator: bytes, cleartext: bytes) -> bool:
    """Verify a RADIUS CHAP-Password: CHAP Ident (1) + Response (16) (RFC 2865 §5.3).

    The challenge is CHAP-Challenge if present, else the Request Authenticator
    (RFC 2865 §5.40). A wrong length fails: RFC 2865 §5 answers an invalid
    attribute length in an Access-Request with an Access-Reject.
    """
    if len(chap_password) != 1 + CHAP_RESPONSE_LENGTH:
        return False
    challenge = request_authenticator if chap_challenge is None else chap_challenge
    return chap_verify(chap_password[0], cleartext, challenge, chap_password[1:])


# --- MS-CHAP v1 (RFC 2433, RFC 2548 §2.1) ----------------------------------------

def mschap_nt_response(challenge8: bytes, nt_hash: bytes) -> bytes:
    """NtChallengeResponse from the stored NT hash (RFC 2433 App. A.5, A.7)."""
    if len(challenge8) != MSCHAP_CHALLENGE_LENGTH:
        raise ValueError("MS-CHAP challenge must be 8 octets")
    return _challenge_response(challenge8, nt_hash)


def mschap1_check(ms_chap_challenge: bytes, ms_chap_response: bytes, nt_hash: bytes) -> bool:
    """Verify MS-CHAP-Response: Ident, Flags, LM-Response (24), NT-Response (24) (RFC 2548 §2.1.3).

    Only Flags = 1 (use the NT-Response) can succeed: LM hashes are not stored.
    """
    if (len(ms_chap_challenge) != MSCHAP_CHALLENGE_LENGTH
            or len(ms_chap_response) != MSCHAP_RESPONSE_LENGTH
            or ms_chap_response[1] != 1):
        return False
    expected = mschap_nt_response(ms_chap_challenge, nt_hash)
    return hmac.compare_digest(expected, ms_chap_response[26:50])


def mschap1_mppe_keys(nt_hash: bytes) -> bytes:
    """Plaintext MS-CHAP-MPPE-Keys: LM-Key (8) + NT-Key (16) + padding (8) (RFC 2548 §2.4.1).

    The NT-Key is MD4 of the NT hash, as NASes expect; the LM-Key is zero-filled
    because LM hashes are not stored. Hide it with
    ``vpop.radius.crypto.encrypt_mschap_mppe_keys``.
    """
    return bytes(8) + hash_nt_hash(nt_hash) + bytes(8)


# --- MS-CHAP v2 (RFC 2759, RFC 2548 §2.3) -----------------------------------------

def mschap_username(username: bytes) -> bytes:
    """The user name without a ``DOMAIN\\`` prefix, as ChallengeHash wants (RFC 2759 §8.2)."""
    _, sep, user = username.partition(b"\\")
    return user if sep else username


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes,
                   username: bytes) -> bytes:
    """ChallengeHash: first 8 octets of SHA-1(peer || authenticator || name) (RFC 2759 §8.2)."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + username).digest()[:8]


def mschapv2_nt_response(auth_challenge: bytes, peer_challenge: bytes, username: bytes,
                         nt_hash: bytes) -> bytes:
    """GenerateNTResponse from the stored NT hash (RFC 2759 §8.1)."""
    return _challenge_response(challenge_hash(peer_challenge, auth_challenge, username), nt_hash)


def mschapv2_authenticator_response(nt_hash: bytes, nt_response: bytes, peer_challenge: bytes,
                                    auth_challenge: bytes, username: bytes) -> str:
    """GenerateAuthenticatorResponse: ``"S="`` + 40 uppercase hex digits (RFC 2759 §8.7)."""
    digest = hashlib.sha1(hash_nt_hash(nt_hash) + nt_response + _AUTH_MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, auth_challenge, username)
    return "S=" + hashlib.sha1(digest + challenge + _AUTH_MAGIC2).hexdigest().upper()


def mschap2_check(ms_chap_challenge: bytes, ms_chap2_response: bytes, username: bytes,
                  nt_hash: bytes) -> str | None:
    """Verify MS-CHAP2-Response; return the authenticator response on success, else None.

    The value is Ident, Flags, Peer-Challenge (16), Reserved (8), Response (24)
    (RFC 2548 §2.3.2). ``username`` is the name as received; a domain prefix is
    removed here.
    """
    if (len(ms_chap_challenge) != MSCHAP2_CHALLENGE_LENGTH
            or len(ms_chap2_response) != MSCHAP_RESPONSE_LENGTH):
        return None
    peer_challenge = ms_chap2_response[2:18]
    received = ms_chap2_response[26:50]
    name = mschap_username(username)
    expected = mschapv2_nt_response(ms_chap_challenge, peer_challenge, name, nt_hash)
    if not hmac.compare_digest(expected, received):
        return None
    return mschapv2_authenticator_response(nt_hash, received, peer_challenge,
                                           ms_chap_challenge, name)


def ms_chap2_success_value(ident: int, auth_response: str) -> bytes:
    """MS-CHAP2-Success value: Ident + the 42-octet "S=..." string (RFC 2548 §2.3.3)."""
    text = auth_response.encode("ascii")
    if len(text) != 42 or not text.startswith(b"S="):
        raise ValueError("authenticator response must be 'S=' + 40 hex digits")
    return bytes((ident,)) + text


# --- MPPE keys for MS-CHAPv2 (RFC 3079 §3) -------------------------------------

def mppe_master_key(nt_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey: first 16 octets of SHA-1(hash hash || NT-Response || magic) (RFC 3079 §3.4)."""
    return hashlib.sha1(nt_hash_hash + nt_response + _MPPE_MASTER_MAGIC).digest()[:16]


def _asymmetric_start_key(master_key: bytes, magic: bytes) -> bytes:
    """GetAsymmetricStartKey for a 128-bit key (RFC 3079 §3.4)."""
    digest = hashlib.sha1(master_key + _SHS_PAD1 + magic + _SHS_PAD2).digest()
    return digest[:MPPE_KEY_LENGTH]


def mppe_session_keys(nt_hash: bytes, nt_response: bytes) -> tuple[bytes, bytes]:
    """The server's (send_key, recv_key), i.e. MS-MPPE-Send-Key and MS-MPPE-Recv-Key.

    RFC 3079 §3.4 with IsServer = TRUE: the send key uses Magic3, the receive key
    Magic2. The NAS sends with the send key, the peer receives with it.
    """
    master = mppe_master_key(hash_nt_hash(nt_hash), nt_response)
    return (_asymmetric_start_key(master, _MPPE_MAGIC3),
            _asymmetric_start_key(master, _MPPE_MAGIC2))
