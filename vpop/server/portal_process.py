"""The web portal beside the RADIUS server: `vpop serve` starts it when [portal]
enabled, starts it again when it dies, and stops it with the server.

The portal is a fresh interpreter (`python -m vpop.portal.serve`, the settings pickled
on its stdin, as the ledger is started): it inherits no sockets, threads or event loop
from the server. A keeper thread starts it and watches it; the child asks for SIGKILL
when that thread's process dies (vpop.server.lifetime), so a SIGKILL'ed server leaves
no portal behind.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import subprocess
import sys
import threading

from vpop.config import Settings
from vpop.errors import ListenError
from vpop.server.lifetime import Restarts

log = logging.getLogger(__name__)
RESTART_AFTER = 1.0  # seconds between looks; the first delay of a portal dying young
STOP_TIMEOUT = 10.0  # seconds the portal has to finish the requests it serves


def check_port(settings: Settings) -> None:
    """The portal's port free: fail at start-up, naming it, rather than restart a portal
    that cannot listen for ever."""
    portal = settings.portal
    family = socket.AF_INET6 if ":" in portal.listen else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((portal.listen, portal.port))
        except OSError as exc:
            raise ListenError(portal.listen, portal.port, "tcp", exc.strerror or str(exc),
                              option="portal.port") from None


class PortalProcess:
    """start() at the server's start, stop() at its end."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        self._keeper = threading.Thread(target=self._keep, name="vpop-portal", daemon=True)
        self._keeper.start()

    def _spawn(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "vpop.portal.serve"],
                                        stdin=subprocess.PIPE)
        with self.process.stdin as stdin:
            stdin.write(pickle.dumps((self.settings, os.getpid())))
        log.info("portal (pid %d) on http://%s:%d/", self.process.pid,
                 self.settings.portal.listen, self.settings.portal.port)

    def _keep(self) -> None:
        """Runs in the keeper thread: the thread that starts the portal must live as long
        as the server (the child's parent-death signal is tied to it)."""
        restarts = Restarts(first=RESTART_AFTER)
        while not self._stopping.is_set():
            if self.process is None:
                self._spawn()
                restarts.started()
            elif self.process.poll() is not None:
                delay = restarts.died()
                log.error("the portal exited with %s; starting a new one%s",
                          self.process.returncode, f" in {delay:.1f} s" if delay else "")
                self.process = None
                self._stopping.wait(delay)
                continue
            self._stopping.wait(RESTART_AFTER)

    def stop(self) -> None:
        self._stopping.set()
        if self._keeper is not None:
            self._keeper.join()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: it finishes the requests in progress
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("the portal did not stop; killing it")
            process.kill()
            process.wait(5)
