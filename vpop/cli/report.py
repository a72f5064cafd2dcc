"""`vpop report utilization` and `vpop report sessions`: reports from the rollups.

    vpop report utilization [--isp ISP] [--lease NAME] [--nas NAS] [--from T] [--to T]
                            [--grain 5min|hour|day] [--format table|csv|json] [--events]
    vpop report sessions    [same filters] [--by isp|lease|nas] [--online [--limit N]]

Times are dates (2026-03-01) or date-times (2026-03-01T10:00, UTC unless an offset is
given); the period is [--from, --to). By default: today, UTC.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import TextIO

from vpop.accounting import reports
from vpop.accounting.rollups import GRAINS
from vpop.errors import ConfigError
from vpop.progress import Progress


def add_report_parser(commands) -> None:
    """The `report` command and its two reports, for vpop.cli's subparsers."""
    report = commands.add_parser("report", help="utilization and session reports")
    kinds = report.add_subparsers(dest="report", required=True)
    for name, help_text in (("utilization", "per lease: sessions, traffic, events"),
                            ("sessions", "per ISP, lease or NAS: sessions, time, octets")):
        sub = kinds.add_parser(name, help=help_text)
        sub.add_argument("--isp", help="only this ISP")
        sub.add_argument("--lease", help="only this lease (its name)")
        sub.add_argument("--nas", help="only this NAS (as it names itself)")
        sub.add_argument("--from", dest="start", metavar="TIME", help="period start (default: today)")
        sub.add_argument("--to", dest="end", metavar="TIME", help="period end, exclusive")
        sub.add_argument("--grain", choices=tuple(GRAINS),
                         help="bucket size (default: hour up to 7 days, else day)")
        sub.add_argument("--format", choices=reports.FORMATS, default="table",
                         help="output format (default: table)")
        sub.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress bar on standard error (default: when it is a terminal)")
        if name == "utilization":
            sub.add_argument("--events", action="store_true",
                             help="list the under- and over-utilization events instead")
        else:
            sub.add_argument("--by", choices=reports.GROUPS, default="isp",
                             help="one row per bucket and ISP, lease or NAS (default: isp)")
            sub.add_argument("--online", action="store_true",
                             help="list the sessions online now instead")
            sub.add_argument("--limit", type=int, default=1000, help="sessions listed at most")


def parse_time(text: str, option: str) -> int:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: use a date (2026-03-01) or a date and time "
                          "(2026-03-01T10:00, UTC unless an offset is given)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def filters_from(args, now: float) -> reports.Filters:
    if args.start is not None:
        start = parse_time(args.start, "--from")
    else:
        start = int(now) - int(now) % 86_400
    end = parse_time(args.end, "--to") if args.end is not None else start + 86_400
    if end <= start:
        raise ConfigError("--to must be after --from")
    grain = args.grain or reports.default_grain(start, end)
    return reports.Filters(isp=args.isp, lease=args.lease, nas=args.nas, start=start, end=end,
                           grain=grain)


def _progress_stream(args, stream: TextIO) -> TextIO | None:
    wanted = args.progress if args.progress is not None else stream.isatty()
    return stream if wanted else None


def _session_maker(settings):
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    engine = make_engine(settings.database_url)
    check_connection(engine)
    return engine, make_sessionmaker(engine)


def report_utilization(settings, args, *, out: TextIO | None = None,
                       err: TextIO | None = None, now: float | None = None) -> int:
    from vpop.store import accounting as store
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    filters = filters_from(args, now)
    engine, sessions = _session_maker(settings)
    try:
        with sessions() as session:
            leases = reports.select_leases(store.load_leases(session).by_id.values(), filters)
            if filters.lease is not None and not leases:
                raise ConfigError(f"--lease {filters.lease!r}: no such lease in the period")
            ids = [lease.id for lease in leases]
            if args.events:
                events = store.utilization_events(session, ids, filters.start, filters.end)
                rows = reports.event_rows({lease.id: lease for lease in leases}, events, int(now))
                out.write(reports.render(rows, reports.EVENT_COLUMNS, args.format))
                return 0
            slices = reports.time_slices(filters.start, filters.end, filters.grain)
            progress = Progress(len(slices), _progress_stream(args, err), "utilization")
            seconds_, traffic, peaks = {}, {}, {}
            for start, end in slices:
                seconds_.update(store.lease_seconds(session, ids, filters.grain, start, end))
                traffic.update(store.lease_traffic(session, ids, filters.grain, start, end))
                for key, found in store.gauge_peaks(session, "lease", [str(i) for i in ids],
                                                    filters.grain, start, end).items():
                    peaks.setdefault(int(key), {}).update(found)
                progress.step()
            carry = {int(k): v for k, v in store.gauge_carry(
                session, "lease", [str(i) for i in ids], filters.grain, filters.start).items()}
            events = store.utilization_events(session, ids, filters.start, filters.end)
            progress.done()
    finally:
        engine.dispose()
    rows = reports.utilization_rows(leases, filters, seconds=seconds_, peaks=peaks, carry=carry,
                                    traffic=traffic, events=events)
    out.write(reports.render(rows, reports.UTILIZATION_COLUMNS, args.format))
    return 0


def report_sessions(settings, args, *, out: TextIO | None = None, err: TextIO | None = None,
                    now: float | None = None) -> int:
    from vpop.store import accounting as store
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    engine, sessions = _session_maker(settings)
    try:
        with sessions() as session:
            by_name = {lease.name: lease for lease in store.load_leases(session).by_id.values()}
            lease_id = None
            if args.lease is not None:
                if args.lease not in by_name:
                    raise ConfigError(f"--lease {args.lease!r}: no such lease")
                lease_id = by_name[args.lease].id
            if args.online:
                rows = store.online_sessions(session, isp=args.isp, lease_id=lease_id,
                                             nas=args.nas, limit=args.limit)
                for row in rows:
                    row["start"] = reports.iso(row["start"])
                    row["last_update"] = reports.iso(row["last_update"])
                out.write(reports.render(rows, reports.ONLINE_COLUMNS, args.format))
                return 0
            filters = filters_from(args, now)
            slices = reports.time_slices(filters.start, filters.end, filters.grain)
            progress = Progress(len(slices), _progress_stream(args, err), "sessions")
            sums = []
            for start, end in slices:
                sums += store.rollup_sums(session, args.by, filters.grain, start, end,
                                          isp=args.isp, lease_id=lease_id, nas=args.nas)
                progress.step()
            # A gauge's peak is the group's only when no other filter narrows the group.
            narrowing = {"isp": args.isp, "lease": lease_id, "nas": args.nas}
            narrowing.pop(args.by)
            peaks = carry = None
            if all(v is None for v in narrowing.values()):
                keys = sorted({str(s[1]) for s in sums if s[1] not in ("", 0)})
                peaks, carry = {}, {}
                for start, end in slices:
                    for key, found in store.gauge_peaks(session, args.by, keys, filters.grain,
                                                        start, end).items():
                        peaks.setdefault(key, {}).update(found)
                carry = store.gauge_carry(session, args.by, keys, filters.grain, filters.start)
            progress.done()
    finally:
        engine.dispose()
    names = {lease.id: lease.name for lease in by_name.values()} if args.by == "lease" else {}
    if args.by == "lease":
        names[0] = "(no lease)"
    rows = reports.session_rows(filters, args.by, sums, names=names, peaks=peaks, carry=carry)
    out.write(reports.render(rows, reports.SESSION_COLUMNS, args.format))
    return 0
