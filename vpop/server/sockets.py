"""Opening UDP sockets: the one place that does, for listeners and for vpop as a client."""

from __future__ import annotations

import logging
import socket

log = logging.getLogger(__name__)
ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def open_udp(host: str | None = None, port: int = 0, *, family: int | None = None,
             reuse_port: bool = False, recv_buffer: int = 0,
             send_buffer: int = 0) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port); port 0: one the kernel picks.

    Without `host`, the wildcard address of `family`. An IPv6 socket is IPv6 only, so
    an IPv4 one can share its port. `reuse_port`: several worker processes bind the
    same port and the kernel spreads datagrams over them. Buffer sizes of 0 keep the
    system's default; one the system refuses is logged, not fatal. Raises OSError
    (the socket closed) when it cannot be bound.
    """
    if family is None:
        family = family_of(host) if host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        # No SO_REUSEADDR: on UDP it would let a second server bind the same port.
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        for option, size, name in ((socket.SO_RCVBUF, recv_buffer, "SO_RCVBUF"),
                                   (socket.SO_SNDBUF, send_buffer, "SO_SNDBUF")):
            if size:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, size)
                except OSError:
                    log.warning("could not set %s to %d", name, size)
        sock.bind((host or ANY[family], port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
