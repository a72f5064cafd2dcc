"""A NAS's answer as vpop reports it: ACK, NAK with its Error-Cause in words, timeout."""

from __future__ import annotations

import pytest

from vpop.dynauth import result as R
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.dictionary import Dictionary, shipped_dictionary

DICTIONARY = Dictionary(shipped_dictionary())

RFC_5176 = {201: "Residual-Context-Removed", 202: "Invalid-EAP-Packet",
            401: "Unsupported-Attribute", 402: "Missing-Attribute",
            403: "NAS-Identification-Mismatch", 404: "Invalid-Request",
            405: "Unsupported-Service", 406: "Unsupported-Extension",
            407: "Invalid-Attribute-Value", 501: "Administratively-Prohibited",
            502: "Proxy-Request-Not-Routable", 503: "Session-Context-Not-Found",
            504: "Session-Context-Not-Removable", 505: "Proxy-Processing-Error",
            506: "Resources-Unavailable", 507: "Request-Initiated",
            508: "Multiple-Session-Selection-Unsupported"}


def test_every_error_cause_of_rfc_5176_has_its_words():
    assert R.ERROR_CAUSES == RFC_5176


def test_the_words_are_the_dictionarys():
    values = DICTIONARY["Error-Cause"].values
    assert {int.from_bytes(raw, "big"): name for name, raw in values.items()} == RFC_5176


@pytest.mark.parametrize("value, words", [(None, ""), (299, "unlisted success cause"),
                                          (499, "unlisted client error"),
                                          (599, "unlisted NAS error"),
                                          (7, "not an RFC 5176 value")])
def test_values_rfc_5176_does_not_list(value, words):
    assert R.error_cause_words(value) == words


def reply(code: int, attrs: bytes = b"") -> codec.Packet:
    return codec.decode(codec.encode_reply(code, 1, bytes(16), attrs, b"s"))


def cause(value: int) -> bytes:
    return codec.attribute(A.ERROR_CAUSE, value.to_bytes(4, "big"))


def test_an_ack():
    result = R.from_answer(reply(codec.DISCONNECT_ACK), DICTIONARY, tries=1,
                           endpoint="192.0.2.1:3799")
    assert (result.outcome, result.ok, result.describe()) == ("ack", True, "ACK")


def test_a_nak_with_its_error_cause_in_words():
    result = R.from_answer(reply(codec.COA_NAK, cause(503)), DICTIONARY, tries=2,
                           endpoint="192.0.2.1:3799")
    assert (result.outcome, result.error_cause, result.error_words) == (
        "nak", 503, "Session-Context-Not-Found")
    assert result.describe() == "NAK, Error-Cause 503 (Session-Context-Not-Found)"
    assert result.answer == (("Error-Cause", "Session-Context-Not-Found"),)


def test_a_nak_without_error_cause():
    result = R.from_answer(reply(codec.DISCONNECT_NAK), DICTIONARY, tries=1, endpoint="x")
    assert result.describe() == "NAK without Error-Cause"


def test_an_ack_with_residual_context_removed():
    result = R.from_answer(reply(codec.DISCONNECT_ACK, cause(201)), DICTIONARY, tries=1,
                           endpoint="x")
    assert result.describe() == "ACK, Error-Cause 201 (Residual-Context-Removed)"


def test_a_timeout_says_where_and_how_often():
    result = R.timed_out(tries=3, endpoint="192.0.2.1:3799")
    assert result.describe() == "timeout: no answer from 192.0.2.1:3799 after 3 tries"
    assert R.timed_out(tries=1, endpoint="h:1").describe().endswith("after 1 try")
