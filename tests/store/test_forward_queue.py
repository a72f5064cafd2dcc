"""The queue of accounting owed to proxy-mode ISPs, on SQLite and PostgreSQL: what a
datagram was sent as survives the process, and delivered records stop being due."""

from vpop.isp.acct_forward import Attempt, ForwardOrder
from vpop.radius.exchange import Transmit
from vpop.store import acct_forward as queue

T0 = 1_780_000_000.0
DATAGRAM = bytes((4, 17, 0, 20)) + bytes(range(16))


def enqueue(session, key: str, attrs: bytes, received: float = T0) -> None:
    assert queue.enqueue(session, ForwardOrder(isp="isp-a", session_key=key, attrs=attrs,
                                               delay=2, received=received))
    session.flush()


def attempt(record_id: int, built: float, data: bytes = DATAGRAM) -> Attempt:
    return Attempt(record_id, "isp-a/1", built, built + 2.0,
                   Transmit(data, ("192.0.2.10", 1813)))


def test_a_stored_attempt_comes_back_with_the_record(session):
    enqueue(session, "k1", b"\x2c\x03a")
    (fresh,) = queue.due(session, T0)
    assert (fresh.server, fresh.datagram, fresh.built) == ("", b"", 0.0)
    queue.sending(session, [attempt(fresh.id, T0 + 1)], source_port=40123)
    # Not due again until its answer is overdue, also for a process started afresh.
    assert queue.due(session, T0 + 2.9) == []
    (again,) = queue.due(session, T0 + 3.0)
    assert (again.server, again.datagram, again.built) == ("isp-a/1", DATAGRAM, T0 + 1)
    assert (again.attrs, again.delay, again.received) == (b"\x2c\x03a", 2, T0)
    assert queue.last_source_port(session) == 40123


def test_only_recent_datagrams_of_records_still_owed_are_resendable(session):
    for n in range(3):
        enqueue(session, f"k{n}", bytes((44, 3, 97 + n)))
    ids = [r.id for r in queue.due(session, T0)]
    queue.sending(session, [attempt(ids[0], T0 + 1), attempt(ids[1], T0 + 50),
                            attempt(ids[2], T0 + 60)], source_port=40123)
    queue.delivered(session, [ids[2]], T0 + 61)
    assert [r.id for r in queue.resendable(session, since=T0 + 30)] == [ids[1]]


def test_delivered_records_keep_no_datagram_but_the_port_is_remembered(session):
    enqueue(session, "k1", b"\x2c\x03a")
    enqueue(session, "k2", b"\x2c\x03b")
    first, second = queue.due(session, T0)
    queue.sending(session, [attempt(first.id, T0 + 1)], source_port=40000)
    queue.sending(session, [attempt(second.id, T0 + 5)], source_port=40123)
    queue.delivered(session, [first.id, second.id], T0 + 6)
    assert queue.due(session, T0 + 100) == []
    assert queue.resendable(session, since=0.0) == []
    assert queue.last_source_port(session) == 40123  # the one built last


def test_no_port_is_remembered_before_anything_was_sent(session):
    assert queue.last_source_port(session) is None
    enqueue(session, "k1", b"\x2c\x03a")
    assert queue.last_source_port(session) is None


def test_a_sessions_next_record_is_due_only_once_the_last_is_delivered(session):
    enqueue(session, "k1", b"\x2c\x03a")
    enqueue(session, "k1", b"\x2c\x03b")
    (head,) = queue.due(session, T0)
    queue.sending(session, [attempt(head.id, T0)], source_port=40123)
    assert [r.id for r in queue.due(session, T0 + 10)] == [head.id]  # unanswered: again
    queue.delivered(session, [head.id], T0 + 10)
    (following,) = queue.due(session, T0 + 10)
    assert following.attrs == b"\x2c\x03b" and following.datagram == b""


def test_a_retry_keeps_the_datagram(session):
    enqueue(session, "k1", b"\x2c\x03a")
    (head,) = queue.due(session, T0)
    queue.sending(session, [attempt(head.id, T0)], source_port=40123)
    queue.retry_later(session, head.id, 1, T0 + 4)
    assert queue.due(session, T0 + 3) == []
    (again,) = queue.due(session, T0 + 4)
    assert again.attempts == 1 and again.datagram == DATAGRAM
