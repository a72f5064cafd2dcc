"""The requests vpop sends to NASes, per NAS type: identification and change
attributes, Event-Timestamp, Message-Authenticator and the hashed authenticator."""

from __future__ import annotations

import dataclasses

import pytest

from vpop.dynauth.request import (COA, DISCONNECT, Change, NothingToChange, RequestBuilder,
                                  SessionFacts)
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.dictionary import Dictionary, shipped_dictionary

DICTIONARY = Dictionary(shipped_dictionary())
BUILDER = RequestBuilder(DICTIONARY)
NOW = 1_765_000_000
SECRET = b"das-secret"

FACTS = SessionFacts(radacct_id=7, acct_session_id="8100001a", username="alice",
                     nas_name="bras-1", nas_reported="192.0.2.10", nas_port="15",
                     framed_ip="198.51.100.7", calling_station_id="02-00-00-00-00-01",
                     isp="isp-a")
RATES = Change(rate_down_kbps=10000, rate_up_kbps=2000, session_timeout=3600,
               idle_timeout=600)


def facts(nas_type: str, **changes) -> SessionFacts:
    return dataclasses.replace(FACTS, nas_type=nas_type, **changes)


def pairs(nas_type: str, kind: str = DISCONNECT, change: Change | None = None, **changes):
    return BUILDER.pairs(facts(nas_type, **changes), kind, change, now=NOW)


STAMP = ("Event-Timestamp", str(NOW))

DISCONNECTS = {
    "generic": [("Acct-Session-Id", "8100001a"), ("User-Name", "alice"),
                ("NAS-IP-Address", "192.0.2.10"), STAMP],
    "cisco": [("Acct-Session-Id", "8100001a"), ("User-Name", "alice"), STAMP],
    "mikrotik": [("User-Name", "alice"), ("Framed-IP-Address", "198.51.100.7"), STAMP],
    "juniper": [("Acct-Session-Id", "8100001a"), ("User-Name", "alice"),
                ("NAS-IP-Address", "192.0.2.10"), STAMP],
    "accel-ppp": [("User-Name", "alice"), ("Acct-Session-Id", "8100001a"),
                  ("Framed-IP-Address", "198.51.100.7"), STAMP],
    "hostapd": [("User-Name", "alice"), ("Acct-Session-Id", "8100001a"),
                ("Calling-Station-Id", "02-00-00-00-00-01"),
                ("NAS-IP-Address", "192.0.2.10"), STAMP],
}

CISCO_DOWN = ("lcp:interface-config=rate-limit output 10000000 1250000 2500000 "
              "conform-action transmit exceed-action drop")
CISCO_UP = ("lcp:interface-config=rate-limit input 2000000 250000 500000 "
            "conform-action transmit exceed-action drop")
TIMEOUTS = [("Session-Timeout", "3600"), ("Idle-Timeout", "600")]
COA_CHANGES = {
    "generic": TIMEOUTS + [("Vpop-Rate-Limit-Down", "10000"), ("Vpop-Rate-Limit-Up", "2000")],
    "cisco": TIMEOUTS + [("Cisco-AVPair", CISCO_DOWN), ("Cisco-AVPair", CISCO_UP)],
    "mikrotik": TIMEOUTS + [("Mikrotik-Rate-Limit", "2000k/10000k")],
    "juniper": TIMEOUTS + [("ERX-Egress-Policy-Name", "rate-10000k"),
                           ("ERX-Ingress-Policy-Name", "rate-2000k")],
    "accel-ppp": TIMEOUTS + [("Filter-Id", "10000/2000")],
}


@pytest.mark.parametrize("nas_type", sorted(DISCONNECTS))
def test_disconnect_identifies_the_session_as_the_nas_type_wants(nas_type):
    assert pairs(nas_type) == DISCONNECTS[nas_type]


@pytest.mark.parametrize("nas_type", sorted(COA_CHANGES))
def test_coa_carries_the_change_as_the_reply_template_translates_it(nas_type):
    identification = DISCONNECTS[nas_type][:-1]
    assert pairs(nas_type, COA, RATES) == identification + COA_CHANGES[nas_type] + [STAMP]


def test_hostapd_is_sent_a_timeout_by_coa_and_no_rate():
    # hostapd NAKs it (tests/e2e/test_dynauth_real_nas.py); the NAS answers for itself.
    identification = DISCONNECTS["hostapd"][:-1]
    assert pairs("hostapd", COA, RATES) == identification + [("Session-Timeout", "3600"),
                                                              STAMP]
    with pytest.raises(NothingToChange, match="hostapd NAS is sent none"):
        pairs("hostapd", COA, Change(rate_down_kbps=10000, rate_up_kbps=2000))


def test_a_change_the_nas_type_has_no_attribute_for_is_not_sent():
    # MikroTik's rate attribute needs both directions; a lone downstream rate has none.
    with pytest.raises(NothingToChange):
        pairs("mikrotik", COA, Change(rate_down_kbps=5000))


def test_hostapd_gets_no_proxy_state_nas_port_or_framed_ip_and_only_a_mac_caller():
    names = {name for name, _ in pairs("hostapd", calling_station_id="+49301234567")}
    assert names == {"User-Name", "Acct-Session-Id", "NAS-IP-Address", "Event-Timestamp"}


@pytest.mark.parametrize("reported, attribute", [
    ("192.0.2.10", ("NAS-IP-Address", "192.0.2.10")),
    ("2001:db8::10", ("NAS-IPv6-Address", "2001:db8::10")),
    ("bras-1.example", ("NAS-Identifier", "bras-1.example")),
])
def test_the_nas_is_named_as_it_named_itself(reported, attribute):
    assert attribute in pairs("generic", nas_reported=reported)


def test_mikrotik_without_an_address_is_asked_by_acct_session_id():
    assert pairs("mikrotik", framed_ip=None)[:2] == [("User-Name", "alice"),
                                                     ("Acct-Session-Id", "8100001a")]


def test_values_with_spaces_and_quotes_survive_the_template():
    got = pairs("cisco", acct_session_id='a "b" c', username="o'neil x")
    assert got[:2] == [("Acct-Session-Id", 'a "b" c'), ("User-Name", "o'neil x")]


@pytest.mark.parametrize("kind, code", [(DISCONNECT, codec.DISCONNECT_REQUEST),
                                        (COA, codec.COA_REQUEST)])
def test_the_datagram_is_signed_with_both_authenticators(kind, code):
    request = BUILDER.build(facts("generic"), kind, RATES if kind == COA else None, now=NOW)
    data = request.datagram(42, SECRET)
    packet = codec.decode(data)
    assert (packet.code, packet.ident) == (code, 42)
    assert data[20] == A.MESSAGE_AUTHENTICATOR  # first (BlastRADIUS)
    assert codec.request_authenticator_ok(packet, SECRET)
    assert codec.message_authenticator_ok(packet, SECRET)
    assert not codec.request_authenticator_ok(packet, b"other")
    assert not codec.message_authenticator_ok(packet, b"other")
    assert packet.first(A.EVENT_TIMESTAMP) == NOW.to_bytes(4, "big")
    assert A.PROXY_STATE not in packet.attrs


def test_audit_text_lists_what_was_sent():
    request = BUILDER.build(facts("cisco"), DISCONNECT, now=NOW)
    assert request.text() == ("Acct-Session-Id = 8100001a\nUser-Name = alice\n"
                              f"Event-Timestamp = {NOW}")


def test_an_operators_template_directory_comes_first(tmp_path):
    (tmp_path / "dynauth").mkdir()
    (tmp_path / "dynauth" / "cisco.j2").write_text(
        "User-Name = {{ session.username|quote }}\n"
        "NAS-Port = {{ session.nas_port_number }}\n")
    builder = RequestBuilder(DICTIONARY, str(tmp_path))
    assert builder.pairs(facts("cisco"), DISCONNECT, now=NOW) == [
        ("User-Name", "alice"), ("NAS-Port", "15"), STAMP]


def test_a_change_over_a_profile_keeps_what_it_does_not_give():
    base = Change(rate_down_kbps=1000, rate_up_kbps=500, session_timeout=60, profile="p")
    assert Change(rate_up_kbps=700).over(base) == dataclasses.replace(base, rate_up_kbps=700)
    assert Change().empty and Change(profile="p").empty and not base.empty
