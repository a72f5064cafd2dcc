"""The supervisor: `vpop serve`'s process. It binds the ports, starts the ledger
process (with the accounting journal), the web portal (when [portal] enabled) and the
workers, restarts a worker or portal that dies, forwards SIGTERM/SIGHUP to the workers
and serves the metrics endpoint; with one worker, it runs that worker in its own
process."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time

import vpop
from vpop.config import Settings
from vpop.dispatch.receiver import ACCT, AUTH, COA
from vpop.errors import ListenError
from vpop.radius import wire
from vpop.server.forwarder import open_source_sockets
from vpop.server.ledger import LedgerProcess
from vpop.server.lifetime import Restarts, die_with_parent
from vpop.server.metrics import (DynAuthCounts, VpopCollector, read_snapshots,
                                 serve_metrics)
from vpop.server.portal_process import PortalProcess
from vpop.server.portal_process import check_port as check_portal_port
from vpop.server.udp import open_socket
from vpop.server.worker import DRAIN_TIMEOUT, Worker

log = logging.getLogger(__name__)


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM; with workers > 1, as a supervisor of processes.
    With the accounting journal, a ledger process applies it beside the workers.
    The caller has run vpop.server.preflight.check: the ports are bound before the
    journal or anything else is made, so a port in use leaves nothing behind."""
    port = settings.isp.accounting_source_port
    if port:  # in use: fail before anything starts
        try:
            for sock in open_source_sockets(port).values():
                sock.close()
        except OSError as exc:
            raise ListenError("*", port, "udp", exc.strerror or str(exc),
                              option="isp.accounting_source_port") from None
    if settings.portal.enabled:
        check_portal_port(settings)
    stats_dir = tempfile.mkdtemp(prefix="vpop-stats-")
    ledger = LedgerProcess(settings, stats_dir) if settings.accounting.journal else None
    portal = PortalProcess(settings) if settings.portal.enabled else None
    try:
        if settings.server.workers == 1:
            worker = Worker(settings, ledger=ledger)
            socks = worker.open_sockets()  # a port in use fails before the ledger starts
            if settings.metrics.port:
                serve_metrics(settings.metrics.listen, settings.metrics.port,
                              VpopCollector(lambda: read_snapshots(stats_dir) + (
                                  [worker.snapshot()] if hasattr(worker, "writer") else []),
                                  dynauth=DynAuthCounts(settings.database_url)))
            if ledger is not None:
                ledger.start()
            if portal is not None:
                portal.start()
            log_started(settings, socks)
            worker.run(socks)
            return 0
        return _supervise(settings, stats_dir, ledger, portal)
    finally:
        if portal is not None:
            portal.stop()
        if ledger is not None:
            ledger.stop()
        shutil.rmtree(stats_dir, ignore_errors=True)


def log_started(settings: Settings, socks: list[tuple[str, socket.socket]]) -> None:
    """One line for whoever reads the log first: pid, the bound ports, the metrics URL
    and whether the compiled wire primitives run."""
    def where(host: str, port: int) -> str:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = {kind: " ".join(where(*sock.getsockname()[:2]) for k, sock in socks if k == kind)
             for kind in (AUTH, ACCT, COA)}
    metrics = settings.metrics
    log.info("vpop %s started: pid %d, %d worker(s); auth %s, acct %s, coa %s; metrics %s; "
             "wire primitives %s", vpop.__version__, os.getpid(), settings.server.workers,
             bound[AUTH], bound[ACCT], bound[COA],
             f"http://{where(metrics.listen, metrics.port)}/metrics" if metrics.port else "off",
             wire.IMPLEMENTATION)


def _supervise(settings: Settings, stats_dir: str, ledger: LedgerProcess | None,
               portal: PortalProcess | None) -> int:
    ctx = multiprocessing.get_context("fork")
    accounting = open_accounting_sockets(settings)
    # Bind once here so a port in use fails before any worker starts.
    probe = Worker(settings, reuse_port=True, accounting=accounting)
    held = [(kind, sock) for kind, sock in probe.open_sockets() if kind != ACCT]
    if settings.metrics.port:  # likewise the metrics port
        serve_metrics(settings.metrics.listen, settings.metrics.port,
                      VpopCollector(lambda: read_snapshots(stats_dir),
                                    dynauth=DynAuthCounts(settings.database_url)))
    log_started(settings, held + [(ACCT, sock) for sock in accounting.values()])

    def spawn(index: int):
        process = ctx.Process(target=_worker_main,
                              args=(settings, index, stats_dir, held, os.getpid(), accounting),
                              name=f"vpop-worker-{index}")
        process.start()
        return process

    workers = [spawn(i) for i in range(settings.server.workers)]
    for _, sock in held:
        sock.close()
    if ledger is not None:
        ledger.start()
    if portal is not None:  # after the fork of the workers: they do not inherit its thread
        portal.start()
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for p in workers:
            if p.pid and p.is_alive():
                os.kill(p.pid, signum)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    restarts = [Restarts() for _ in workers]
    while not stopping:
        time.sleep(0.2)
        for i, p in enumerate(workers):
            if not p.is_alive() and not stopping:
                if restarts[i].start_again(log, f"worker {i}", p.exitcode):
                    workers[i] = spawn(i)
                    restarts[i].started()
        if ledger is not None and not stopping:
            ledger.check()
    for p in workers:
        p.join(DRAIN_TIMEOUT + 5)
    for sock in accounting.values():
        sock.close()
    return 0


def open_accounting_sockets(settings: Settings) -> dict[str, socket.socket]:
    """The accounting port's sockets, one per address, that every worker reads.

    One socket, one queue: whichever worker is free takes the next records, so a worker
    that is busy or paused holds none back (SO_REUSEPORT would give each a fixed share),
    and one NAS's records (one source port) use every worker. A retransmission may
    reach another worker than its original, whose duplicate cache does not know it: it
    is journaled again, and the ledger, which recognises a record by its content,
    stores it once (as after a restart). The supervisor keeps these sockets open, so a
    restarted worker inherits them.
    """
    s = settings.server
    opened: dict[str, socket.socket] = {}
    try:
        for host in s.listen:
            opened[host] = open_socket(host, s.acct_port, s.recv_buffer, reuse_port=False)
    except OSError:
        for sock in opened.values():
            sock.close()
        raise
    return opened


def _worker_main(settings: Settings, index: int, stats_dir: str, inherited,
                 supervisor: int, accounting: dict[str, socket.socket]) -> None:
    if not die_with_parent(supervisor):
        return
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    # The supervisor's port check: left open here, it would stay in the port's
    # SO_REUSEPORT group and take a share of the datagrams that nobody reads.
    for _, sock in inherited:
        sock.close()
    Worker(settings, index=index, stats_dir=stats_dir, reuse_port=True,
           accounting=accounting).run()
