"""The wire codec against pyrad (a second implementation) and against bad input."""

import hashlib
import hmac
import struct

import pytest
from pyrad import packet as pyrad_packet
from pyrad.dictionary import Dictionary as PyradDictionary

from vpop.errors import MalformedPacket
from vpop.radius import codec
from vpop.radius.dictionary import Dictionary, shipped_dictionary

SECRET = b"testing123"
AUTH = bytes(range(16))


@pytest.fixture(scope="module")
def dictionary():
    return Dictionary(shipped_dictionary())


@pytest.fixture(scope="module")
def pyrad_dict():
    return PyradDictionary(str(shipped_dictionary()))


def test_pyrad_request_decodes_and_its_message_authenticator_verifies(pyrad_dict):
    req = pyrad_packet.AuthPacket(code=1, id=7, secret=SECRET, authenticator=AUTH,
                                  dict=pyrad_dict)
    req["User-Name"] = "alice"
    req["User-Password"] = req.PwCrypt("alice-pass")
    req["Agent-Circuit-Id"] = "bras1 eth 0/1/2:100"
    req.add_message_authenticator()
    data = req.RequestPacket()
    packet = codec.decode(data)
    assert (packet.code, packet.ident, packet.authenticator) == (1, 7, AUTH)
    assert packet.first(1) == b"alice"
    assert packet.first((3561, 1)) == b"bras1 eth 0/1/2:100"
    assert codec.message_authenticator_ok(packet, SECRET)
    assert not codec.message_authenticator_ok(packet, b"wrong")


def test_our_reply_verifies_in_pyrad(dictionary, pyrad_dict):
    req = pyrad_packet.AuthPacket(code=1, id=9, secret=SECRET, authenticator=AUTH,
                                  dict=pyrad_dict)
    req["User-Name"] = "alice"
    raw_request = req.RequestPacket()
    attrs = dictionary.encode_pairs([("Session-Timeout", 3600), ("Framed-Pool", "pool"),
                                     ("Mikrotik-Rate-Limit", "2000k/10000k")])
    data = codec.encode_reply(codec.ACCESS_ACCEPT, 9, AUTH, attrs, SECRET)
    reply = req.CreateReply(packet=data)
    assert req.VerifyReply(reply, data)
    assert reply.verify_message_authenticator(original_authenticator=AUTH)
    assert reply["Session-Timeout"] == [3600]
    assert reply["Mikrotik-Rate-Limit"] == ["2000k/10000k"]
    assert data[20] == codec.MESSAGE_AUTHENTICATOR  # first, per the BlastRADIUS guidance
    assert codec.reply_ok(data, AUTH, SECRET)
    assert not codec.reply_ok(data, AUTH, b"other")
    assert raw_request  # the request was encodable


def test_accounting_request_authenticator_matches_pyrad(dictionary, pyrad_dict):
    attrs = dictionary.encode_pairs([("Acct-Status-Type", "Start"),
                                     ("Acct-Session-Id", "s1"), ("User-Name", "bob")])
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 3, attrs, SECRET,
                                message_authenticator=False)
    pkt = pyrad_packet.AcctPacket(secret=SECRET, dict=pyrad_dict, packet=data)
    assert pkt.VerifyAcctRequest()
    assert codec.request_authenticator_ok(codec.decode(data), SECRET)
    signed = codec.encode_request(codec.ACCOUNTING_REQUEST, 4, attrs, SECRET)
    packet = codec.decode(signed)
    assert codec.request_authenticator_ok(packet, SECRET)
    assert codec.message_authenticator_ok(packet, SECRET)


def test_vendor_attributes_are_split_and_unknown_vendor_format_kept_whole():
    good = codec.vendor_attribute(311, 11, b"x" * 16)
    odd = bytes((26, 9)) + (9).to_bytes(4, "big") + b"\x01\x09\x00"  # sub-length overflows
    data = codec.encode_request(1, 1, good + odd, SECRET, authenticator=AUTH)
    packet = codec.decode(data)
    assert packet.first((311, 11)) == b"x" * 16
    assert packet.attrs[26] == [odd[2:]]


def test_repeated_attributes_keep_their_order():
    attrs = b"".join(codec.attribute(33, s) for s in (b"one", b"two", b"three"))
    packet = codec.decode(codec.encode_request(1, 1, attrs, SECRET, authenticator=AUTH))
    assert packet.attrs[33] == [b"one", b"two", b"three"]


def test_padding_beyond_length_is_ignored():
    data = codec.encode_request(1, 1, codec.attribute(1, b"a"), SECRET, authenticator=AUTH)
    packet = codec.decode(data + b"\x00" * 10)
    assert packet.raw == data
    assert codec.message_authenticator_ok(packet, SECRET)


def _header(length, body=b""):
    return struct.pack("!BBH", 1, 1, length) + AUTH + body


@pytest.mark.parametrize("data, reason", [
    (b"", "shorter"),
    (b"\x01\x01\x00", "shorter"),
    (_header(19), "out of range"),
    (_header(5000, b"x" * 4980), "out of range"),
    (_header(40), "exceeds"),
    (_header(21, b"\x01"), "truncated"),
    (_header(22, b"\x01\x00"), "bad length"),
    (_header(22, b"\x01\x01"), "bad length"),
    (_header(24, b"\x01\x09ab"), "bad length"),
    (_header(30, b"\x50\x0a" + bytes(8)), "Message-Authenticator"),
    (_header(56, (b"\x50\x12" + bytes(16)) * 2), "Message-Authenticator"),
])
def test_malformed_packets_raise(data, reason):
    with pytest.raises(MalformedPacket, match=reason):
        codec.decode(data)


def test_typed_values_of_the_wrong_size_are_malformed(dictionary):
    with pytest.raises(MalformedPacket):
        dictionary.decode_value(dictionary["NAS-IP-Address"], b"\x01\x02")
    assert dictionary.decode_value(dictionary["NAS-IP-Address"], b"\x7f\x00\x00\x01") == "127.0.0.1"


def test_tagged_tunnel_attributes_encode_the_tag(dictionary):
    data = dictionary.encode("Tunnel-Type", "L2TP", tag=1)
    assert data == bytes((64, 6, 1, 0, 0, 3))
    data = dictionary.encode("Tunnel-Server-Endpoint", "192.0.2.1", tag=2)
    assert data == bytes((67, 12, 2)) + b"192.0.2.1"


# RFC 2202 §2, test cases 1, 2 and 6 (a key longer than the 64-octet block).
@pytest.mark.parametrize("key,data,digest", [
    (b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
    (b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    (b"\xaa" * 80, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"),
])
def test_hmac_md5_matches_rfc_2202(key, data, digest):
    assert codec.hmac_md5(key, data).hex() == digest
    assert codec.hmac_md5(key, data).hex() == digest  # again, from the primed states


@pytest.mark.parametrize("length", [0, 1, 16, 63, 64, 65, 200])
def test_hmac_md5_matches_the_standard_library_for_any_key_length(length):
    key = bytes(range(length % 256)) * (length // 256 + 1)
    key = key[:length]
    for message in (b"", b"x", bytes(range(256)) * 3):
        assert codec.hmac_md5(key, message) == hmac.digest(key, message, "md5")


def test_random_bytes_draws_fresh_octets_across_its_buffer():
    draw = codec.RandomBytes(chunk=40)
    values = [draw(16) for _ in range(10)]  # 160 octets: four refills of a 40-octet buffer
    assert all(len(v) == 16 for v in values)
    assert len(set(values)) == 10
    assert len(draw(100)) == 100  # more than a chunk at once


# --- which replies carry a Message-Authenticator, and keyed with what ----------------------

def _response_authenticator(reply: bytes, request_authenticator: bytes) -> bytes:
    """RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3: MD5(Code+ID+Length+RequestAuth+Attributes+Secret)."""
    return hashlib.md5(reply[:4] + request_authenticator + reply[20:] + SECRET).digest()


def _attributes(reply: bytes) -> list[tuple[int, bytes]]:
    found, pos = [], 20
    while pos < len(reply):
        found.append((reply[pos], reply[pos + 2:pos + reply[pos + 1]]))
        pos += reply[pos + 1]
    return found


def _message_authenticator(reply: bytes, key_vector: bytes) -> bytes:
    """RFC 3579 §3.2: HMAC-MD5 over the reply, its authenticator field replaced by
    `key_vector` and the attribute's value zeroed; the attribute is the first one."""
    assert reply[20:22] == bytes((codec.MESSAGE_AUTHENTICATOR, 18))
    return hmac.digest(SECRET, reply[:4] + key_vector + reply[20:22] + bytes(16) + reply[38:],
                       "md5")


def _request(code, attrs=b"", ma=False):
    return codec.decode(codec.encode_request(code, 7, attrs, SECRET, authenticator=AUTH,
                                             message_authenticator=ma))


def test_an_accounting_response_has_no_message_authenticator(dictionary):
    request = _request(codec.ACCOUNTING_REQUEST, dictionary.encode_pairs(
        [("Acct-Status-Type", "Start"), ("Acct-Session-Id", "s1")]))
    states = codec.attribute(33, b"one") + codec.attribute(33, b"\x00two")
    reply = codec.encode_reply(codec.ACCOUNTING_RESPONSE, request.ident,
                               request.authenticator, states, SECRET)
    assert reply[:2] == bytes((codec.ACCOUNTING_RESPONSE, 7))
    assert int.from_bytes(reply[2:4], "big") == len(reply) == 20 + 5 + 6
    assert _attributes(reply) == [(33, b"one"), (33, b"\x00two")]  # no attribute 80
    assert reply[4:20] == _response_authenticator(reply, request.authenticator)
    assert codec.reply_ok(reply, request.authenticator, SECRET)
    assert not codec.reply_ok(reply, request.authenticator, b"other")


def test_the_accounting_response_verifies_in_pyrad(pyrad_dict):
    req = pyrad_packet.AcctPacket(id=3, secret=SECRET, dict=pyrad_dict)
    req["Acct-Status-Type"] = "Start"
    req["Acct-Session-Id"] = "s2"
    raw_request = req.RequestPacket()
    reply = codec.encode_reply(codec.ACCOUNTING_RESPONSE, 3, raw_request[4:20], b"", SECRET)
    assert req.VerifyReply(req.CreateReply(packet=reply), reply)
    assert reply == reply[:20]  # nothing but the header


def test_a_status_server_reply_on_the_accounting_port_is_signed_with_its_authenticator():
    request = _request(codec.STATUS_SERVER, ma=True)
    reply = codec.encode_reply(codec.ACCOUNTING_RESPONSE, request.ident, request.authenticator,
                               b"", SECRET, to_status_server=True)
    attrs = _attributes(reply)
    assert [kind for kind, _ in attrs] == [codec.MESSAGE_AUTHENTICATOR]
    # RFC 5997 §3: keyed with the Status-Server's authenticator, as Access replies are
    assert attrs[0][1] == _message_authenticator(reply, request.authenticator)
    assert reply[4:20] == _response_authenticator(reply, request.authenticator)
    assert codec.reply_ok(reply, request.authenticator, SECRET, to_status_server=True)


@pytest.mark.parametrize("request_code, reply_code", [
    (codec.COA_REQUEST, codec.COA_NAK), (codec.COA_REQUEST, codec.COA_ACK),
    (codec.DISCONNECT_REQUEST, codec.DISCONNECT_NAK),
    (codec.DISCONNECT_REQUEST, codec.DISCONNECT_ACK)])
def test_a_dynamic_authorization_response_is_signed_as_rfc_5176_says(request_code, reply_code):
    request = _request(request_code, codec.attribute(1, b"alice"), ma=True)
    error_cause = codec.attribute(101, (405).to_bytes(4, "big"))
    reply = codec.encode_reply(reply_code, request.ident, request.authenticator,
                               error_cause, SECRET)
    # RFC 5176 §2.3: the Response Authenticator over the request's (hashed) authenticator;
    # §3.4 makes Message-Authenticator optional there, and vpop sends none.
    assert _attributes(reply) == [(101, (405).to_bytes(4, "big"))]
    assert reply[4:20] == _response_authenticator(reply, request.authenticator)
    assert codec.reply_ok(reply, request.authenticator, SECRET)


@pytest.mark.parametrize("code", [codec.ACCESS_ACCEPT, codec.ACCESS_REJECT,
                                  codec.ACCESS_CHALLENGE])
def test_access_replies_keep_their_message_authenticator_first(code):
    request = _request(codec.ACCESS_REQUEST, codec.attribute(1, b"alice"), ma=True)
    reply = codec.encode_reply(code, request.ident, request.authenticator,
                               codec.attribute(18, b"hello"), SECRET)
    attrs = _attributes(reply)
    assert [kind for kind, _ in attrs] == [codec.MESSAGE_AUTHENTICATOR, 18]
    assert attrs[0][1] == _message_authenticator(reply, request.authenticator)
    assert reply[4:20] == _response_authenticator(reply, request.authenticator)


def _signed_reply(code, request_authenticator, key_vector):
    """A response carrying Message-Authenticator keyed with `key_vector`, as another
    server might send it."""
    body = codec.MA_PLACEHOLDER + codec.attribute(18, b"ok")
    header = struct.pack("!BBH", code, 7, 20 + len(body))
    mac = hmac.digest(SECRET, header + key_vector + body, "md5")
    body = body[:2] + mac + body[18:]
    return header + hashlib.md5(header + request_authenticator + body + SECRET).digest() + body


@pytest.mark.parametrize("code", [codec.ACCOUNTING_RESPONSE, codec.COA_ACK,
                                  codec.DISCONNECT_NAK])
def test_received_responses_verify_with_the_request_authenticator_or_zeros(code):
    # RFC 3579 §3.2 and RFC 5176 §3.4 key it with the request's authenticator (hostapd
    # does); FreeRADIUS keys an Accounting-Response's and CoA responses' with zeros.
    for vector in (AUTH, codec.ZERO16):
        assert codec.reply_ok(_signed_reply(code, AUTH, vector), AUTH, SECRET)
    assert not codec.reply_ok(_signed_reply(code, AUTH, b"\x01" * 16), AUTH, SECRET)


def test_received_access_and_status_server_replies_verify_with_the_request_authenticator_only():
    assert codec.reply_ok(_signed_reply(codec.ACCESS_ACCEPT, AUTH, AUTH), AUTH, SECRET)
    assert not codec.reply_ok(_signed_reply(codec.ACCESS_ACCEPT, AUTH, codec.ZERO16), AUTH, SECRET)
    status = _signed_reply(codec.ACCOUNTING_RESPONSE, AUTH, AUTH)
    assert codec.reply_ok(status, AUTH, SECRET, to_status_server=True)
    zeros = _signed_reply(codec.ACCOUNTING_RESPONSE, AUTH, codec.ZERO16)
    assert not codec.reply_ok(zeros, AUTH, SECRET, to_status_server=True)
