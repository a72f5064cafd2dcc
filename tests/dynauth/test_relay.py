"""The relay's pure rules (vpop/dynauth/relay.py): which session an ISP's request names,
what is passed on to the NAS, and what the ISP is answered."""

from __future__ import annotations

import pytest

from vpop.dynauth.relay import (SessionQuery, answer_for, changes, matches, names_known_to,
                                read_query, same_caller, user_parts)
from vpop.dynauth.request import SessionFacts
from vpop.dynauth.result import Result
from vpop.errors import MalformedPacket
from vpop.isp.model import Isp
from vpop.isp.realms import parse_realm
from vpop.radius import attributes as A
from vpop.radius import codec

STRIPPED = Isp(name="a", realms=(parse_realm("@a.example"),))
REWRITTEN = Isp(name="a", realms=(parse_realm("@a.example"),),
                rewrite="{user}@wholesale.a.example")
FACTS = SessionFacts(radacct_id=1, acct_session_id="S1", username="joe@a.example",
                     nas_name="bras", nas_reported="192.0.2.1", nas_port="7",
                     framed_ip="10.0.0.1", calling_station_id="02-00-00-00-00-01", isp="a")


def packet(code=codec.DISCONNECT_REQUEST, attrs=b""):
    return codec.decode(codec.encode_request(code, 1, attrs, b"s"))


def test_the_isp_knows_its_users_by_the_name_vpop_sent_it():
    assert names_known_to(STRIPPED, "joe@a.example") == {"joe@a.example", "joe"}
    assert "joe@wholesale.a.example" in names_known_to(REWRITTEN, "joe@a.example")
    query = SessionQuery(isp="a", user_name="joe@wholesale.a.example")
    assert user_parts(query, REWRITTEN) == ("joe@wholesale.a.example", "joe")


@pytest.mark.parametrize("query, expected", [
    (SessionQuery(isp="a", acct_session_id="S1"), True),
    (SessionQuery(isp="a", user_name="joe"), True),
    (SessionQuery(isp="a", user_name="JOE"), False),
    (SessionQuery(isp="a", calling_station_id="02:00:00:00:00:01"), True),
    (SessionQuery(isp="a", framed_ip="10.0.0.2"), False),
    (SessionQuery(isp="a", acct_session_id="S1", nas_ip="192.0.2.1", nas_port="7"), True),
    (SessionQuery(isp="a", acct_session_id="S1", nas_ip="192.0.2.2"), False),
    # The NAS named itself by address: a NAS-Identifier is not compared with it.
    (SessionQuery(isp="a", acct_session_id="S1", nas_identifier="bras"), True),
    (SessionQuery(isp="b", acct_session_id="S1"), False),  # another ISP's, never
])
def test_matches(query, expected):
    assert matches(query, STRIPPED, FACTS) is expected


def test_read_query_and_what_names_a_session():
    attrs = (codec.attribute(A.USER_NAME, b"joe") +
             codec.attribute(A.NAS_IP_ADDRESS, bytes([192, 0, 2, 1])) +
             codec.attribute(A.NAS_PORT, (7).to_bytes(4, "big")))
    query = read_query(packet(attrs=attrs), STRIPPED)
    assert (query.user_name, query.nas_ip, query.nas_port) == ("joe", "192.0.2.1", "7")
    assert query.names_a_session
    nas_only = read_query(packet(attrs=codec.attribute(A.NAS_IP_ADDRESS, bytes(4))), STRIPPED)
    assert not nas_only.names_a_session
    with pytest.raises(MalformedPacket):
        read_query(packet(attrs=codec.attribute(A.FRAMED_IP_ADDRESS, b"\x0a\x00")), STRIPPED)


def test_mac_addresses_compare_in_any_spelling():
    assert same_caller("0200.0000.0001", "02-00-00-00-00-01")
    assert not same_caller("02-00-00-00-00-02", "02-00-00-00-00-01")
    assert same_caller("+4930100", "+4930100") and not same_caller("x", None)


def test_a_coa_passes_on_its_changes_but_never_names_proxy_state_or_signatures():
    vsa = codec.vendor_attribute(9, 1, b"subscriber:command=reauthenticate")
    attrs = (codec.attribute(A.USER_NAME, b"joe") + codec.attribute(A.PROXY_STATE, b"p") +
             codec.attribute(A.SESSION_TIMEOUT, (60).to_bytes(4, "big")) + vsa +
             codec.attribute(A.EVENT_TIMESTAMP, (1).to_bytes(4, "big")))
    assert changes(packet(codec.COA_REQUEST, attrs)) == \
        codec.attribute(A.SESSION_TIMEOUT, (60).to_bytes(4, "big")) + vsa


@pytest.mark.parametrize("result, code, cause", [
    (Result(outcome="ack"), codec.DISCONNECT_ACK, None),
    (Result(outcome="nak", error_cause=504), codec.DISCONNECT_NAK, 504),
    (Result(outcome="nak"), codec.DISCONNECT_NAK, None),
    (Result(outcome="timeout"), codec.DISCONNECT_NAK, 506),
    (Result(outcome="error", reason="no endpoint"), codec.DISCONNECT_NAK, 502),
])
def test_the_answer_to_the_isp(result, code, cause):
    got, attrs = answer_for(codec.DISCONNECT_REQUEST, result)
    assert got == code
    expected = codec.attribute(A.ERROR_CAUSE, cause.to_bytes(4, "big")) if cause else b""
    assert attrs == expected
