"""`vpop import FILE`: check the file, write it in one transaction, then wait until the
running server serves the change and say so.

Progress goes to standard error: a bar on a terminal, a line every few seconds
elsewhere. The workers of a running server follow the data generation
(vpop.store.generation); after the commit this command watches the generation they
report until every worker serves the new one, or --wait seconds have passed.
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time
from collections.abc import Callable
from typing import TextIO

from vpop import progress
from vpop.store import generation as generations

POLL = 0.2  # seconds between looks at what the workers report


def run_import(settings, file: str, *, replies, dry_run: bool, wait: float | None,
               out: TextIO | None = None, err: TextIO | None = None,
               clock: Callable[[], float] = time.monotonic,
               now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
               sleep: Callable[[float], None] = time.sleep) -> int:
    """The import; with `wait` (seconds), then the wait for the running server (None:
    no word about a server, as for `vpop init --demo`). `replies` renders the ISPs'
    reply templates where the server will look for them."""
    from vpop import provisioning
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    out = out or sys.stdout
    err = err or sys.stderr
    shown = progress.on(err)
    started = now()
    plan = provisioning.parse(file, identification=settings.identification, replies=replies,
                              progress=shown)
    # The plan lives to the end and holds no cycles: full collections need not walk it
    # (with a large file they took more time than the writing itself).
    gc.freeze()
    engine = make_engine(settings.database_url)
    try:
        check_connection(engine)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            summary = provisioning.apply(session, plan, progress=shown)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        del plan
        print(("would import " if dry_run else "imported ") + f"{file}: {summary}", file=out)
        if dry_run or wait is None:
            return 0
        target = summary.generation
        if target is None:  # nothing changed: whatever the workers should serve by now
            with sessions() as session:
                target = generations.current(session).generation
        committed = now()
        _await_effect(sessions, target, wait=wait, since=started, committed=committed,
                      out=out, err=err, clock=clock, now=now, sleep=sleep)
        return 0
    finally:
        engine.dispose()


def _await_effect(sessions, target: int, *, wait: float, since: dt.datetime,
                  committed: dt.datetime, out: TextIO, err: TextIO,
                  clock: Callable[[], float], now: Callable[[], dt.datetime],
                  sleep: Callable[[float], None]) -> None:
    """Until every running worker serves generation `target`, or `wait` seconds.

    The workers counted are those seen since shortly before the import began: on
    SQLite a long import keeps their reports out until it commits. A worker that has
    not reported within SEEN_WITHIN seconds after the commit is taken for stopped.
    """
    window = dt.timedelta(seconds=generations.SEEN_WITHIN)
    began = clock()
    deadline = began + wait
    while True:
        with sessions() as session:
            workers = generations.serving(session, since=since - window)
        moment = now()
        if moment - committed > window:
            workers = [w for w in workers if w.seen_at >= committed - window]
        behind = [w for w in workers if w.generation < target]
        if not workers:
            print(f"no running server seen; takes effect at its start (generation {target})",
                  file=out)
            return
        if not behind:
            print(f"in effect on the running server (generation {target}; "
                  f"{_workers(workers)}, {clock() - began:.1f} s after the commit)", file=out)
            return
        if clock() >= deadline:
            oldest = min(w.generation for w in behind)
            print(f"vpop: not yet in effect after {wait:g} s: {len(behind)} of "
                  f"{_workers(workers)} still serve generation {oldest}, not {target}; "
                  "they load it when they can (see the server's log)", file=err)
            return
        sleep(POLL)


def _workers(workers) -> str:
    hosts = {w.host for w in workers}
    count = f"{len(workers)} worker{'s' if len(workers) != 1 else ''}"
    return count if len(hosts) == 1 else f"{count} on {len(hosts)} hosts"
