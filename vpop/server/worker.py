"""One worker: its event loop, listeners, accounting writer or journal, proxy and
accounting forwarder, and its reloads (SIGHUP; a data generation that cannot be applied
subscriber by subscriber). A reload builds a new dependency set (server/wiring.py) off
to the side and swaps it in with one assignment on the event loop."""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import functools
import gc
import logging
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vpop.accounting.leases import LeaseBook
from vpop.aaa.subscribers import SubscriberSnapshot
from vpop.isp.acct_forward import AccountingForwarder
from vpop.isp.proxy import ProxyEngine
from vpop.config import Settings
from vpop.dispatch.deps import Deps
from vpop.dispatch.receiver import ACCT, AUTH, COA, Receiver
from vpop.pipeline.requestlog import RequestLog
from vpop.radius.clients import ClientTable
from vpop.server.metrics import publish_snapshot
from vpop.server.forwarder import ForwarderShell
from vpop.server.generation import GenerationFollower
from vpop.server.journal import JournalWriter
from vpop.server.ldap_directory import close_directories, directory_snapshot, with_directories
from vpop.server.ledger import LedgerProcess, journal_path
from vpop.server.proxy import ProxyShell
from vpop.server.relay import RelayShell, lookup_in
from vpop.server.udp import Listener, open_socket
from vpop.server.wiring import (build_deps, eap_server, load_data, load_dictionary,
                                request_stream, reread_settings)
from vpop.server.writer import AccountingWriter
from vpop.store.engine import check_connection, make_engine, make_sessionmaker
from vpop.store import accounting as acct_store
from vpop.store import qos as qos_store
from vpop.store.journal import Journal, worker_journal

log = logging.getLogger(__name__)
STATS_INTERVAL = 1.0
YOUNG_COLLECTION = 2000  # allocations between young collections (Python's default: 700)
NO_AUTOMATIC_FULL_COLLECTION = 1 << 30
FULL_COLLECTION_INTERVAL = 300.0
DRAIN_TIMEOUT = 10.0
REQUEST_LOG_FLUSH = 0.2
QOS_INTERVAL = 60.0  # the QoS monitor's finest bucket


def _set_book(book: LeaseBook, leases, levels: dict[int, int], applied: int) -> None:
    if leases is not None:
        book.set_leases(leases)
    book.set_counts(levels)
    book.applied(applied)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def settle_heap() -> None:
    """After loading data: keep the cyclic collector off what lives until the next reload.

    The subscriber snapshot, clients and templates are long-lived; frozen, a full
    collection no longer walks them (with a large subscriber base that walk is a
    latency spike). Every collection stops the event loop, so each must be short:
    young ones after every YOUNG_COLLECTION container allocations (under load a pass
    over 50,000 young objects took 15 ms, one over 2,000 takes 0.1-0.4), and full
    ones, which walk the duplicate cache (20-25 ms), only every
    FULL_COLLECTION_INTERVAL (collect_cycles).

    On a reload, what the last load froze is unfrozen first: a cycle in the data it
    replaced (templates, pools) is collected, not kept for the life of the process.
    Then the C allocator hands its free pages back to the system (malloc_trim).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION, 20, NO_AUTOMATIC_FULL_COLLECTION)
    release_free_memory()


def map_large_blocks() -> None:
    """A fixed mmap threshold for glibc's malloc (128 KiB, its default). Left dynamic,
    it rises to the size of each large block freed (up to 32 MiB), after which the
    snapshot's large tables (dicts of a million entries, made anew by every reload)
    come from the heaps of the threads that load them, which keep their pages: a
    worker with 1,000,000 subscribers grew by about 100 MB over three reloads. Mapped
    on their own, such blocks go back to the system when freed.

    The trim threshold is fixed too (128 KiB, its default): the same rise sets it to
    twice the block's size, a loading thread's heap then keeps a free top below that,
    and malloc_trim gives back the free top of the main heap only: each thread that
    had run a reload kept up to about 2 MB (bench/HISTORY.md)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        mallopt(_M_TRIM_THRESHOLD, 128 * 1024)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def release_free_memory() -> None:
    """glibc's malloc_trim(0): return the free pages of every arena to the system
    (a no-op where the C library has no such function)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


async def collect_cycles() -> None:
    """The full collections settle_heap leaves out, at a fixed interval: requests make
    few reference cycles, and these are reclaimed within minutes."""
    while True:
        await asyncio.sleep(FULL_COLLECTION_INTERVAL)
        gc.collect()


class Worker:
    """One process's listeners, accounting writer and reload/shutdown handling."""

    def __init__(self, settings: Settings, *, index: int = 0, stats_dir: str | None = None,
                 reuse_port: bool = False, ledger: LedgerProcess | None = None,
                 accounting: dict[str, socket.socket] | None = None):
        self.settings = settings
        self.index = index
        self.stats_dir = stats_dir
        self.reuse_port = reuse_port
        self.accounting = accounting or {}  # host -> the accounting socket all workers read
        self.ledger = ledger  # single-process mode: this worker keeps the ledger running
        self.listeners: list[Listener] = []
        self.stopping: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lease_revision: tuple | None = None

    def open_sockets(self) -> list[tuple[str, socket.socket]]:
        """(kind, socket) for every port and address; the accounting ones are those
        handed in, where the supervisor shares them among its workers."""
        s = self.settings.server
        socks = []
        for host in s.listen:
            for kind, port in ((AUTH, s.auth_port), (ACCT, s.acct_port), (COA, s.coa_port)):
                if kind == ACCT and host in self.accounting:
                    socks.append((kind, self.accounting[host]))
                    continue
                socks.append((kind, open_socket(host, port, s.recv_buffer, self.reuse_port)))
        return socks

    def run(self, socks=None) -> None:
        asyncio.run(self._main(socks))

    async def _main(self, socks) -> None:
        self.loop = loop = asyncio.get_running_loop()
        map_large_blocks()
        settings = self.settings
        engine = make_engine(settings.database_url)
        check_connection(engine)
        sessions = make_sessionmaker(engine)
        dictionary = load_dictionary(settings)
        data = load_data(settings, sessions, dictionary)
        book = LeaseBook()  # sessions per lease, kept current by the accounting writer
        deps = build_deps(settings, data, dictionary, leases=book,
                          relay_lookup=lookup_in(sessions), eap=eap_server(settings))
        self.proxy = ProxyShell(loop, ProxyEngine(deps.pools, budget=settings.isp.budget),
                                settings.server.recv_buffer, sessions=sessions)
        # One process drains the queue of accounting owed to ISPs: order per session.
        self.forwarder = (ForwarderShell(
            loop, AccountingForwarder(deps.pools,
                                      resend_window=settings.isp.accounting_resend_window),
            sessions, source_port=settings.isp.accounting_source_port)
            if self.index == 0 else None)
        self.receiver = receiver = Receiver(deps, data.clients,
                                            dedup_window=settings.server.dedup_window,
                                            request_log=RequestLog(request_stream(settings)))
        journal = (Journal(worker_journal(journal_path(settings), self.index), writer=True)
                   if settings.accounting.journal else None)
        if journal is not None:  # acknowledged once journaled; the ledger applies it
            self.writer = writer = JournalWriter(journal, leases=book)
            self._follow(sessions, journal.stream, book)
        else:
            self.writer = writer = AccountingWriter(sessions, loop.call_soon_threadsafe,
                                                    settings=settings.accounting, leases=book,
                                                    stop_wait=settings.dynauth.stop_wait)
        writer.start()
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vpop-slow")
        # ISPs' CoA/Disconnect relayed to the NASes (docs/dynauth.md)
        self.relay = RelayShell(loop, sessions, executor, settings=settings.dynauth,
                                dictionary=dictionary)
        socks = socks if socks is not None else self.open_sockets()
        for kind, sock in socks:
            listener = Listener(loop, sock, kind, receiver, writer, executor,
                                settings.server.max_batch, proxy=self.proxy,
                                relay=self.relay)
            listener.start()
            self.listeners.append(listener)
        # Provisioning changes reach this worker by the data generation, within seconds.
        self.follower = GenerationFollower(sessions, worker=self.index)
        self.follower.generation = data.generation
        # This frame lasts as long as the worker: a reference to what the start loaded
        # would keep the start's snapshot (its tables, the subscribers that changed
        # since) beside whatever a reload swaps in. The receiver holds what is served.
        del data, deps
        self._loading = asyncio.Lock()  # a reload or a swap of changes at a time
        settle_heap()
        self.stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP,
                                lambda: asyncio.ensure_future(self._reload(sessions, dictionary)))
        await self._report_serving(stale=True)  # before "ready": an import then sees it
        log.info("worker %d ready: %d clients, %d subscribers, listening on %s", self.index,
                 len(receiver.clients), len(receiver.deps.directory),
                 ", ".join(f"{k} {s.getsockname()[0]}:{s.getsockname()[1]}" for k, s in socks))
        stats_task = asyncio.ensure_future(self._publish_stats()) if self.stats_dir else None
        flush_task = asyncio.ensure_future(self._flush_request_log())
        cycles_task = asyncio.ensure_future(collect_cycles())
        qos_task = asyncio.ensure_future(self._qos(sessions))
        follow_task = (asyncio.ensure_future(self._follow_ledger(sessions, journal.stream, book))
                       if journal is not None else None)
        generation_task = asyncio.ensure_future(self.follower.follow(
            lambda: self.receiver.deps.directory,
            lambda: self._load_again(sessions, dictionary, reread_config=False),
            self._loading))
        await self.stopping.wait()
        generation_task.cancel()
        # Graceful stop: no new requests; finish the ones in flight.
        for listener in self.listeners:
            listener.stop_reading()
        if self.forwarder is not None:  # and the ISPs' answers to what is on its way
            self.forwarder.stop_sending()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while (any(l.in_flight for l in self.listeners) or self.proxy.in_flight
               or self.relay.in_flight
               or (self.forwarder is not None and self.forwarder.pending)) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        writer.stop()
        await asyncio.sleep(0)  # run the last replies' callbacks
        for _ in range(3):
            await asyncio.sleep(0.01)
        if stats_task:
            stats_task.cancel()
        flush_task.cancel()
        cycles_task.cancel()
        qos_task.cancel()
        if follow_task:
            follow_task.cancel()
        if journal is not None:
            journal.close()
        await loop.run_in_executor(None, self._store_qos, sessions, True)
        await self._report_serving(stopped=True)
        receiver.request_log.flush()
        for _, sock in socks:
            sock.close()
        self.proxy.close()
        self.relay.close()
        close_directories(receiver.deps.directory)
        if self.forwarder is not None:
            self.forwarder.close()
        executor.shutdown(wait=False)
        engine.dispose()
        log.info("worker %d stopped", self.index)

    async def _reload(self, sessions, dictionary, *, reread_config: bool = True) -> bool:
        """SIGHUP: re-read the config file and the store, then swap atomically. Without
        `reread_config`, the store only (a provisioning change the worker cannot apply
        subscriber by subscriber). True if it succeeded."""
        async with self._loading:
            return await self._load_again(sessions, dictionary, reread_config)

    async def _report_serving(self, *, stale: bool = False, stopped: bool = False) -> None:
        """The generation this worker serves, in the store for `vpop import`; with
        `stale`, rows of processes long gone are removed; `stopped`: this one's."""
        loop = asyncio.get_running_loop()
        try:
            if stale or stopped:
                await loop.run_in_executor(None, lambda: self.follower.forget(stale=stale))
            if not stopped:
                await loop.run_in_executor(None, self.follower.report)
        except Exception as exc:
            log.warning("could not record the generation served: %s", exc)

    async def _load_again(self, sessions, dictionary, reread_config: bool) -> bool:
        loop = asyncio.get_running_loop()
        try:
            settings = reread_settings(self.settings) if reread_config else self.settings
            served = self.receiver.deps.directory
            data = await loop.run_in_executor(
                None, load_data, settings, sessions, dictionary,
                served if isinstance(served, SubscriberSnapshot) else getattr(served, "local", None))
            deps = build_deps(settings, data, dictionary, previous=self.receiver.deps)
        except Exception as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        finally:
            served = None  # freed with the Deps it belongs to, before settle_heap
        self._swap(deps, data.clients)
        self.receiver.request_log.flush()
        self.receiver.request_log.stream = request_stream(settings)
        self.follower.generation = data.generation
        settle_heap()
        log.info("reloaded: %d clients, %d subscribers (generation %d)", len(data.clients),
                 len(data.directory), data.generation)
        return True

    def _swap(self, deps: Deps, clients: ClientTable) -> None:
        """On the event loop, between two datagrams: the new dependency set in place of
        the old, whole. Exchanges in flight with the ISPs carry on with the new pools."""
        self.receiver.deps, self.receiver.clients = deps, clients
        self.settings = deps.settings
        self.proxy.engine.replace_pools(deps.pools)
        self.relay.settings = deps.settings.dynauth
        if self.forwarder is not None:
            self.forwarder.forwarder.pools = deps.pools
            self.forwarder.forwarder.resend_window = deps.settings.isp.accounting_resend_window

    def _follow(self, sessions, stream: str, book: LeaseBook) -> None:
        """Lease counts as the ledger has applied them (journal mode; from any thread
        that may read the store, then on the event loop)."""
        with sessions() as session:
            # progress before the counts: a Start may count twice for a tick, never not
            applied = acct_store.journal_applied(session, stream)
            self._lease_revision, leases, levels = acct_store.lease_state(
                session, self._lease_revision)
        self.loop.call_soon_threadsafe(lambda: _set_book(book, leases, levels, applied))

    async def _follow_ledger(self, sessions, stream: str, book: LeaseBook) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.accounting.tick)
            if self.ledger is not None:
                self.ledger.check()
            try:
                await loop.run_in_executor(None, self._follow, sessions, stream, book)
            except Exception as exc:
                log.warning("lease counts not refreshed: %s", exc)

    async def _qos(self, sessions) -> None:
        """Every bucket: store what the proxy measured, and read back every worker's
        view of each ISP's health for the selection score."""
        loop = asyncio.get_running_loop()
        ticks = 0
        while True:
            await asyncio.sleep(QOS_INTERVAL)
            ticks += 1
            try:
                health = await loop.run_in_executor(
                    None, self._store_qos, sessions, False, self.index == 0 and ticks % 10 == 0)
                self.receiver.deps.health.measured = with_directories(
                    health, self.receiver.deps.directory)
            except Exception as exc:
                log.warning("QoS monitor: %s", exc)

    def _store_qos(self, sessions, everything: bool, downsample: bool = False) -> dict:
        now = time.time()
        summaries = self.proxy.qos.flush(now, everything=everything)
        with sessions.begin() as session:
            if summaries:
                qos_store.record_buckets(session, summaries)
            if downsample:
                qos_store.downsample(session, _utc(now))
        with sessions() as session:
            return qos_store.latest_health(session, _utc(now))

    def snapshot(self) -> dict:
        """This worker's counters for the metrics endpoint."""
        upstreams = {name: {"up": int(h.status == "alive"), "answered": h.answered,
                            "timeouts": h.timeouts, "bad_replies": h.bad_replies}
                     for name, h in self.proxy.engine.pools.health.items()}
        eap = self.receiver.deps.eap
        return {**self.receiver.stats.snapshot(), "upstreams": upstreams,
                "directories": directory_snapshot(self.receiver.deps.directory),
                "eap_refused": dict(eap.refused) if eap is not None else {},
                "accounting": self.writer.snapshot(), "worker": self.index}

    async def _flush_request_log(self) -> None:
        while True:
            await asyncio.sleep(REQUEST_LOG_FLUSH)
            self.receiver.request_log.flush()

    async def _publish_stats(self) -> None:
        path = Path(self.stats_dir) / f"worker-{self.index}.pickle"
        while True:
            publish_snapshot(path, self.snapshot())
            await asyncio.sleep(STATS_INTERVAL)
