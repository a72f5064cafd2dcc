"""The accounting port's SO_REUSEPORT spread, on this machine's kernel: real sockets."""

from __future__ import annotations

import os
import select
import socket

from vpop.server.udp import open_socket, spread_by_request, spread_program

HOST = "127.0.0.1"


def group(members: int) -> list[socket.socket]:
    """`members` sockets sharing one loopback port, as vpop's workers do."""
    first = open_socket(HOST, 0, 1 << 20, reuse_port=True)
    port = first.getsockname()[1]
    return [first] + [open_socket(HOST, port, 1 << 20, reuse_port=True)
                      for _ in range(members - 1)]


def request(authenticator: bytes) -> bytes:
    return bytes([4, 7]) + (20).to_bytes(2, "big") + authenticator


def deliver(members: list[socket.socket], datagrams: list[bytes]) -> list[list[bytes]]:
    """Send every datagram from one source port; what each member received."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(members[0].getsockname())
    for data in datagrams:
        client.send(data)
    client.close()
    received: list[list[bytes]] = [[] for _ in members]
    while sum(map(len, received)) < len(datagrams):
        ready, _, _ = select.select(members, [], [], 2.0)
        assert ready, f"only {sum(map(len, received))} of {len(datagrams)} arrived"
        for sock in ready:
            received[members.index(sock)].append(sock.recv(4096))
    return received


def test_the_program_takes_the_authenticator_modulo_the_workers():
    assert spread_program(3) == [(0x20, 0, 0, 4), (0x94, 0, 0, 3), (0x16, 0, 0, 0)]


def test_without_it_one_source_port_reaches_one_socket():
    members = group(2)
    try:
        received = deliver(members, [request(os.urandom(16)) for _ in range(200)])
        assert sorted(map(len, received)) == [0, 200]
    finally:
        for sock in members:
            sock.close()


def test_with_it_one_source_port_is_spread_and_a_retransmission_follows_its_original():
    members = group(2)
    try:
        assert spread_by_request(members[1], 2)  # any member: it applies to the group
        fresh = [request(os.urandom(16)) for _ in range(400)]
        repeated = request(os.urandom(16))
        received = deliver(members, fresh + [repeated] * 20)
        # 400 fair coin tosses: 200 +- 10; 120 is eight standard deviations away.
        assert all(len(r) > 120 for r in received), list(map(len, received))
        holders = [n for n, r in enumerate(received) if repeated in r]
        assert len(holders) == 1 and received[holders[0]].count(repeated) == 20
        # Which socket: the authenticator's first word's parity, the same one for each.
        for r in received:
            assert len({int.from_bytes(d[4:8], "big") % 2 for d in r}) == 1
    finally:
        for sock in members:
            sock.close()
