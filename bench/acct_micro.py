#!/usr/bin/env python3
"""Where an accounting record's time goes, in one process and without sockets.

Times, per record, over loadgen.py's Start/Interim-Update/Stop stream:
  receiver  Receiver.datagram for an Accounting-Request up to its signed reply
            (decode, Request Authenticator, record_from, duplicate cache, counters);
  record    codec.decode + records.record_from alone;
  ledger    store.apply_batch in batches of --batch on a fresh database, commit included;
  journal   JournalWriter's part: encode_entry and Journal.append (one fsync a batch);
  applied   the ledger process's part: Ledger.step over that journal (decode_entry,
            AccountingWriter.commit with the journal's progress) on another fresh database.

--spread N sends records as acct_loadgen.py does (the Starts of N sessions, then their
Interim-Updates, then their Stops), so a batch rarely holds two records of a session.

    python bench/acct_micro.py --records 30000 --batch 256 [--spread 1024] [--db postgresql://...]
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import acct_loadgen  # noqa: E402  (next to this file)
import loadgen  # noqa: E402

from vpop.accounting.leases import LeaseIndex  # noqa: E402
from vpop.config import AccountingSettings  # noqa: E402
from vpop.config import Settings  # noqa: E402
from vpop.server.ledger import Ledger  # noqa: E402
from vpop.store.journal import Journal, encode_entry  # noqa: E402
from vpop.accounting.records import AccountingPolicy, record_from  # noqa: E402
from vpop.dispatch.receiver import ACCT, Receiver  # noqa: E402
from vpop.radius import codec  # noqa: E402
from vpop.radius.clients import ClientTable, NasClient  # noqa: E402
from vpop.store import schema  # noqa: E402
from vpop.store.accounting import apply_batch  # noqa: E402
from vpop.store.engine import make_engine, make_sessionmaker  # noqa: E402

SECRET = b"testing123"


class Deps:
    """What the receiver reads for accounting: no ISPs, so nothing is forwarded."""
    accounting = AccountingPolicy()
    isps = None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--spread", type=int, default=0,
                        help="sessions per block, as acct_loadgen.py (default: back to back)")
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--profile", help="write a cProfile of the ledger step here")
    args = parser.parse_args(argv)

    plan = loadgen.Plan(kind="acct", host="127.0.0.1", port=1, secret=SECRET, user="alice",
                        password=b"", nas_ip=ipaddress.IPv4Address("127.0.0.1").packed,
                        window=1, sockets=1, timeout=1, warmup=0, duration=None, count=1)
    nonce = os.urandom(4).hex()
    if args.spread:
        pool = acct_loadgen.spread_pool(plan, args.records, args.spread)
        packets = [pool[j % 256][j // 256] for j in range(args.records)]
    else:
        packets = [loadgen.accounting_request(j % 256, j, nonce, plan)
                   for j in range(args.records)]
    client = NasClient(name="nas", network=ipaddress.ip_network("127.0.0.1/32"), secret=SECRET)

    receiver = Receiver(Deps(), ClientTable([client]), dedup_window=30)
    started = time.perf_counter()
    for n, data in enumerate(packets):
        receiver.datagram(data, ("127.0.0.1", 1000 + n % 4), ACCT).done(True)
    receiver_us = (time.perf_counter() - started) / len(packets) * 1e6

    started = time.perf_counter()
    records = [record_from(codec.decode(data), client, time.time()) for data in packets]
    record_us = (time.perf_counter() - started) / len(packets) * 1e6

    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='vpop-acct-micro-')}/vpop.db"
    schema.upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    for start in range(0, len(records), args.batch):
        with sessions.begin() as session:
            apply_batch(session, records[start:start + args.batch], leases=LeaseIndex())
    ledger_us = (time.perf_counter() - started) / len(records) * 1e6
    engine.dispose()

    home = tempfile.mkdtemp(prefix="vpop-acct-micro-")
    journal = Journal(f"{home}/journal", writer=True)
    started = time.perf_counter()
    for start in range(0, len(records), args.batch):
        journal.append([encode_entry(r, None) for r in records[start:start + args.batch]])
    journal_us = (time.perf_counter() - started) / len(records) * 1e6
    url = args.db if args.db else f"sqlite:///{home}/vpop.db"
    schema.upgrade(url)
    engine = make_engine(url)
    settings = Settings(accounting=AccountingSettings(max_batch=args.batch))
    ledger = Ledger(settings, [journal], make_sessionmaker(engine))
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    while ledger.step():
        pass
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    applied_us = (time.perf_counter() - started) / len(records) * 1e6
    engine.dispose()
    journal.close()

    print(f"{len(packets):,} records on {engine.dialect.name}, batches of {args.batch}")
    print(f"receiver  {receiver_us:6.1f} us/record")
    print(f"record    {record_us:6.1f} us/record (decode + record_from)")
    print(f"ledger    {ledger_us:6.1f} us/record (apply_batch and commit)")
    print(f"journal   {journal_us:6.1f} us/record (encode_entry, Journal.append)")
    print(f"applied   {applied_us:6.1f} us/record (Ledger.step over the journal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
