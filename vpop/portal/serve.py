"""The portal under a production WSGI server (waitress): `vpop web`, or the process
`vpop serve` starts beside the RADIUS server (`python -m vpop.portal.serve`, the
settings pickled on its standard input, as the ledger is started)."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys

import waitress

from vpop.config import Settings

log = logging.getLogger(__name__)


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; the requests being served are finished first."""
    from vpop.portal.app import create_app
    from vpop.store.engine import check_connection, make_engine
    engine = make_engine(settings.database_url, create=False)
    try:
        check_connection(engine)  # a database that is down says so before we listen
    finally:
        engine.dispose()
    app = create_app(settings)
    portal = settings.portal
    server = waitress.create_server(app, host=portal.listen, port=portal.port,
                                    threads=portal.threads, ident="vpop",
                                    trusted_proxy=None, clear_untrusted_proxy_headers=True)

    def stop(_signum, _frame):
        raise SystemExit(0)  # waitress's loop ends on it and lets its threads finish
    signal.signal(signal.SIGTERM, stop)
    host = f"[{portal.listen}]" if ":" in portal.listen else portal.listen
    log.info("portal listening on http://%s:%s/ (pid %d)", host, server.effective_port,
             os.getpid())
    server.run()
    log.info("portal stopped")
    return 0


def _child_main(settings: Settings, parent: int) -> None:
    """The portal as `vpop serve` runs it (vpop/server/portal_process.py)."""
    from vpop.logs import setup_logging
    from vpop.server.lifetime import die_with_parent
    if not die_with_parent(parent):
        return
    setup_logging(settings)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us with SIGTERM
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sys.exit(run(settings))
    except Exception:
        log.exception("portal failed")
        sys.exit(1)


if __name__ == "__main__":
    _child_main(*pickle.load(sys.stdin.buffer))
