"""vpop.directory.wire against ldap3's own encoding (pyasn1) of the same messages:
requests byte for byte, responses decoded from what pyasn1 and slapd's liblber write."""

from __future__ import annotations

import pytest
from ldap3 import SIMPLE
from ldap3.operation.bind import bind_operation
from ldap3.operation.search import search_operation
from ldap3.protocol.rfc4511 import (LDAPDN, URI, AttributeDescription, AttributeValue,
                                    BindResponse, LDAPMessage, MessageID, PartialAttribute,
                                    PartialAttributeList, ProtocolOp, SearchResultDone,
                                    SearchResultEntry, SearchResultReference, Vals)
from pyasn1.codec.ber import encoder

from vpop.directory import wire
from vpop.directory.filters import PLACEHOLDER, around_value, render


def ldap3_message(message_id: int, kind: str, operation) -> bytes:
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, operation)
    return encoder.encode(message)


def ldap3_search(message_id, base, text, attributes, scope=2, size=0, time=0):
    request = search_operation(base, text, scope, 3, attributes, size, time, False,
                               auto_escape=True, auto_encode=True)
    return ldap3_message(message_id, "searchRequest", request)


FILTERS = [
    "(uid=alice)",
    "(&(objectClass=inetOrgPerson)(uid=alice))",
    "(|(uid=a)(mail=a@example.net)(!(cn=b)))",
    "(&(objectClass=inetOrgPerson)(|(uid=bob)(mail=bob@example.net)))",
    "(uid=*)", "(cn=ab*)", "(cn=*ab)", "(cn=a*b*c)", "(cn=*a**b*)",
    "(age>=21)", "(age<=65)", "(cn~=jon)",
    "(cn:caseExactMatch:=Fred)", "(cn:dn:2.4.6.8.10:=Dino)", "(:dn:2.4.6.8.10:=x)",
    "(:1.2.3:=x)", "(o:dn:=Ace)", "(cn:=x)",
    "( &  (uid = alice ) ( mail=x ) )", "  (uid= spaced value )  ",
    r"(uid=\2a\29\28uid=\2a)", r"(cn=a\5cb)", r"(cn=nul\00)", r"(cn=\c3\a9)",
    r"(cn=a\zz)", r"(cn=a\2)", "(cn=trailing\\)", "(cn=jürgen)",
    "(description=" + "x" * 300 + ")",
]


@pytest.mark.parametrize("text", FILTERS)
def test_search_requests_are_byte_for_byte_ldap3s(text):
    attributes = ["uid", "userPassword", "memberOf"]
    ours = wire.search_request(7, "dc=example,dc=net", text, attributes, size_limit=2,
                               time_limit=3)
    assert ours == ldap3_search(7, "dc=example,dc=net", text, attributes, size=2, time=3)


@pytest.mark.parametrize("value", ["alice", "*)(uid=*", "a\\b", "nul\0", "tab\t",
                                   "jürgen", " lead", "trail ", "(x)", "ü*"])
def test_rendered_lookups_are_ldap3s(value):
    text = render("(&(objectClass=inetOrgPerson)(|(uid={user})(cn={name})))",
                  user=value, name=value)
    assert (wire.search_request(1, "ou=people,dc=x", text, ["1.1"])
            == ldap3_search(1, "ou=people,dc=x", text, ["1.1"]))


TEMPLATES = [
    "(&(objectClass=inetOrgPerson)(uid={user}))", "(uid={user})",
    "( & (objectClass=inetOrgPerson) ( uid = {user} ) )", "(|(uid={user})(!(cn=x)))",
    "(&(a=b)(|(c=d)(uid={user}*)(e=f))(g=h))", "(cn:dn:2.4.6.8:={value})",
    "(uid={user}@example.net)", "(&(uid=*)(mail={user}))", "(age>={value})",
    "(&(objectClass=inetOrgPerson)(uid=" + "x" * 120 + "{user}))",
]
VALUES = ["alice", "*)(uid=*", "a\\b", "nul\0", "tab\t", "jürgen", " lead", "trail ", "(x)",
          "ü*", "", "  ", "a)b", "\u3000wide\u3000", "\\2a", "&", "|(", "*", "y" * 130]


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_directorys_requests_are_search_requests(template):
    """SearchRequests encodes around the value what search_request encodes whole: for
    rendered values and for raw ones (any text between the template's two parts)."""
    before, after = around_value(template)
    name = PLACEHOLDER.findall(template)[0]
    requests = wire.SearchRequests("dc=x", ["uid", "userPassword"], size_limit=2,
                                   time_limit=3, templates=((before, after),))
    assert requests.templates  # compiled, not encoded whole
    for value in VALUES:
        for text in (render(template, **{name: value}), before + value + after):
            for message_id in (1, 127, 128, 70_000):
                try:
                    expected = wire.search_request(message_id, "dc=x", text,
                                                   ["uid", "userPassword"], size_limit=2,
                                                   time_limit=3)
                except wire.WireError:
                    with pytest.raises(wire.WireError):
                        requests.encode(message_id, text)
                    continue
                assert requests.encode(message_id, text) == expected, (text, message_id)


@pytest.mark.parametrize("template", ["({user}=x)", "(uid=a)({user})", "(uid={user}",
                                      "({user})", "(&(uid={user})(cn={user}))"])
def test_templates_whose_value_is_not_an_assertion_value_are_encoded_whole(template):
    parts = around_value(template)
    requests = wire.SearchRequests("dc=x", ["uid"], templates=(parts,) if parts else ())
    assert not requests.templates
    text = render(template, user="a")
    try:
        expected = wire.search_request(4, "dc=x", text, ["uid"])
    except wire.WireError:
        with pytest.raises(wire.WireError):
            requests.encode(4, text)
        return
    assert requests.encode(4, text) == expected


@pytest.mark.parametrize("message_id", [1, 127, 128, 255, 256, 65_535, 2**31 - 1])
def test_message_ids_and_limits_in_the_fewest_octets(message_id):
    assert (wire.search_request(message_id, "", "(objectClass=*)", [], scope=0,
                                size_limit=message_id, time_limit=128)
            == ldap3_search(message_id, "", "(objectClass=*)", [], scope=0, size=message_id,
                            time=128))


def test_a_long_request_has_a_long_form_length():
    attributes = [f"attribute{n}" for n in range(60)]
    ours = wire.search_request(2, "dc=x", "(uid=a)", attributes)
    assert ours[1] == 0x82 and ours == ldap3_search(2, "dc=x", "(uid=a)", attributes)


@pytest.mark.parametrize("dn, password", [
    ("uid=alice,ou=people,dc=example,dc=net", "secret"),
    ("cn=jürgen,dc=x", "pässword"),
    ("uid=x,dc=y", "p" * 200),
    ("uid=" + "d" * 110 + ",dc=x", "pass-0001"),  # each short, the whole long
    ("uid=y,dc=x", b"bytes \xff"),
])
def test_simple_binds_are_ldap3s(dn, password):
    request = bind_operation(3, SIMPLE, dn, password, auto_encode=True)
    assert wire.bind_request(9, dn, password) == ldap3_message(9, "bindRequest", request)


@pytest.mark.parametrize("text", ["uid=a", "(uid=a", "(uid=a))(", "(uid)", "(&)",
                                  "(!(a=b)(c=d))", "(a=b)(c=d)", "(:=x)", "(a:b:c:d:=x)"])
def test_filters_that_are_not_filters_are_refused(text):
    with pytest.raises(wire.WireError):
        wire.encode_filter(text)


def entry(message_id: int, dn: str, attributes: dict) -> bytes:
    found = SearchResultEntry()
    found["object"] = LDAPDN(dn)
    listed = PartialAttributeList()
    for number, (name, values) in enumerate(attributes.items()):
        attribute = PartialAttribute()
        attribute["type"] = AttributeDescription(name)
        vals = Vals()
        for index, value in enumerate(values):
            vals[index] = AttributeValue(value)
        attribute["vals"] = vals
        listed[number] = attribute
    found["attributes"] = listed
    return ldap3_message(message_id, "searchResEntry", found)


def result(kind, cls, message_id: int, code: int, matched: str = "", message: str = ""):
    done = cls()
    done["resultCode"] = code
    done["matchedDN"] = LDAPDN(matched)
    done["diagnosticMessage"] = message
    return ldap3_message(message_id, kind, done)


def test_responses_decode():
    stream = (entry(5, "uid=alice,dc=example,dc=net",
                    {"uid": [b"alice"], "userPassword": [b"{SSHA}abc", b"x" * 300],
                     "memberOf": []})
              + result("searchResDone", SearchResultDone, 5, 4, "", "size limit"))
    first = wire.message_length(stream)
    assert wire.message_length(stream[:first - 1]) == first  # known from the header
    assert wire.message_length(stream[:1]) is None
    found = wire.decode(stream[:first])
    assert (found.message_id, found.tag) == (5, wire.SEARCH_ENTRY)
    assert found.value == ("uid=alice,dc=example,dc=net",
                           {"uid": (b"alice",), "userpassword": (b"{SSHA}abc", b"x" * 300),
                            "memberof": ()})
    done = wire.decode(stream[first:first + wire.message_length(stream, first)])
    assert (done.message_id, done.tag) == (5, wire.SEARCH_DONE)
    assert done.value == wire.Result(4, "", "size limit")
    bound = wire.decode(result("bindResponse", BindResponse, 300, 49, "dc=x", "bad"))
    assert (bound.message_id, bound.tag, bound.value) == (300, wire.BIND_RESPONSE,
                                                         wire.Result(49, "dc=x", "bad"))
    reference = SearchResultReference()
    reference[0] = URI("ldap://other.example.net/dc=x")
    seen = wire.decode(ldap3_message(6, "searchResRef", reference))
    assert (seen.tag, seen.value) == (wire.SEARCH_REFERENCE, ("ldap://other.example.net/dc=x",))


def liblber(tag: int, content: bytes) -> bytes:
    """An element as slapd's liblber writes it: every length in four octets."""
    return bytes((tag, 0x84)) + len(content).to_bytes(4, "big") + content


def test_four_octet_lengths_as_slapd_writes_them():
    attribute = liblber(0x30, liblber(0x04, b"cn") + liblber(0x31, liblber(0x04, b"Alice")))
    message = liblber(0x30, liblber(0x02, b"\x02") + liblber(
        0x64, liblber(0x04, b"uid=alice,dc=x") + liblber(0x30, attribute)))
    assert wire.message_length(message + b"\x30") == len(message)
    assert wire.message_length(message[:5]) is None
    found = wire.decode(message)
    assert found.message_id == 2 and found.value == ("uid=alice,dc=x", {"cn": (b"Alice",)})


@pytest.mark.parametrize("data", [b"\x04\x01a", b"\x30\x80\x02\x01\x01",
                                  b"\x30\x85\x00\x00\x00\x00\x01"])
def test_what_is_not_a_message_is_refused(data):
    with pytest.raises(wire.WireError):
        wire.message_length(data)


@pytest.mark.parametrize("data", [b"\x30\x03\x02\x01\x01", b"\x30\x05\x02\x01\x01\x65\x05",
                                  b"\x30\x08\x02\x01\x01\x65\x03\x0a\x01\x00",
                                  b"\x30\x05\x04\x01\x01\x65\x00"])
def test_truncated_or_odd_messages_are_refused(data):
    with pytest.raises(wire.WireError):
        wire.decode(data)
    with pytest.raises(wire.WireError):
        wire.decode_next(data + b"\x30\x00", 0)  # in place, another message behind it


def test_messages_read_in_place_are_those_decoded_one_by_one():
    attribute = liblber(0x30, liblber(0x04, b"cn") + liblber(0x31, liblber(0x04, b"Alice")))
    messages = [
        entry(5, "uid=alice,dc=example,dc=net", {"uid": [b"alice"], "userPassword":
                                                 [b"{SSHA}abc", b"x" * 300], "memberOf": []}),
        entry(70_000, "uid=bob,dc=x", {"uid": [b"bob"]}),
        result("searchResDone", SearchResultDone, 5, 0),
        result("bindResponse", BindResponse, 300, 49, "dc=x", "bad" * 50),
        liblber(0x30, liblber(0x02, b"\x02") + liblber(
            0x64, liblber(0x04, b"uid=alice,dc=x") + liblber(0x30, attribute))),
    ]
    stream = b"".join(messages)
    position, found = 0, []
    while (answer := wire.decode_next(stream, position)) is not None:
        found.append(answer[0])
        position = answer[1]
    assert position == len(stream) and found == [wire.decode(m) for m in messages]
    for cut in range(len(messages[0])):  # a message not wholly read yet
        assert wire.decode_next(stream[:cut], 0) is None
