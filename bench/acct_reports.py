#!/usr/bin/env python3
"""Reports over a large generated accounting data set: how long `vpop report` takes.

Generates --records accounting records (10 million by default) through vpop's own
accounting path (vpop.store.accounting.apply_batch, as the server's writer runs it, in
large batches): sessions on --nas NASes for --isps ISPs, each ISP leasing its share of
the NASes, an Interim-Update every 5 minutes, spread over --days days. Then runs the
reports `vpop report` offers, each with the same code the command runs, and prints how
long each took and how many rows it read and wrote.

    python bench/acct_reports.py --db sqlite:////var/tmp/acct10m.db
    python bench/acct_reports.py --db postgresql://postgres@127.0.0.1/acct10m --records 2000000
    python bench/acct_reports.py --db sqlite:////var/tmp/acct10m.db --reuse   # reports only

The database is created (emptied) unless --reuse is given.
"""

from __future__ import annotations

import argparse
import heapq
import io
import random
import sys
import time
from types import SimpleNamespace

from sqlalchemy import func, select, text

from vpop.cli import report as report_cli
from vpop.accounting.records import AcctRecord
from vpop.accounting.routing import Routing
from vpop.config import DatabaseSettings, Settings
from vpop.store import accounting as store
from vpop.store import schema
from vpop.store.accounting_models import AcctHistory as HistoryRow
from vpop.store.accounting_models import AcctRollup, Lease, LeasePlace, RadAcct
from vpop.store.engine import make_engine, make_sessionmaker

T0 = 1_772_323_200  # 2026-03-01T00:00:00Z
INTERVAL = 300


def nas_name(n: int) -> str:
    return f"10.0.{n // 250}.{n % 250 + 1}"


def sessions(args, rng: random.Random):
    """(start, duration, sid, isp, nas, rate) per session, in start order."""
    per_session = 25  # records of the average session (30 minutes to 3.5 hours)
    count = max(1, args.records // per_session)
    gap = args.days * 86_400 / count
    for i in range(count):
        isp = rng.randrange(args.isps)
        local = rng.random() < 0.1
        nas = isp + args.isps * rng.randrange(max(1, args.nas // args.isps))
        yield (T0 + int(i * gap), rng.randrange(1800, 12_600), f"s{i:08d}",
               None if local else f"isp-{isp:02d}", nas_name(nas % args.nas), rng.randrange(1, 40_000))


def records(args):
    """The data set's records in event-time order."""
    rng = random.Random(args.seed)
    pending: list = []  # (time, sequence, record)
    sequence = 0
    for start, duration, sid, isp, nas, rate in sessions(args, rng):
        while pending and pending[0][0] <= start:
            yield heapq.heappop(pending)[2]
        routing = Routing(isp=isp, mode="proxy", reason="realm") if isp else Routing(
            isp=None, mode="local")
        base = dict(unique_id=sid, session_id=sid, username=f"user{sid[1:]}", nas_address=nas,
                    nas_port=None, nas_port_number=None, calling_station_id=None,
                    framed_ip=None, terminate_cause=None, routing=routing)
        steps = [(start, "start", 0)]
        steps += [(start + k, "interim", k) for k in range(INTERVAL, duration, INTERVAL)]
        steps.append((start + duration, "stop", duration))
        for at, status, elapsed in steps:
            record = AcctRecord(status=status, event_time=at, arrival=at, event_stamp=at,
                                session_time=elapsed, input_octets=elapsed * rate,
                                output_octets=elapsed * rate // 8, **{
                                    **base, "terminate_cause":
                                    "User-Request" if status == "stop" else None})
            heapq.heappush(pending, (at, sequence, record))
            sequence += 1
    while pending:
        yield heapq.heappop(pending)[2]


def leases(args, session) -> None:
    """Each ISP leases the NASes its sessions use, a little less than it uses at its
    busiest and a little more than at its quietest, so that events happen: 50 sessions
    (under-used below 40 for an hour), 10 Mbit/s, 2 TB a month."""
    start = dt_utc(T0 - 86_400)
    for k in range(args.isps):
        lease = Lease(name=f"lease-{k:02d}", isp=f"isp-{k:02d}", sessions=50,
                      bandwidth_kbps=10_000, volume_bytes=2 * 10**12, starts=start,
                      reject_message="full", under_percent=80, under_window=3600)
        lease.places = [LeasePlace(nas=nas_name(n)) for n in range(k, args.nas, args.isps)]
        session.add(lease)


def dt_utc(t: int):
    import datetime as dt
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


def generate(args, sessionmaker) -> None:
    with sessionmaker.begin() as session:
        leases(args, session)
    with sessionmaker() as session:
        index = store.load_leases(session)
    started = time.perf_counter()
    batch, done, shown = [], 0, 0
    last_tick = None
    for record in records(args):
        batch.append(record)
        if len(batch) == args.batch:
            with sessionmaker.begin() as session:
                store.apply_batch(session, batch, leases=index, locked=False)
                now = batch[-1].event_time
                if last_tick is None or now - last_tick >= 3600:  # the monitor's tick, hourly
                    store.tick(session, now=now, stale_before=None, leases=index, locked=True)
                    last_tick = now
            done += len(batch)
            batch = []
            if done - shown >= args.records // 20:
                shown = done
                elapsed = time.perf_counter() - started
                print(f"  {done:,} records in {elapsed:,.0f} s ({done / elapsed:,.0f}/s)",
                      flush=True)
    if batch:
        with sessionmaker.begin() as session:
            store.apply_batch(session, batch, leases=index)
        done += len(batch)
    elapsed = time.perf_counter() - started
    print(f"generated {done:,} records in {elapsed:,.0f} s ({done / elapsed:,.0f}/s)")


def report_args(**kw):
    base = dict(isp=None, lease=None, nas=None, start=None, end=None, grain=None,
                format="csv", progress=False, events=False, by="isp", online=False, limit=1000)
    return SimpleNamespace(**{**base, **kw})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, help="sqlite:////path or postgresql://... URL")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--nas", type=int, default=200)
    parser.add_argument("--isps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="report on the data set as it is")
    args = parser.parse_args(argv)

    if not args.reuse:
        engine = make_engine(args.db)
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            else:
                for (name,) in connection.execute(text(
                        "SELECT name FROM sqlite_master WHERE type='table'")).all():
                    connection.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()
        schema.upgrade(args.db)
    engine = make_engine(args.db)
    sessionmaker = make_sessionmaker(engine)
    if not args.reuse:
        generate(args, sessionmaker)
    with sessionmaker() as session:
        counts = {name: session.scalar(select(func.count()).select_from(model))
                  for name, model in (("acct_record", HistoryRow), ("radacct", RadAcct),
                                      ("acct_rollup", AcctRollup))}
    print(", ".join(f"{n}: {c:,} rows" for n, c in counts.items()))

    settings = Settings(database=DatabaseSettings(url=args.db))
    month = dict(start="2026-03-01", end=f"2026-03-{min(args.days, 30) + 1:02d}")
    runs = [
        ("utilization, all leases, by day", report_cli.report_utilization,
         report_args(**month, grain="day")),
        ("utilization, all leases, by hour", report_cli.report_utilization,
         report_args(**month, grain="hour")),
        ("utilization, one lease, 5 minutes, one day", report_cli.report_utilization,
         report_args(start="2026-03-15", end="2026-03-16", grain="5min", lease="lease-03")),
        ("utilization events", report_cli.report_utilization,
         report_args(**month, events=True)),
        ("sessions by ISP, by day", report_cli.report_sessions,
         report_args(**month, grain="day")),
        ("sessions by NAS, by hour", report_cli.report_sessions,
         report_args(**month, grain="hour", by="nas")),
        ("sessions of one ISP by lease, by hour", report_cli.report_sessions,
         report_args(**month, grain="hour", by="lease", isp="isp-07")),
        ("sessions online now", report_cli.report_sessions, report_args(online=True)),
    ]
    print(f"\n| report ({counts['acct_record']:,} accounting records) | seconds | rows |")
    print("|---|---:|---:|")
    for name, report, report_args_ in runs:
        out = io.StringIO()
        started = time.perf_counter()
        report(settings, report_args_, out=out, err=io.StringIO(), now=T0 + args.days * 86_400)
        elapsed = time.perf_counter() - started
        rows = max(0, len(out.getvalue().splitlines()) - 1)
        print(f"| {name} | {elapsed:.2f} | {rows:,} |", flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
