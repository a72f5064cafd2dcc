"""Opening UDP sockets: one helper for listeners and for vpop as a client."""

import socket

import pytest

from vpop.server.sockets import family_of, open_udp


def test_a_wildcard_socket_per_family_and_a_port_the_kernel_picks():
    v4 = open_udp(family=socket.AF_INET)
    v6 = open_udp(family=socket.AF_INET6, port=v4.getsockname()[1])
    try:
        assert v4.getsockname()[0] == "0.0.0.0" and v6.getsockname()[0] == "::"
        assert v4.getsockname()[1] == v6.getsockname()[1]  # IPv6 only: they share the port
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert not v4.getblocking() and not v6.getblocking()
    finally:
        v4.close()
        v6.close()


def test_an_address_names_its_family_and_options_are_set():
    sock = open_udp("127.0.0.1", reuse_port=True, recv_buffer=1 << 20, send_buffer=1 << 18)
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 0
    finally:
        sock.close()
    assert family_of("::1") == socket.AF_INET6 and family_of("192.0.2.1") == socket.AF_INET


def test_a_port_in_use_is_an_error_and_leaves_no_socket_open():
    holder = open_udp("127.0.0.1")
    try:
        with pytest.raises(OSError):
            open_udp("127.0.0.1", holder.getsockname()[1])
    finally:
        holder.close()


def test_reuse_port_lets_workers_share_a_port():
    first = open_udp("127.0.0.1", reuse_port=True)
    try:
        second = open_udp("127.0.0.1", first.getsockname()[1], reuse_port=True)
        second.close()
    finally:
        first.close()
