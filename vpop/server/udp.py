"""asyncio UDP endpoints: read datagrams, let the Receiver decide, carry out its action."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import socket
from collections.abc import Callable
from concurrent.futures import Executor

from vpop.errors import ListenError
from vpop.dispatch.receiver import Defer, Drop, Forward, Persist, Receiver, Relay, Send
from vpop.server.sockets import open_udp
from vpop.server.writer import Ack

log = logging.getLogger(__name__)


def open_socket(host: str, port: int, recv_buffer: int, reuse_port: bool) -> socket.socket:
    """A listening socket; one that cannot be bound is a ListenError naming it."""
    try:
        return open_udp(host, port, reuse_port=reuse_port, recv_buffer=recv_buffer)
    except OSError as exc:
        raise ListenError(host, port, "udp", exc.strerror or str(exc)) from None


class Listener:
    """One bound socket. Reads in batches: one wake-up drains many datagrams."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, port: str,
                 receiver: Receiver, writer, executor: Executor, max_batch: int = 256,
                 proxy=None, relay=None):
        self.loop, self.sock, self.port = loop, sock, port
        self.receiver, self.writer, self.executor = receiver, writer, executor
        self.max_batch = max_batch
        self.proxy = proxy  # vpop.server.proxy.ProxyShell
        self.relay = relay  # vpop.server.relay.RelayShell
        self.in_flight = 0

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def stop_reading(self) -> None:
        self.loop.remove_reader(self.sock.fileno())

    def _readable(self) -> None:
        recv, send = self.sock.recvfrom, self.sock.sendto
        datagram = self.receiver.datagram
        port = self.port
        # Accounting read in this wake-up goes to the writer as one group: one hand-off
        # to its thread, not one per record.
        persist: list = []
        try:
            for _ in range(self.max_batch):
                try:
                    data, addr = recv(4096)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # e.g. ICMP port unreachable reported on UDP
                    log.debug("recvfrom: %s", exc)
                    continue
                try:
                    action = datagram(data, addr, port)
                except Exception:
                    log.exception("request from %s failed", addr[0])
                    self.receiver.stats.drop("internal error")
                    continue
                if type(action) is Send:  # the common case, without _send()'s extra call
                    try:
                        send(action.data, addr)
                    except OSError as exc:
                        log.warning("sendto %s: %s", addr[0], exc)
                elif type(action) is Persist:
                    self.in_flight += 1
                    persist.append((action.record, self._stored(action, addr), action.forward))
                elif type(action) is not Drop:
                    self._act(action, addr)
        finally:
            if persist:
                self.writer.submit_group(persist)

    def _stored(self, action: Persist, addr) -> Ack:
        """The answer goes out once stored, from whichever thread stored it (the direct
        writer's, or this one with the journal; sendto is safe from any thread); the
        bookkeeping runs on the event loop."""
        def stored(ok: bool) -> None:
            self.in_flight -= 1
            action.done(ok)

        def send() -> None:
            action.awaiting.stored = True  # a retransmission now gets the reply
            self._send(action.reply, addr)
        return Ack(send, stored)

    def _send(self, data: bytes, addr) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            log.warning("sendto %s: %s", addr[0], exc)

    def _act(self, action, addr) -> None:
        if type(action) is Send:
            self._send(action.data, addr)
        elif type(action) is Defer:
            self.in_flight += 1
            if _coroutine_function(action.work):  # waits on this loop (LDAP)
                step(action.work(), lambda outcome: self._resumed(outcome, action, addr))
            else:
                future = self.loop.run_in_executor(self.executor, action.work)
                future.add_done_callback(lambda f: self._resumed(f.result, action, addr))
        elif type(action) is Forward or type(action) is Relay:
            self.in_flight += 1

            def finished(result) -> None:
                self.in_flight -= 1
                self._act(action.then(result), addr)
            if type(action) is Forward:
                self.proxy.forward(action.job, finished)
            else:
                self.relay.relay(action.job, finished)
        elif type(action) is Persist:
            self.in_flight += 1
            self.writer.submit(action.record, self._stored(action, addr), action.forward)

    def _resumed(self, outcome: Callable[[], object], action: Defer, addr) -> None:
        self.in_flight -= 1
        try:
            follow = action.then(outcome())
        except Exception:
            log.exception("deferred request from %s failed", addr[0])
            self.receiver.stats.drop("internal error")
            return
        self._act(follow, addr)


def _coroutine_function(work) -> bool:
    """inspect.iscoroutinefunction for the deferred work (a function, a method, or a
    partial of either), without its signature checks: a call a deferred request."""
    while type(work) is functools.partial:
        work = work.func
    code = getattr(work, "__code__", None)  # a method lends its function's
    return code is not None and bool(code.co_flags & inspect.CO_COROUTINE)


def step(coroutine, finished: Callable[[Callable[[], object]], None], _=None) -> None:
    """Run the coroutine up to its next wait, and on from there when the future it
    waits for is done; at its end, finished(outcome), outcome() giving its result or
    raising its exception. What a Task does, without its three turns of the loop and
    its object for each deferred request (about 8 µs of CPU a lookup): the coroutines
    deferred here (LDAP lookups and binds) wait only for asyncio futures."""
    try:
        waited = coroutine.send(None)
    except StopIteration as stop:
        value = stop.value
        finished(lambda: value)
        return
    except Exception as exc:  # handed to finished, which logs it
        error = exc

        def failed():
            raise error
        finished(failed)
        return
    resume = functools.partial(step, coroutine, finished)
    if waited is None:  # a bare yield (asyncio.sleep(0)): the next turn of the loop
        asyncio.get_running_loop().call_soon(resume)
        return
    waited._asyncio_future_blocking = False  # as Task does: the future is awaited here
    waited.add_done_callback(resume)
