"""Credential checks against RFC 2433, RFC 2759 and RFC 3079 vectors, CHAP and PBKDF2."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from pyrad.dictionary import Dictionary
from pyrad.packet import AuthPacket

from vpop.aaa import credentials as cr

# RFC 2759 §9.2 (reused by RFC 3079 §3.5)
USER = b"User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTH_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 §3.5.3
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")

# RFC 2433 Appendix B.2
V1_CHALLENGE = bytes.fromhex("102DB5DF085D3041")
V1_PASSWORD_HASH = bytes.fromhex("FC156AF7EDCD6C0EDDE3337D427F4EAC")
V1_NT_RESPONSE = bytes.fromhex("4E9D3C8F9CFD385D5BF4D3246791956CA4C351AB409A3D61")


# --- PBKDF2 --------------------------------------------------------------------

def test_hash_password_format_and_verify():
    stored = cr.hash_password("s3cret-ü", salt=b"0123456789abcdef", iterations=1000)
    scheme, iterations, salt, _ = stored.split("$")
    assert (scheme, iterations, salt) == ("pbkdf2-sha256", "1000", "MDEyMzQ1Njc4OWFiY2RlZg==")
    assert cr.verify_password_hash("s3cret-ü".encode(), stored)
    assert not cr.verify_password_hash(b"s3cret-u", stored)
    assert not cr.verify_password_hash(b"", stored)


def test_hash_password_known_answer():
    # RFC 7914 §11: PBKDF2-HMAC-SHA-256 (P="passwd", S="salt", c=1); the stored
    # 32 octets are the first 32 of the printed dkLen=64 output.
    stored = cr.hash_password("passwd", salt=b"salt", iterations=1)
    digest = bytes.fromhex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
    assert stored == "pbkdf2-sha256$1$c2FsdA==$" + base64.b64encode(digest).decode()
    assert cr.verify_password_hash(b"passwd", stored)


def test_hash_password_default_iterations():
    assert cr.hash_password("x", salt=b"salt").split("$")[1] == "200000"


@pytest.mark.parametrize("stored", [
    "",
    "md5$abc",
    "bcrypt$12$c2FsdA==$aGFzaA==",
    "pbkdf2-sha256$1000$c2FsdA==",
    "pbkdf2-sha256$many$c2FsdA==$aGFzaA==",
    "pbkdf2-sha256$0$c2FsdA==$aGFzaA==",
    "pbkdf2-sha256$1000$not base64!$aGFzaA==",
    "pbkdf2-sha256$1000$$aGFzaA==",
])
def test_verify_rejects_unknown_or_corrupt_format(stored):
    with pytest.raises(ValueError):
        cr.verify_password_hash(b"pw", stored)


@pytest.mark.parametrize("kwargs", [{"salt": b""}, {"salt": b"salt", "iterations": 0}])
def test_hash_password_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        cr.hash_password("pw", **kwargs)


# --- NT hash and DES keys -----------------------------------------------------------

def test_nt_hash_vectors():
    assert cr.nt_hash(PASSWORD) == PASSWORD_HASH        # RFC 2759 §9.2
    assert cr.nt_hash("MyPw") == V1_PASSWORD_HASH        # RFC 2433 App. B.2
    assert cr.hash_nt_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH


def test_des_key_parity_rfc2433_b3():
    assert cr._expand_des_key(bytes.fromhex("FC156AF7EDCD6C")) == bytes.fromhex("FD0B5B5E7F6E34D9")
    assert cr._expand_des_key(bytes.fromhex("0EDDE3337D427F")) == bytes.fromhex("0E6E796737EA08FE")


# --- CHAP --------------------------------------------------------------------------

CHAP_DICT = "ATTRIBUTE CHAP-Password 3 octets\nATTRIBUTE CHAP-Challenge 60 octets\n"


def _pyrad_chap_ok(chap_password, chap_challenge, authenticator, cleartext):
    request = AuthPacket(secret=b"s", authenticator=authenticator,
                         dict=Dictionary(io.StringIO(CHAP_DICT)))
    request[3] = [chap_password]
    if chap_challenge is not None:
        request["CHAP-Challenge"] = [chap_challenge]
    return request.VerifyChapPasswd(cleartext)


def test_chap_known_answer():
    # RFC 1994 §4.1: MD5(0x01 || "secret" || 16 zero octets)
    response = bytes.fromhex("7570c653cdf4755ccffcaa80f29268d1")
    assert cr.chap_verify(1, b"secret", bytes(16), response)
    assert not cr.chap_verify(2, b"secret", bytes(16), response)
    assert not cr.chap_verify(1, b"secret", bytes(16), response[:15])


@pytest.mark.parametrize("with_challenge", [True, False])
def test_chap_password_check_agrees_with_pyrad(with_challenge):
    authenticator = bytes(range(16))
    challenge = b"challenge-from-nas!!" if with_challenge else None
    used = challenge if with_challenge else authenticator
    chap_password = b"\x2a" + hashlib.md5(b"\x2a" + b"letmein" + used).digest()

    assert cr.chap_password_check(chap_password, challenge, authenticator, b"letmein")
    assert _pyrad_chap_ok(chap_password, challenge, authenticator, b"letmein")
    assert not cr.chap_password_check(chap_password, challenge, authenticator, b"letmeout")
    assert not _pyrad_chap_ok(chap_password, challenge, authenticator, b"letmeout")


def test_chap_challenge_takes_precedence_over_authenticator():
    authenticator = bytes(range(16))
    chap_password = b"\x01" + hashlib.md5(b"\x01pw" + authenticator).digest()
    assert cr.chap_password_check(chap_password, None, authenticator, b"pw")
    assert not cr.chap_password_check(chap_password, b"other challenge!", authenticator, b"pw")


@pytest.mark.parametrize("length", [0, 16, 18])
def test_chap_password_bad_length_fails(length):
    assert not cr.chap_password_check(bytes(length), None, bytes(16), b"pw")


# --- MS-CHAP v1 --------------------------------------------------------------------------

def _ms_chap_response(nt_response: bytes, flags: int = 1) -> bytes:
    return b"\x07" + bytes((flags,)) + bytes(24) + nt_response


def test_mschap_nt_response_rfc2433_b2():
    assert cr.mschap_nt_response(V1_CHALLENGE, V1_PASSWORD_HASH) == V1_NT_RESPONSE


def test_mschap1_check():
    assert cr.mschap1_check(V1_CHALLENGE, _ms_chap_response(V1_NT_RESPONSE), V1_PASSWORD_HASH)
    assert not cr.mschap1_check(V1_CHALLENGE, _ms_chap_response(V1_NT_RESPONSE),
                                cr.nt_hash("NotMyPw"))
    # Flags = 0 asks for the LM-Response, which cannot be checked without an LM hash.
    assert not cr.mschap1_check(V1_CHALLENGE, _ms_chap_response(V1_NT_RESPONSE, flags=0),
                                V1_PASSWORD_HASH)


@pytest.mark.parametrize("challenge, response", [
    (V1_CHALLENGE[:7], _ms_chap_response(V1_NT_RESPONSE)),
    (V1_CHALLENGE, _ms_chap_response(V1_NT_RESPONSE)[:49]),
    (V1_CHALLENGE, _ms_chap_response(V1_NT_RESPONSE) + b"\x00"),
])
def test_mschap1_check_bad_lengths_fail(challenge, response):
    assert not cr.mschap1_check(challenge, response, V1_PASSWORD_HASH)


def test_mschap1_mppe_keys_layout():
    keys = cr.mschap1_mppe_keys(PASSWORD_HASH)
    assert keys == bytes(8) + PASSWORD_HASH_HASH + bytes(8)
    assert len(keys) == 32


# --- MS-CHAP v2 --------------------------------------------------------------------------

def _ms_chap2_response(nt_response: bytes = NT_RESPONSE, ident: int = 0x1F) -> bytes:
    return bytes((ident, 0)) + PEER_CHALLENGE + bytes(8) + nt_response


def test_rfc2759_hash_example():
    assert cr.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert cr.mschapv2_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD_HASH) \
        == NT_RESPONSE
    assert cr.mschapv2_authenticator_response(PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE,
                                              AUTH_CHALLENGE, USER) == AUTH_RESPONSE


def test_mschap2_check_success_and_failure():
    assert cr.mschap2_check(AUTH_CHALLENGE, _ms_chap2_response(), USER, PASSWORD_HASH) \
        == AUTH_RESPONSE
    assert cr.mschap2_check(AUTH_CHALLENGE, _ms_chap2_response(), USER,
                            cr.nt_hash("wrongPass")) is None
    assert cr.mschap2_check(AUTH_CHALLENGE, _ms_chap2_response(), b"Other", PASSWORD_HASH) is None
    assert cr.mschap2_check(PEER_CHALLENGE, _ms_chap2_response(), USER, PASSWORD_HASH) is None


def test_mschap2_check_strips_domain():
    assert cr.mschap2_check(AUTH_CHALLENGE, _ms_chap2_response(), b"EXAMPLE\\User",
                            PASSWORD_HASH) == AUTH_RESPONSE


@pytest.mark.parametrize("challenge, response", [
    (AUTH_CHALLENGE[:8], _ms_chap2_response()),
    (AUTH_CHALLENGE, _ms_chap2_response()[:49]),
    (AUTH_CHALLENGE, _ms_chap2_response() + b"\x00"),
])
def test_mschap2_check_bad_lengths_fail(challenge, response):
    assert cr.mschap2_check(challenge, response, USER, PASSWORD_HASH) is None


@pytest.mark.parametrize("name, stripped", [
    (b"User", b"User"),
    (b"EXAMPLE\\User", b"User"),
    (b"\\User", b"User"),
    (b"user@example.net", b"user@example.net"),
])
def test_mschap_username(name, stripped):
    assert cr.mschap_username(name) == stripped


def test_ms_chap2_success_value():
    value = cr.ms_chap2_success_value(0x1F, AUTH_RESPONSE)
    assert value == b"\x1f" + AUTH_RESPONSE.encode("ascii")
    assert len(value) == 43        # RFC 2548 §2.3.3: Vendor-Length 45
    with pytest.raises(ValueError):
        cr.ms_chap2_success_value(1, "S=1234")


# --- MPPE keys (RFC 3079 §3) -------------------------------------------------------------

def test_rfc3079_master_key():
    assert cr.mppe_master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY


def test_rfc3079_server_send_key():
    # RFC 3079 §3.5.3 derives SendStartKey128 with IsSend = IsServer = TRUE: it is the
    # server's send key (MS-MPPE-Send-Key) and the peer's receive key.
    send_key, recv_key = cr.mppe_session_keys(PASSWORD_HASH, NT_RESPONSE)
    assert send_key == SEND_START_KEY_128
    assert len(recv_key) == 16 and recv_key != send_key
