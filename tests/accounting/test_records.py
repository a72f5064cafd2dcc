"""Accounting-Request to record: event time, counters, addresses, bad input."""

import ipaddress

import pytest

from vpop.accounting.records import (BAD_COUNTER, BAD_DELAY, BAD_SESSION_TIME,
                                     BAD_TIMESTAMP, MAX_FUTURE, content_key, event_time,
                                     record_from)
from vpop.accounting.routing import Routing
from vpop.errors import MalformedPacket
from vpop.radius import codec
from vpop.radius.clients import NasClient
from vpop.radius.dictionary import Dictionary, shipped_dictionary

DICT = Dictionary(shipped_dictionary())
CLIENT = NasClient(name="proxy-1", network=ipaddress.ip_network("198.51.100.0/24"),
                   secret=b"s3cret")
NOW = 1_772_366_400  # 2026-03-01T12:00:00Z


def packet(pairs, raw=b""):
    data = codec.encode_request(codec.ACCOUNTING_REQUEST, 1, DICT.encode_pairs(pairs) + raw,
                                b"s3cret", message_authenticator=False)
    return codec.decode(data)


def record(pairs, raw=b"", now=NOW):
    return record_from(packet([("Acct-Session-Id", "abc"), *pairs], raw), CLIENT, now)


def test_event_time_is_event_timestamp_minus_delay():
    r = record([("Acct-Status-Type", "Start"), ("Event-Timestamp", NOW - 100),
                ("Acct-Delay-Time", 30)])
    assert (r.event_time, r.delay, r.arrival, r.flags) == (NOW - 130, 30, NOW, ())


def test_without_event_timestamp_it_is_arrival_minus_delay():
    r = record([("Acct-Status-Type", "Start"), ("Acct-Delay-Time", 30)], now=NOW + 0.7)
    assert r.event_time == NOW - 30


@pytest.mark.parametrize("stamp, delay, expected, flags", [
    (0, 0, NOW, (BAD_TIMESTAMP,)),  # a NAS clock that was never set
    (NOW + MAX_FUTURE + 1, 5, NOW - 5, (BAD_TIMESTAMP,)),  # runs ahead of ours
    (NOW + MAX_FUTURE, 0, NOW + MAX_FUTURE, ()),
    (NOW - 86_400 * 30, 0, NOW - 86_400 * 30, ()),  # a replay of last month is fine
    (NOW, 10 * 86_400, NOW, (BAD_DELAY,)),  # weeks of delay: not a delay
])
def test_absurd_clocks_are_replaced_and_flagged(stamp, delay, expected, flags):
    assert event_time(stamp, delay, NOW)[0::2] == (expected, flags)


def test_nas_identity_is_what_the_nas_sends_not_the_source():
    assert record([("Acct-Status-Type", "Start"), ("NAS-IP-Address", "192.0.2.1"),
                   ("NAS-Identifier", "bras-1")]).nas_address == "192.0.2.1"
    assert record([("Acct-Status-Type", "Start"),
                   ("NAS-IPv6-Address", "2001:db8::1")]).nas_address == "2001:db8::1"
    assert record([("Acct-Status-Type", "Start"),
                   ("NAS-Identifier", "bras-1")]).nas_address == "bras-1"
    assert record([("Acct-Status-Type", "Start")]).nas_address == "proxy-1"


def test_counters_with_gigawords_packets_and_addresses():
    r = record([("Acct-Status-Type", "Interim-Update"), ("Acct-Input-Octets", 5),
                ("Acct-Input-Gigawords", 2), ("Acct-Output-Octets", 7),
                ("Acct-Input-Packets", 11), ("Acct-Output-Packets", 13),
                ("Acct-Session-Time", 600), ("NAS-Port", 42), ("NAS-Port-Id", "eth 0/1"),
                ("Framed-IP-Address", "10.0.0.9"), ("Framed-IPv6-Prefix", "2001:db8:1::/48"),
                ("Delegated-IPv6-Prefix", "2001:db8:2::/56"),
                ("Called-Station-Id", "4930999")])
    assert (r.input_octets, r.output_octets) == ((2 << 32) + 5, 7)
    assert (r.input_packets, r.output_packets, r.gigawords) == (11, 13, True)
    assert (r.nas_port, r.nas_port_number, r.session_time) == ("eth 0/1", 42, 600)
    assert (r.framed_ip, r.framed_ipv6_prefix, r.delegated_ipv6_prefix) == (
        "10.0.0.9", "2001:db8:1::/48", "2001:db8:2::/56")
    assert r.called_station_id == "4930999"
    assert record([("Acct-Status-Type", "Stop")]).gigawords is False


def test_routing_comes_from_the_echoed_class():
    r = record([("Acct-Status-Type", "Start"), ("Class", "res-10m"),
                ("Class", "vpop1;isp=isp-a;mode=proxy;reason=realm")])
    assert r.routing == Routing(isp="isp-a", mode="proxy", reason="realm")
    assert record([("Acct-Status-Type", "Start")]).routing.mode == "local"


def test_missing_acct_status_type_is_malformed():
    with pytest.raises(MalformedPacket, match="Acct-Status-Type"):
        record([])


def test_missing_session_id_is_malformed_except_for_accounting_on():
    with pytest.raises(MalformedPacket, match="Acct-Session-Id"):
        record_from(packet([("Acct-Status-Type", "Start")]), CLIENT, NOW)
    on = record_from(packet([("Acct-Status-Type", "Accounting-On")]), CLIENT, NOW)
    assert on.status == "on"


def test_unrecorded_status_types_are_none():
    assert record([("Acct-Status-Type", "Failed")]) is None


def test_session_time_longer_than_the_epoch_is_dropped_and_flagged():
    r = record([("Acct-Status-Type", "Stop"), ("Acct-Session-Time", 0xFFFFFFFF)])
    assert (r.session_time, r.flags) == (0, (BAD_SESSION_TIME,))


def test_counters_no_nas_can_have_sent_are_dropped_and_flagged():
    r = record([("Acct-Status-Type", "Interim-Update"), ("Acct-Input-Gigawords", 0xFFFFFFFF),
                ("Acct-Input-Octets", 1), ("Acct-Output-Octets", 7)])
    assert (r.input_octets, r.output_octets, r.flags) == (0, 7, (BAD_COUNTER,))


def test_text_is_cut_to_what_the_store_keeps():
    r = record([("Acct-Status-Type", "Start"), ("User-Name", "u" * 200),
                ("Calling-Station-Id", "49\x0030" + "1" * 100)])
    assert (len(r.username), r.calling_station_id) == (128, "4930" + "1" * 60)


def test_a_retransmission_has_the_same_content_key_whatever_its_delay():
    pairs = [("Acct-Status-Type", "Interim-Update"), ("Event-Timestamp", NOW - 60),
             ("Acct-Session-Time", 300), ("Acct-Input-Octets", 1000)]
    first = record(pairs + [("Acct-Delay-Time", 0)])
    again = record(pairs + [("Acct-Delay-Time", 9)], now=NOW + 9)
    later = record([*pairs[:2], ("Acct-Session-Time", 600), ("Acct-Input-Octets", 1000)])
    assert content_key(first) == content_key(again) != content_key(later)
