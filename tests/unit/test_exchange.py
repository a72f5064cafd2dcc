"""The client-side exchange against a scripted server: no sockets, no clock."""

import ast
import random
import weakref
from pathlib import Path

import pytest

import vpop.radius.exchange as exchange_module
from support import radius_peer as peer
from support.radius_peer import Scripted
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.exchange import (TOO_SHORT, UNKNOWN, Answer, Discarded, Exchange, Transmit,
                                  Timeout)

SECRET = b"server-secret"
SERVER = ("192.0.2.10", 1812)
OTHER = ("192.0.2.11", 1812)


def exchange(sockets=1, rng=None) -> Exchange:
    rng = rng or random.Random(3)
    return Exchange(rng=rng, sockets=sockets, random_bytes=random.Random(4).randbytes)


def access_request(attrs=b""):
    def build(ident: int, authenticator: bytes) -> bytes:
        return codec.encode_request(codec.ACCESS_REQUEST, ident,
                                    codec.attribute(A.USER_NAME, b"alice") + attrs, SECRET,
                                    authenticator=authenticator)
    return build


def send(ex, addr=SERVER, *, now=0.0, deadline=2.0, build=None, **kw) -> Transmit:
    out = ex.send(addr, build or access_request(), secret=SECRET, now=now, deadline=deadline,
                  **kw)
    assert out is not None
    return out


def reply_to(sent: Transmit, code=codec.ACCESS_ACCEPT, *, secret=SECRET, **kw) -> bytes:
    return peer.reply_to(sent, code, secret=secret, **kw)


def test_a_request_is_built_with_its_identifier_and_a_fresh_authenticator():
    seen = []

    def build(ident, authenticator):
        seen.append((ident, authenticator))
        return access_request()(ident, authenticator)
    ex = exchange()
    out = ex.send(SERVER, build, secret=SECRET, now=0.0, deadline=2.0, context="mine")
    ((ident, authenticator),) = seen
    assert out == Transmit(out.data, SERVER, 0)
    assert out.data[1] == ident and out.data[4:20] == authenticator and len(authenticator) == 16
    (request,) = ex.pending.values()
    assert (request.ident, request.authenticator, request.context) == (ident, authenticator,
                                                                        "mine")
    answer = ex.on_reply(reply_to(out), SERVER)
    assert type(answer) is Answer and answer.request is request
    assert answer.packet.code == codec.ACCESS_ACCEPT
    assert not ex.pending


def test_identifiers_are_per_source_socket_and_destination_and_run_out():
    ex = exchange()
    sends = [send(ex) for _ in range(256)]
    assert sorted(s.data[1] for s in sends) == list(range(256))
    assert ex.send(SERVER, access_request(), secret=SECRET, now=0.0, deadline=2.0) is None
    # Another server (or another port of the same one) has Identifiers of its own.
    assert send(ex, OTHER).data[1] in range(256)
    assert send(ex, (SERVER[0], 1813)).addr == (SERVER[0], 1813)
    # An answer frees its Identifier.
    ex.on_reply(reply_to(sends[7]), SERVER)
    assert send(ex).data[1] == sends[7].data[1]


def test_several_source_sockets_give_256_identifiers_each():
    ex = exchange(sockets=3)
    sends = [send(ex) for _ in range(768)]
    assert len({(s.sock, s.data[1]) for s in sends}) == 768
    assert {s.sock for s in sends} == {0, 1, 2}
    assert ex.send(SERVER, access_request(), secret=SECRET, now=0.0, deadline=2.0) is None
    # A reply is matched on the socket it came to: on another, it is checked against
    # that socket's request with the same Identifier, and fails.
    last = sends[-1]
    assert type(ex.on_reply(reply_to(last), SERVER, (last.sock + 1) % 3)) is Discarded
    assert type(ex.on_reply(reply_to(last), SERVER, last.sock)) is Answer


def test_avoided_identifiers_are_not_given():
    ex = exchange(rng=Scripted(5, 5, 5, 5, 5, 5, 5, 5, 5))
    out = send(ex, avoid={5})
    assert out.data[1] != 5
    full = exchange()
    sends = [send(full, avoid={0, 1}) for _ in range(254)]
    assert {s.data[1] for s in sends} == set(range(2, 256))
    assert full.send(SERVER, access_request(), secret=SECRET, now=0.0, deadline=2.0,
                     avoid={0, 1}) is None


def test_a_reply_from_another_address_port_or_socket_is_unmatched():
    ex = exchange(sockets=2)
    out = send(ex)
    data = reply_to(out)
    assert ex.on_reply(data, ("192.0.2.99", SERVER[1]), out.sock) is UNKNOWN
    assert ex.on_reply(data, (SERVER[0], 1645), out.sock) is UNKNOWN
    assert ex.on_reply(data, SERVER, 1 - out.sock) is UNKNOWN
    assert ex.on_reply(data[:19], SERVER, out.sock) is TOO_SHORT
    assert type(ex.on_reply(data, SERVER + (0, 0), out.sock)) is Answer  # IPv6-style tuple


@pytest.mark.parametrize("forge, reason", [
    (dict(secret=b"wrong"), "Response Authenticator"),
    (dict(signed=False), "no Message-Authenticator"),
    (dict(echo=False), "no Proxy-State"),
    (dict(code=codec.ACCOUNTING_RESPONSE), "does not answer"),
])
def test_a_reply_that_does_not_verify_is_discarded_and_the_real_one_still_counts(forge, reason):
    ex = exchange()
    out = send(ex, build=access_request(codec.attribute(A.PROXY_STATE, b"ours")),
               proxy_state=b"ours", require_message_authenticator=True)
    event = ex.on_reply(reply_to(out, **forge), SERVER)
    assert type(event) is Discarded and reason in event.reason
    assert ex.pending
    assert type(ex.on_reply(reply_to(out), SERVER)) is Answer


def test_another_proxy_state_last_is_not_ours():
    ex = exchange()
    out = send(ex, build=access_request(codec.attribute(A.PROXY_STATE, b"ours")),
               proxy_state=b"ours")
    request = codec.decode(out.data)
    forged = codec.encode_reply(codec.ACCESS_ACCEPT, request.ident, request.authenticator,
                                codec.attribute(A.PROXY_STATE, b"ours") +
                                codec.attribute(A.PROXY_STATE, b"theirs"), SECRET)
    event = ex.on_reply(forged, SERVER)
    assert type(event) is Discarded and event.reason == "not our Proxy-State"


def test_a_malformed_reply_to_a_pending_request_is_discarded():
    ex = exchange()
    out = send(ex)
    data = bytearray(reply_to(out))
    data[2:4] = (4000).to_bytes(2, "big")  # Length beyond the datagram
    event = ex.on_reply(bytes(data), SERVER)
    assert type(event) is Discarded and event.reason == "malformed"


def test_an_unsigned_reply_is_accepted_where_the_request_does_not_ask_for_a_signature():
    ex = exchange()
    out = send(ex)
    assert type(ex.on_reply(reply_to(out, signed=False), SERVER)) is Answer


def test_status_server_is_answered_without_proxy_state():
    ex = exchange()

    def probe(ident, authenticator):
        return codec.encode_request(codec.STATUS_SERVER, ident,
                                    codec.attribute(A.PROXY_STATE, b"ours"), SECRET,
                                    authenticator=authenticator)
    out = send(ex, build=probe, proxy_state=b"ours", require_message_authenticator=True)
    request = codec.decode(out.data)
    answer = codec.encode_reply(codec.ACCESS_ACCEPT, request.ident, request.authenticator,
                                b"", SECRET, to_status_server=True)
    assert type(ex.on_reply(answer, SERVER)) is Answer


def test_accounting_requests_carry_their_own_authenticator():
    ex = exchange()

    def build(ident, _authenticator):
        return codec.encode_request(codec.ACCOUNTING_REQUEST, ident,
                                    codec.attribute(A.ACCT_SESSION_ID, b"s1"), SECRET)
    out = send(ex, (SERVER[0], 1813), build=build)
    (request,) = ex.pending.values()
    assert request.authenticator == out.data[4:20]
    assert codec.request_authenticator_ok(codec.decode(out.data), SECRET)
    # FreeRADIUS signs an Accounting-Response's Message-Authenticator with zeros.
    reply = codec.encode_reply(codec.ACCOUNTING_RESPONSE, out.data[1], out.data[4:20], b"",
                               SECRET, message_authenticator=False)
    assert type(ex.on_reply(reply, (SERVER[0], 1813))) is Answer


def test_deadlines_expire_in_order_and_late_replies_match_nothing():
    ex = exchange()
    first = send(ex, now=0.0, deadline=2.0, context="first")
    second = send(ex, now=0.5, deadline=1.0, context="second")
    assert ex.next_deadline() == 1.0
    assert ex.expire(0.9) == []
    (timeout,) = ex.expire(1.0)
    assert type(timeout) is Timeout and timeout.request.context == "second"
    assert ex.next_deadline() == 2.0
    assert [t.request.context for t in ex.expire(5.0)] == ["first"]
    assert ex.next_deadline() is None and not ex.pending
    assert ex.on_reply(reply_to(first), SERVER) is UNKNOWN
    assert ex.on_reply(reply_to(second), SERVER) is UNKNOWN


def test_a_late_reply_to_an_identifier_given_again_does_not_answer_the_new_request():
    ex = exchange(rng=Scripted(42, 42))
    old = send(ex, deadline=1.0)
    ex.expire(1.0)
    new = send(ex, now=1.0, deadline=3.0)
    assert new.data[1] == old.data[1] == 42
    event = ex.on_reply(reply_to(old), SERVER)
    assert type(event) is Discarded and "Authenticator" in event.reason
    answer = ex.on_reply(reply_to(new), SERVER)
    assert type(answer) is Answer and answer.request.sent == 1.0


def test_a_retransmission_keeps_the_bytes_and_moves_the_deadline():
    ex = exchange()
    out = send(ex, deadline=1.0)
    (request,) = ex.pending.values()
    again = ex.retransmit(request, deadline=3.0)
    assert again == out
    assert ex.expire(2.0) == []  # the first deadline no longer counts
    assert ex.next_deadline() == 3.0
    (timeout,) = ex.expire(3.0)
    # Timed out, it may still go again as it was while its slot is free.
    assert ex.retransmit(timeout.request, deadline=5.0) == out
    assert type(ex.on_reply(reply_to(out), SERVER)) is Answer


def test_a_timed_out_request_does_not_take_back_a_slot_given_to_another():
    ex = exchange(rng=Scripted(9, 9))
    send(ex, deadline=1.0)
    (timeout,) = ex.expire(1.0)
    send(ex, now=1.0, deadline=3.0)
    assert ex.retransmit(timeout.request, deadline=4.0) is None


def test_a_stored_datagram_is_resent_as_it_is():
    built = exchange().send(SERVER, access_request(), secret=SECRET, now=0.0, deadline=1.0)
    ex = exchange(rng=Scripted(built.data[1]))  # a new process
    again = ex.resend(built.data, SERVER, secret=SECRET, now=10.0, deadline=12.0)
    assert again == built
    # While it is pending, its Identifier is not given, nor resent twice.
    assert ex.resend(built.data, SERVER, secret=SECRET, now=10.0, deadline=12.0) is None
    assert send(ex).data[1] != built.data[1]
    assert type(ex.on_reply(reply_to(built), SERVER)) is Answer


def test_cancel_frees_the_identifier_and_leaves_no_deadline():
    ex = exchange(rng=Scripted(3, 3))
    send(ex)
    (request,) = ex.pending.values()
    ex.cancel(request)
    assert not ex.pending and ex.next_deadline() is None and ex.expire(10.0) == []
    assert send(ex).data[1] == 3


def test_a_failed_build_leaves_nothing_pending():
    ex = exchange()

    def broken(ident, authenticator):
        raise ValueError("attribute too long")
    with pytest.raises(ValueError):
        ex.send(SERVER, broken, secret=SECRET, now=0.0, deadline=1.0)
    with pytest.raises(ValueError, match="Identifier"):
        ex.send(SERVER, lambda ident, auth: access_request()((ident + 1) % 256, auth),
                secret=SECRET, now=0.0, deadline=1.0)
    assert not ex.pending


def test_the_exchange_does_no_io():
    tree = ast.parse(Path(exchange_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"socket", "asyncio", "threading", "selectors", "os", "time"}


def test_an_answered_request_is_not_kept():
    # The proxy's requests carry the NAS's job; the exchange must not hold it after the
    # answer (a collector walking thousands of finished jobs costs every request).
    class Job:
        pass
    ex = exchange()
    job = Job()
    ref = weakref.ref(job)
    out = send(ex, context=job)
    del job
    assert type(ex.on_reply(reply_to(out), SERVER)) is Answer
    assert ref() is None


@pytest.mark.parametrize("code, answer, answers", [
    (codec.COA_REQUEST, codec.COA_ACK, True),
    (codec.COA_REQUEST, codec.COA_NAK, True),
    (codec.COA_REQUEST, codec.DISCONNECT_ACK, False),
    (codec.DISCONNECT_REQUEST, codec.DISCONNECT_NAK, True),
    (codec.DISCONNECT_REQUEST, codec.ACCESS_ACCEPT, False),
])
def test_coa_and_disconnect_to_a_nas(code, answer, answers):
    # RFC 5176: vpop as the Dynamic Authorization Client, the NAS on port 3799.
    nas = ("192.0.2.50", 3799)
    ex = exchange()

    def build(ident, _authenticator):
        return codec.encode_request(code, ident, codec.attribute(A.ACCT_SESSION_ID, b"s1"),
                                    SECRET)
    out = send(ex, nas, build=build)
    assert codec.request_authenticator_ok(codec.decode(out.data), SECRET)
    reply = codec.encode_reply(answer, out.data[1], out.data[4:20], b"", SECRET)
    assert (type(ex.on_reply(reply, nas)) is Answer) is answers
