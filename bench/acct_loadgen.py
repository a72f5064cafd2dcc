#!/usr/bin/env python3
"""loadgen.py --kind acct, with each session's records spread out as a NAS sends them.

loadgen.py sends a session's Start, Interim-Update and Stop one after the other, so
with a window of outstanding requests all three are in flight at once. No NAS does
that, and a server that writes each record on its own (FreeRADIUS's SQL module with
several threads) then races itself: the Interim's UPDATE finds no row yet, its INSERT
fallback collides with the Start's, and the request goes unanswered. Here sessions
come in blocks of --spread: the Starts of a block, then their Interim-Updates, then
their Stops, so a session's next record is sent only after its previous one was
answered (when --spread is at least --window).

Same options and output as loadgen.py, plus --spread.

    acct_loadgen.py --target 127.0.0.1:1813 --duration 10 --window 256 --spread 1024
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402  (next to this file)

SPREAD = 1024


def spread_pool(plan: loadgen.Plan, total: int, spread: int = SPREAD) -> list[list[bytes]]:
    """`total` Accounting-Requests as pool[identifier] lists, in sending order, where
    packet j (identifier j % 256) is step j // spread % 3 of session
    (j // (3 * spread)) * spread + j % spread."""
    import os
    per_id = -(-total // loadgen.IDS)
    pool: list[list[bytes]] = [[] for _ in range(loadgen.IDS)]
    nonce = os.urandom(4).hex()
    cycle = len(loadgen.STATUS_CYCLE)
    for j in range(per_id * loadgen.IDS):
        block, offset = divmod(j, cycle * spread)
        step, member = divmod(offset, spread)
        session = block * spread + member
        # loadgen.accounting_request numbers records: session * 3 + step.
        pool[j % loadgen.IDS].append(
            loadgen.accounting_request(j % loadgen.IDS, session * cycle + step, nonce, plan))
    return pool


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    spread = SPREAD
    if "--spread" in argv:
        at = argv.index("--spread")
        spread = int(argv[at + 1])
        del argv[at:at + 2]
    if spread < 1:
        raise SystemExit("--spread must be at least 1")
    original = loadgen.build_pool

    def build_pool(plan, total):
        return spread_pool(plan, total, spread) if plan.kind == "acct" else original(plan, total)
    loadgen.build_pool = build_pool  # the rest of loadgen (processes, timing, output) as is
    if "--kind" not in argv:
        argv += ["--kind", "acct"]
    return loadgen.main(argv)


if __name__ == "__main__":
    sys.exit(main())
