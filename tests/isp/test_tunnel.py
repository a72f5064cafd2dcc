"""Tunnel mode: RFC 2868 tagged attributes, decoded by us and by FreeRADIUS's radclient."""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from vpop.errors import ConfigError, MalformedPacket
from vpop.isp.model import Isp, TunnelEndpoint
from vpop.isp.tunnel import (TunnelTemplates, decode_tagged, tagged_tunnels, tunnel_attributes,
                             tunnel_groups, tunnel_password)
from vpop.radius import codec
from vpop.radius.crypto import decrypt_salted
from vpop.radius.dictionary import Dictionary, shipped_dictionary

DICT = Dictionary(shipped_dictionary())
SECRET = b"testing123"
AUTHENTICATOR = bytes(range(16))

PRIMARY = TunnelEndpoint(address="192.0.2.1", password=b"lns-one secret", preference=1,
                         assignment_id="wholesale-a", client_endpoint="198.51.100.7",
                         client_auth_id="lac-berlin")
BACKUP = TunnelEndpoint(address="2001:db8::2", medium="IPv6", password=b"two", preference=5)
SHARED = TunnelEndpoint(address="192.0.2.3", preference=1)  # no password
ISP = Isp(name="acme", mode="tunnel", servers=(), tunnels=(BACKUP, PRIMARY, SHARED))


def salts(seed=1):
    rng = random.Random(seed)
    return lambda: rng.randbytes(2)


def encode(isp=ISP, nas_type="generic", salt=None, **kw):
    return tunnel_attributes(isp, DICT, secret=SECRET, request_authenticator=AUTHENTICATOR,
                             salt=salt or salts(), nas_type=nas_type, **kw)


def decoded(data):
    packet = codec.decode(codec.encode_reply(codec.ACCESS_ACCEPT, 1, AUTHENTICATOR, data, SECRET))
    return packet, tunnel_groups(packet.attrs, DICT, secret=SECRET,
                                 request_authenticator=AUTHENTICATOR)


def test_tags_follow_preference_then_listed_order():
    assert [(t.tag, t.address) for t in tagged_tunnels(ISP)] == [
        (1, "192.0.2.1"), (2, "192.0.2.3"), (3, "2001:db8::2")]


def test_groups_round_trip():
    _, groups = decoded(encode())
    assert groups == {
        1: {"Tunnel-Type": "L2TP", "Tunnel-Medium-Type": "IPv4",
            "Tunnel-Server-Endpoint": "192.0.2.1", "Tunnel-Password": b"lns-one secret",
            "Tunnel-Assignment-Id": "wholesale-a", "Tunnel-Preference": 1,
            "Tunnel-Client-Endpoint": "198.51.100.7", "Tunnel-Client-Auth-Id": "lac-berlin"},
        2: {"Tunnel-Type": "L2TP", "Tunnel-Medium-Type": "IPv4",
            "Tunnel-Server-Endpoint": "192.0.2.3", "Tunnel-Preference": 1},
        3: {"Tunnel-Type": "L2TP", "Tunnel-Medium-Type": "IPv6",
            "Tunnel-Server-Endpoint": "2001:db8::2", "Tunnel-Password": b"two",
            "Tunnel-Preference": 5},
    }


def test_wire_bytes_of_one_group():
    isp = Isp(name="x", mode="tunnel", tunnels=(TunnelEndpoint(address="10.0.0.1"),))
    # RFC 2868 §3.1, §3.2, §3.8: the integer's first octet is the tag; §3.3: a string's
    # tag octet precedes it.
    assert encode(isp).hex() == (
        "4006" "01000003"                      # Tunnel-Type:1 = L2TP (3)
        "4106" "01000001"                      # Tunnel-Medium-Type:1 = IPv4 (1)
        "430b" "01" + b"10.0.0.1".hex() +      # Tunnel-Server-Endpoint:1
        "5306" "01000001")                     # Tunnel-Preference:1 = 1


def test_tunnel_password_layout():
    packet, _ = decoded(encode())
    first, second = packet.attrs[69]
    # RFC 2868 §3.5: tag, 2-octet salt with the top bit set, then 16n octets
    for raw, tag, password in ((first, 1, b"lns-one secret"), (second, 3, b"two")):
        assert raw[0] == tag
        assert raw[1] & 0x80
        assert (len(raw) - 3) % 16 == 0
        assert decrypt_salted(raw[1:], SECRET, AUTHENTICATOR) == password
    assert first[1:3] != second[1:3]  # salts unique within the packet


def test_salts_are_unique_and_get_their_top_bit_even_from_a_poor_source():
    draws = iter([b"\x01\x02", b"\x81\x02", b"\x01\x03"])  # the first two are the same salt
    packet, _ = decoded(encode(salt=lambda: next(draws)))
    assert [raw[1:3] for raw in packet.attrs[69]] == [b"\x81\x02", b"\x81\x03"]
    with pytest.raises(ValueError, match="repeating"):
        encode(salt=lambda: b"\x80\x00")
    with pytest.raises(ValueError, match="2 octets"):
        encode(salt=lambda: b"\x80")


def test_the_password_is_hidden_for_the_request_being_answered():
    value = tunnel_password(7, b"pw", secret=SECRET, request_authenticator=AUTHENTICATOR,
                            salt=b"\x80\x01")
    mine = decode_tagged(value, True, secret=SECRET, request_authenticator=AUTHENTICATOR)
    assert (mine.tag, mine.value) == (7, b"pw")
    with pytest.raises(MalformedPacket):  # another request's authenticator: garbage
        decode_tagged(value, True, secret=SECRET, request_authenticator=bytes(16))


@pytest.mark.parametrize("raw, kwargs, tag, value", [
    (b"\x05\x00\x00\x03", dict(integer=True), 5, 3),
    (b"\x00\x00\x00\x03", dict(integer=True), 0, 3),
    (b"\x02abc", {}, 2, b"abc"),
    (b"abc", {}, 0, b"abc"),  # 'a' > 0x1F: no tag (RFC 2868 §3.3)
    (b"", {}, 0, b""),
])
def test_decode_tagged(raw, kwargs, tag, value):
    assert (decode_tagged(raw, **kwargs).tag, decode_tagged(raw, **kwargs).value) == (tag, value)


@pytest.mark.parametrize("raw, kwargs, words", [
    (b"\x01\x00\x03", dict(integer=True), "expected 4"),
    (b"", dict(has_salt=True), "tag octet"),
    (b"\x20" + bytes(18), dict(has_salt=True), "tag octet"),
    (b"\x01\x80\x01" + bytes(5), dict(has_salt=True), r"not 2 \+ 16n"),
])
def test_decode_tagged_rejects_malformed_values(raw, kwargs, words):
    with pytest.raises(MalformedPacket, match=words):
        decode_tagged(raw, secret=SECRET, request_authenticator=AUTHENTICATOR, **kwargs)


def test_at_most_31_tunnels():
    isp = Isp(name="x", tunnels=tuple(TunnelEndpoint(address=f"10.0.0.{i}") for i in range(32)))
    with pytest.raises(ValueError, match="at most 31"):
        tagged_tunnels(isp)


# --- NAS-type templates ----------------------------------------------------------------

def vendor_pairs(data):
    packet = codec.decode(codec.encode_reply(codec.ACCESS_ACCEPT, 1, AUTHENTICATOR, data, SECRET))
    return [v.decode() for v in packet.attrs.get((9, 1), [])]


def test_cisco_av_pairs():
    assert vendor_pairs(encode(nas_type="cisco")) == [
        "vpdn:tunnel-type=l2tp",
        "vpdn:ip-addresses=192.0.2.1 192.0.2.3 / 2001:db8::2",
        "vpdn:tunnel-id=lac-berlin",
        "vpdn:l2tp-tunnel-password=lns-one secret",
        "vpdn:tunnel-assignment-id=wholesale-a",
    ]


@pytest.mark.parametrize("nas_type", ["generic", "mikrotik", "no-such-type"])
def test_other_nas_types_add_nothing(nas_type):
    assert encode(nas_type=nas_type) == encode(nas_type="generic")
    assert vendor_pairs(encode(nas_type=nas_type)) == []


def test_an_extra_directory_overrides_the_shipped_templates(tmp_path):
    (tmp_path / "tunnel").mkdir()
    (tmp_path / "tunnel" / "cisco.j2").write_text(
        'Cisco-AVPair = {{ ("vpdn:ip-addresses=" ~ tunnels[0].address)|quote }}\n')
    templates = TunnelTemplates(DICT, str(tmp_path))
    assert vendor_pairs(encode(nas_type="cisco", templates=templates)) == [
        "vpdn:ip-addresses=192.0.2.1"]
    assert templates.encoded(ISP, "cisco") is templates.encoded(ISP, "cisco")  # cached


@pytest.mark.parametrize("text, words", [
    ("{{ isp.nowhere }}\n", "tunnel template"),
    ("Cisco-AVPair\n", "expected 'Attribute = value'"),
    ("No-Such-Attribute = 1\n", "unknown attribute No-Such-Attribute"),
    ("{% if %}\n", "tunnel template"),
])
def test_template_errors_name_the_template(tmp_path, text, words):
    (tmp_path / "tunnel").mkdir()
    (tmp_path / "tunnel" / "generic.j2").write_text(text)
    with pytest.raises(ConfigError, match=words) as caught:
        encode(templates=TunnelTemplates(DICT, str(tmp_path)))
    assert caught.value.file in ("tunnel/generic.j2", None)


# --- a second implementation: FreeRADIUS's radclient decodes what we send -------------

DICTIONARIES = Path(__file__).resolve().parents[2] / "radius-dictionaries"
RADCLIENT = shutil.which("radclient")


class OneShotResponder:
    """Answers one Access-Request with our tunnel attributes, from a thread."""

    def __init__(self, isp: Isp, nas_type: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.isp, self.nas_type = isp, nas_type
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._answer, daemon=True)
        self.thread.start()

    def _answer(self):
        try:
            data, peer = self.sock.recvfrom(4096)
            request = codec.decode(data)
            attrs = tunnel_attributes(self.isp, DICT, secret=SECRET,
                                      request_authenticator=request.authenticator,
                                      salt=salts(), nas_type=self.nas_type)
            self.sock.sendto(codec.encode_reply(codec.ACCESS_ACCEPT, request.ident,
                                                request.authenticator, attrs, SECRET), peer)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.sock.close()


@pytest.mark.parametrize("nas_type", ["generic", "cisco"])
def test_radclient_decodes_every_attribute(nas_type):
    # A missing radclient fails, never skips: this is the second implementation.
    assert RADCLIENT is not None, "radclient is missing: apt-get install freeradius-utils"
    responder = OneShotResponder(ISP, nas_type)
    result = subprocess.run(
        [RADCLIENT, "-x", "-r", "1", "-t", "10", "-D", str(DICTIONARIES),
         f"127.0.0.1:{responder.port}", "auth", SECRET.decode()],
        input=b'User-Name = "joe", User-Password = "pw", Message-Authenticator = 0x00\n',
        capture_output=True, timeout=60)
    responder.thread.join(timeout=30)
    assert responder.error is None, responder.error
    output = result.stdout.decode()
    assert result.returncode == 0, output + result.stderr.decode()
    received = output[output.index("Received Access-Accept"):]
    lines = [line.strip() for line in received.splitlines()[1:]]
    tunnel = [line for line in lines if line.startswith("Tunnel-")]
    assert tunnel == [
        "Tunnel-Type:1 = L2TP",
        "Tunnel-Medium-Type:1 = IPv4",
        'Tunnel-Server-Endpoint:1 = "192.0.2.1"',
        'Tunnel-Password:1 = "lns-one secret"',  # decrypted by radclient with the secret
        'Tunnel-Assignment-Id:1 = "wholesale-a"',
        "Tunnel-Preference:1 = 1",
        'Tunnel-Client-Endpoint:1 = "198.51.100.7"',
        'Tunnel-Client-Auth-Id:1 = "lac-berlin"',
        "Tunnel-Type:2 = L2TP",
        "Tunnel-Medium-Type:2 = IPv4",
        'Tunnel-Server-Endpoint:2 = "192.0.2.3"',
        "Tunnel-Preference:2 = 1",
        "Tunnel-Type:3 = L2TP",
        "Tunnel-Medium-Type:3 = IPv6",
        'Tunnel-Server-Endpoint:3 = "2001:db8::2"',
        'Tunnel-Password:3 = "two"',
        "Tunnel-Preference:3 = 5",
    ]
    avpairs = [re.sub(r'^Cisco-AVPair = "(.*)"$', r"\1", line) for line in lines
               if line.startswith("Cisco-AVPair")]
    assert avpairs == ([] if nas_type == "generic" else vendor_pairs(encode(nas_type="cisco")))


def test_tunnel_templates_come_from_the_reply_templates_directory(tmp_path):
    (tmp_path / "tunnel").mkdir()
    (tmp_path / "tunnel" / "generic.j2").write_text('Reply-Message = "via {{ isp.name }}"\n')
    templates = TunnelTemplates(DICT, str(tmp_path))
    assert templates.pairs(ISP, "generic") == [("Reply-Message", "via acme")]
    assert TunnelTemplates(DICT).pairs(ISP, "generic") == []
