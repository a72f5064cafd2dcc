"""The forwarder's source port: one for IPv4 and IPv6, kept across restarts."""

import logging
import socket

import pytest

from vpop.isp.acct_forward import Attempt, ForwardOrder
from vpop.radius.exchange import Transmit
from vpop.server.forwarder import bind_source, open_source_sockets
from vpop.store import acct_forward as queue
from vpop.store.engine import make_sessionmaker


def close(socks):
    for sock in socks.values():
        sock.close()


def ports(socks) -> set[int]:
    return {sock.getsockname()[1] for sock in socks.values()}


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def remember(sessions, port: int) -> None:
    """A datagram sent from `port`, as an earlier run would have stored it."""
    with sessions.begin() as session:
        queue.enqueue(session, ForwardOrder(isp="isp-a", session_key="k", attrs=b"\x2c\x03a",
                                            delay=0, received=1.0))
        session.flush()
        (record,) = queue.due(session, 1.0)
        queue.sending(session, [Attempt(record.id, "isp-a/1", 1.0, 3.0,
                                        Transmit(b"\x04\x01\x00\x14" + bytes(16),
                                             ("192.0.2.1", 1813)))], port)


def test_both_families_share_one_port():
    socks = open_source_sockets(0)
    try:
        assert set(socks) == {socket.AF_INET, socket.AF_INET6}
        assert len(ports(socks)) == 1
    finally:
        close(socks)


def test_the_first_start_takes_any_port_and_later_ones_the_port_used_last(sessions):
    socks = bind_source(sessions, 0)
    (port,) = ports(socks)
    close(socks)
    remember(sessions, port)
    socks = bind_source(sessions, 0)
    try:
        assert ports(socks) == {port}
    finally:
        close(socks)


def test_a_remembered_port_in_use_gives_way_to_another_with_a_warning(sessions, caplog):
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("0.0.0.0", 0))
    taken = holder.getsockname()[1]
    remember(sessions, taken)
    try:
        with caplog.at_level(logging.WARNING):
            socks = bind_source(sessions, 0)
        try:
            assert ports(socks) != {taken}
        finally:
            close(socks)
        assert f"source port {taken}, used before, is not free" in caplog.text
    finally:
        holder.close()


def test_a_configured_port_in_use_is_an_error(sessions):
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("0.0.0.0", 0))
    try:
        with pytest.raises(OSError):
            bind_source(sessions, holder.getsockname()[1])
    finally:
        holder.close()
