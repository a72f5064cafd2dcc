"""The accounting forwarder's engine with a scripted ISP: no sockets, no database.

What the shell stores is played back as the QueuedRecord the queue would return,
so a restart is a new engine given the same rows.
"""

import dataclasses
import random

import pytest

from support.radius_peer import Scripted, reply_to
from vpop.isp.acct_forward import (AccountingForwarder, Attempt, Delivered, QueuedRecord,
                                   Retry, queued_attributes)
from vpop.isp.model import Isp, UpstreamServer
from vpop.isp.pool import PoolSettings, Pools
from vpop.radius import attributes as A
from vpop.radius import codec
from vpop.radius.exchange import Transmit

SECRET = b"isp-secret"
PRIMARY = UpstreamServer(name="isp-a/1", address="192.0.2.10", acct_port=1813,
                         secret=SECRET, priority=1)
SECONDARY = UpstreamServer(name="isp-a/2", address="192.0.2.11", acct_port=1813,
                           secret=SECRET, priority=2)
ISP = Isp(name="isp-a", servers=(PRIMARY, SECONDARY))
ONE = Isp(name="isp-a", servers=(PRIMARY,))  # no other server to fail over to
SETTINGS = PoolSettings(response_window=2.0, zombie_period=10.0, probe_interval=1.0,
                        revive_probes=3)
T0 = 1_780_000_000.0  # the wall clock when the tests begin


def forwarder(isp=ONE, *, window=30.0, rng=None):
    return AccountingForwarder(Pools((isp,), SETTINGS), resend_window=window,
                               rng=rng or random.Random(5))


def record(id=1, session="s1", **kw):
    attrs = codec.attribute(A.ACCT_SESSION_ID, session.encode()) + \
        codec.attribute(A.ACCT_STATUS_TYPE, (1).to_bytes(4, "big"))
    return QueuedRecord(id=id, isp="isp-a", session=session, attrs=attrs, delay=3,
                        received=T0, **kw)


def stored(rec: QueuedRecord, attempt: Attempt) -> QueuedRecord:
    """The row as the queue returns it once the shell has stored `attempt`."""
    return dataclasses.replace(rec, server=attempt.server, datagram=attempt.send.data,
                               built=attempt.built)


def retried(rec: QueuedRecord, retry: Retry) -> QueuedRecord:
    return dataclasses.replace(rec, attempts=retry.attempts)


def answer(send: Transmit, secret=SECRET) -> bytes:
    """The ISP's Accounting-Response to the datagram vpop sent it."""
    return reply_to(send, codec.ACCOUNTING_RESPONSE, secret=secret)


def delay_of(data: bytes) -> int:
    return int.from_bytes(codec.decode(data).first(A.ACCT_DELAY_TIME), "big")


def test_a_new_record_is_an_attempt_to_store_before_it_is_sent():
    fwd = forwarder()
    (attempt,) = fwd.offer([record()], now=0.0, wallclock=T0 + 7)
    assert type(attempt) is Attempt
    assert (attempt.id, attempt.server, attempt.built) == (1, "isp-a/1", T0 + 7)
    assert attempt.retry_at == T0 + 7 + SETTINGS.response_window
    assert attempt.send.addr == ("192.0.2.10", 1813)
    packet = codec.decode(attempt.send.data)
    assert packet.code == codec.ACCOUNTING_REQUEST
    assert codec.request_authenticator_ok(packet, SECRET)
    assert delay_of(attempt.send.data) == 3 + 7  # the NAS's delay plus the time queued


def test_the_sessions_next_record_waits_until_the_delivered_mark_is_committed():
    fwd = forwarder()
    first, second = record(1), record(2)
    (attempt,) = fwd.offer([first], 0.0, T0)
    assert fwd.on_reply(answer(attempt.send), attempt.send.addr, 0.1) == [Delivered(1)]
    assert fwd.pending
    # Not committed yet: the queue still has the first as the session's head, and the
    # second must not overtake its mark either.
    assert fwd.offer([first], 0.2, T0) == []
    assert fwd.offer([second], 0.2, T0) == []
    fwd.settled([1])
    assert not fwd.pending
    (next_attempt,) = fwd.offer([second], 0.3, T0)
    assert next_attempt.id == 2


def test_other_sessions_go_on_meanwhile():
    fwd = forwarder()
    (attempt,) = fwd.offer([record(1, "s1")], 0.0, T0)
    fwd.on_reply(answer(attempt.send), attempt.send.addr, 0.1)
    (other,) = fwd.offer([record(2, "s1"), record(3, "s2")], 0.2, T0)
    assert other.id == 3


def test_a_record_in_flight_at_a_crash_is_sent_again_byte_for_byte():
    before = forwarder()
    rec = record()
    (attempt,) = before.offer([rec], 0.0, T0 + 1)
    # The process dies; a new one reads the row back, some seconds later.
    after = forwarder(rng=random.Random(99))
    row = stored(rec, attempt)
    after.remember([row])
    (resend,) = after.offer([row], 50.0, T0 + 9)
    assert resend == attempt.send  # same Identifier, authenticator, Acct-Delay-Time, server
    assert after.on_reply(answer(resend), resend.addr, 50.1) == [Delivered(1)]
    assert after.counters["resent"] == 1 and after.counters["sent"] == 0


def test_a_timeout_resends_the_same_datagram_within_the_window():
    fwd = forwarder()
    rec = record()
    (attempt,) = fwd.offer([rec], 0.0, T0)
    (retry,) = fwd.poll(now=2.5, wallclock=T0 + 2.5)
    assert type(retry) is Retry and retry.attempts == 1
    (resend,) = fwd.offer([retried(stored(rec, attempt), retry)], 4.0, T0 + 4)
    assert resend == attempt.send
    # An answer to either copy is the answer: they are one request.
    assert fwd.on_reply(answer(attempt.send), resend.addr, 4.1) == [Delivered(1)]


def test_past_the_window_it_is_built_anew_with_a_new_identifier_and_delay():
    fwd = forwarder(window=30.0)
    rec = record()
    (attempt,) = fwd.offer([rec], 0.0, T0)
    (retry,) = fwd.poll(2.5, T0 + 2.5)
    (again,) = fwd.offer([retried(stored(rec, attempt), retry)], 40.0, T0 + 40)
    assert type(again) is Attempt and again.built == T0 + 40
    assert again.send.data[1] != attempt.send.data[1]  # RFC 2866 §5.2
    assert delay_of(again.send.data) == 3 + 40


def test_a_resend_window_of_zero_builds_every_attempt_anew():
    fwd = forwarder(window=0.0)
    rec = record()
    (attempt,) = fwd.offer([rec], 0.0, T0)
    fwd.poll(2.5, T0 + 2.5)
    (again,) = fwd.offer([stored(rec, attempt)], 4.0, T0 + 4)
    assert type(again) is Attempt and again.send.data[4:20] != attempt.send.data[4:20]


def test_another_server_gets_a_datagram_of_its_own():
    fwd = forwarder(ISP)
    rec = record()
    (attempt,) = fwd.offer([rec], 0.0, T0)
    (retry,) = fwd.poll(2.5, T0 + 2.5)  # the primary is a zombie now: fail over
    (again,) = fwd.offer([retried(stored(rec, attempt), retry)], 4.0, T0 + 4)
    assert type(again) is Attempt and again.server == "isp-a/2"
    assert again.send.addr == ("192.0.2.11", 1813)
    assert delay_of(again.send.data) == 3 + 4


def test_the_last_server_is_kept_while_alive_even_if_no_longer_the_first_choice():
    fwd = forwarder(ISP)
    rec = record()
    row = dataclasses.replace(rec, server="isp-a/2")  # sent there while the primary was away
    (attempt,) = fwd.offer([row], 0.0, T0)
    row = stored(rec, attempt)
    after = forwarder(ISP)
    (resend,) = after.offer([row], 0.0, T0 + 3)
    assert resend == attempt.send and resend.addr[0] == "192.0.2.11"


def test_a_changed_secret_means_a_new_datagram():
    rec = record()
    (attempt,) = forwarder().offer([rec], 0.0, T0)
    changed = Isp(name="isp-a", servers=(dataclasses.replace(PRIMARY, secret=b"new"),))
    (again,) = forwarder(changed).offer([stored(rec, attempt)], 0.0, T0 + 3)
    assert type(again) is Attempt
    assert codec.request_authenticator_ok(codec.decode(again.send.data), b"new")


def test_an_identifier_that_may_be_resent_is_not_given_to_another_record():
    fwd = forwarder(rng=Scripted(17, 17, 17))
    first = record(1, "s1")
    (attempt,) = fwd.offer([first], 0.0, T0)
    assert attempt.send.data[1] == 17
    fwd.poll(2.5, T0 + 2.5)  # unanswered: may go again as it was
    (other,) = fwd.offer([record(2, "s2")], 3.0, T0 + 3)
    assert other.server == "isp-a/1" and other.send.data[1] != 17
    # Once the window is over, the Identifier is free again.
    fwd.poll(40.0, T0 + 40)
    fwd.rng.draws.append(17)
    (third,) = fwd.offer([record(3, "s3")], 40.0, T0 + 40)
    assert third.send.data[1] == 17


def test_identifiers_of_an_earlier_run_are_reserved_at_start():
    rec = record(1, "s1")
    (attempt,) = forwarder(rng=Scripted(42)).offer([rec], 0.0, T0)
    after = forwarder(rng=Scripted(42, 42))
    after.remember([stored(rec, attempt)])  # due only later: its retry time has not come
    (fresh,) = after.offer([record(2, "s2")], 0.0, T0 + 1)
    assert fresh.send.data[1] != 42
    (resend,) = after.offer([stored(rec, attempt)], 2.0, T0 + 3)
    assert resend == attempt.send


def test_a_resend_waits_while_its_identifier_is_out_with_another_record():
    rec = record(1, "s1")
    (attempt,) = forwarder(rng=Scripted(9)).offer([rec], 0.0, T0)
    after = forwarder(rng=Scripted(9))  # nothing remembered: the new record takes 9
    (fresh,) = after.offer([record(2, "s2")], 0.0, T0 + 1)
    assert fresh.send.data[1] == 9
    assert after.offer([stored(rec, attempt)], 0.1, T0 + 1) == []
    after.on_reply(answer(fresh.send), fresh.send.addr, 0.2)
    (resend,) = after.offer([stored(rec, attempt)], 0.3, T0 + 1)
    assert resend == attempt.send


def test_attempts_that_could_not_be_stored_are_forgotten_without_blame():
    fwd = forwarder()
    (attempt,) = fwd.offer([record()], 0.0, T0)
    fwd.abandon([attempt.id])
    assert not fwd.pending and fwd.poll(10.0, T0 + 10) == []
    assert fwd.pools.health["isp-a/1"].timeouts == 0
    (again,) = fwd.offer([record()], 10.0, T0 + 10)
    assert type(again) is Attempt


def test_no_usable_server_means_a_later_try():
    isp = Isp(name="isp-a", servers=(dataclasses.replace(PRIMARY, acct_port=0),))
    (retry,) = forwarder(isp).offer([record()], 0.0, T0)
    assert retry == Retry(1, 1, T0 + 1.0)
    (retry,) = forwarder().offer([dataclasses.replace(record(), isp="gone")], 0.0, T0)
    assert type(retry) is Retry


@pytest.mark.parametrize("mangle", [
    lambda reply: reply[:4] + bytes(16) + reply[20:],  # wrong Response Authenticator
    lambda reply: bytes((codec.ACCESS_ACCEPT,)) + reply[1:],  # not an Accounting-Response
    lambda reply: reply[:10],  # too short
])
def test_a_reply_that_does_not_verify_delivers_nothing(mangle):
    fwd = forwarder()
    (attempt,) = fwd.offer([record()], 0.0, T0)
    assert fwd.on_reply(mangle(answer(attempt.send)), attempt.send.addr, 0.1) == []
    assert fwd.counters["bad_replies"] == 1 and fwd.in_flight


def test_a_reply_from_another_address_is_not_the_servers():
    fwd = forwarder()
    (attempt,) = fwd.offer([record()], 0.0, T0)
    assert fwd.on_reply(answer(attempt.send), ("192.0.2.99", 1813), 0.1) == []
    assert fwd.in_flight


def test_our_routing_class_is_not_forwarded_the_isps_and_others_are():
    # The NAS echoes the ISP's Classes (a vpop's routing Class among them) and ours last.
    classes = [b"vpop1;isp=;mode=local;reason=", b"isp-profile",
               b"vpop1;isp=isp-a;mode=proxy;reason=realm"]
    attrs = b"".join(codec.attribute(A.CLASS, c) for c in classes) + \
        codec.attribute(A.USER_NAME, b"joe@isp-a.example")
    packet = codec.decode(codec.encode_request(codec.ACCOUNTING_REQUEST, 1, attrs, SECRET,
                                               message_authenticator=False))
    kept = codec.decode(codec.encode_request(
        codec.ACCOUNTING_REQUEST, 1, queued_attributes(packet, b"joe"), SECRET,
        message_authenticator=False))
    assert kept.attrs[A.CLASS] == classes[:2]
    assert kept.first(A.USER_NAME) == b"joe"
