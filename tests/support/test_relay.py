"""The wire-keeping UDP relay of the end-to-end tests, against a trivial echo server."""

from __future__ import annotations

import socket
import threading

import pytest

from support.relay import UdpRelay


@pytest.fixture
def echo():
    """Answers each datagram with `R` + its Identifier octet; keeps who sent what."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    seen: list[tuple[bytes, tuple]] = []

    def serve():
        while True:
            try:
                data, addr = sock.recvfrom(4096)
            except OSError:
                return
            seen.append((data, addr))
            sock.sendto(b"R" + data[1:2], addr)

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname(), seen
    sock.close()


def client(relay):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.connect(relay.address)
    return sock


def test_requests_and_replies_are_kept_and_passed_on(echo):
    target, seen = echo
    with UdpRelay(target) as relay, client(relay) as first, client(relay) as second:
        first.send(b"Q\x01one")
        assert first.recv(100) == b"R\x01"
        first.send(b"Q\x01one")  # a retransmission: the same octets again
        assert first.recv(100) == b"R\x01"
        second.send(b"Q\x07two")
        assert second.recv(100) == b"R\x07"
        exchanges = relay.settle(5)
        first_address = first.getsockname()
    assert [(e.request, e.replies, e.copies) for e in exchanges] == [
        (b"Q\x01one", [b"R\x01", b"R\x01"], 2), (b"Q\x07two", [b"R\x07"], 1)]
    # One socket toward the server per client, as without the relay.
    assert len({addr for _, addr in seen}) == 2
    assert exchanges[0].client == first_address


def test_wait_for_gives_up_after_its_timeout(echo):
    with UdpRelay(echo[0]) as relay:
        assert relay.wait_for(lambda e: True, 0.05) is None
        assert relay.settle(0.05) == []
