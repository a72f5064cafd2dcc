"""A UDP relay that keeps what crosses it: the datagrams as they are on the wire.

    with UdpRelay(("127.0.0.1", 1813)) as relay:
        ...  # point the client at relay.address
        exchange = relay.wait_for(lambda e: e.request[0] == 4 and e.reply is not None)
        relay.exchanges()  # every request, with the reply the server sent to it

Each client gets a socket of its own toward the server, so the server sees one source
port per client, as it would without the relay. The listening socket can be made
elsewhere and handed in (`sock=`), e.g. inside a network namespace. The relay does
not decode or change anything.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Exchange:
    client: tuple  # the client's address as the relay saw it
    request: bytes
    replies: list[bytes] = field(default_factory=list)  # one per copy of the request answered
    copies: int = 1  # how often the client sent these same octets

    @property
    def reply(self) -> bytes | None:
        return self.replies[0] if self.replies else None


class UdpRelay:
    def __init__(self, target: tuple[str, int], *, listen: tuple[str, int] = ("127.0.0.1", 0),
                 sock: socket.socket | None = None):
        self.target = target
        self.sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if sock is None or sock.getsockname()[1] == 0:
            self.sock.bind(listen)
        self.address = self.sock.getsockname()[:2]
        self._upstream: dict[tuple, socket.socket] = {}  # client address -> its socket
        self._exchanges: list[Exchange] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=f"relay-{self.address[1]}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                try:
                    if key.data is None:
                        data, client = self.sock.recvfrom(65535)
                        self._from_client(data, client)
                    else:
                        data = key.fileobj.recv(65535)
                        self._from_server(data, key.data)
                except OSError:  # ICMP unreachable from a peer that is gone: nothing to keep
                    continue

    def _from_client(self, data: bytes, client: tuple) -> None:
        upstream = self._upstream.get(client)
        if upstream is None:
            upstream = socket.socket(socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET,
                                     socket.SOCK_DGRAM)
            upstream.connect(self.target)
            self._upstream[client] = upstream
            self._selector.register(upstream, selectors.EVENT_READ, client)
        with self._changed:
            for exchange in reversed(self._exchanges):
                if exchange.client == client and exchange.request == data:
                    exchange.copies += 1
                    break
            else:
                self._exchanges.append(Exchange(client, data))
            self._changed.notify_all()
        upstream.send(data)

    def _from_server(self, data: bytes, client: tuple) -> None:
        with self._changed:
            # The latest request from that client with this Identifier.
            for exchange in reversed(self._exchanges):
                if exchange.client == client and len(data) > 1 and \
                        exchange.request[1] == data[1]:
                    exchange.replies.append(data)
                    break
            else:
                self._exchanges.append(Exchange(client, b"", [data], 0))  # answers nothing
            self._changed.notify_all()
        self.sock.sendto(data, client)

    def exchanges(self) -> list[Exchange]:
        with self._changed:
            return [Exchange(e.client, e.request, list(e.replies), e.copies)
                    for e in self._exchanges]

    def wait_for(self, condition: Callable[[Exchange], bool], timeout: float) -> Exchange | None:
        """The first exchange that meets `condition`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for exchange in self._exchanges:
                    if condition(exchange):
                        return Exchange(exchange.client, exchange.request,
                                        list(exchange.replies), exchange.copies)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def settle(self, timeout: float) -> list[Exchange]:
        """The exchanges once every request has its reply, or as they are after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while any(not e.replies for e in self._exchanges):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        return self.exchanges()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._selector.close()
        for upstream in self._upstream.values():
            upstream.close()
        self.sock.close()

    def __enter__(self) -> "UdpRelay":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
