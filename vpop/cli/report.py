"""`vpop report utilization` and `vpop report sessions`: reports from the rollups.

    vpop report utilization [--isp ISP] [--lease NAME] [--nas NAS] [--from T] [--to T]
                            [--grain 5min|hour|day] [--format table|csv|json] [--events]
    vpop report sessions    [same filters] [--by isp|lease|nas] [--online [--limit N]]

Times are dates (2026-03-01) or date-times (2026-03-01T10:00, UTC unless an offset is
given); the period is [--from, --to). By default: today, UTC.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from vpop.accounting import reports
from vpop.accounting.reports import parse_time
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
    return _report(settings, args, "utilization", out, err, now)


def report_sessions(settings, args, *, out: TextIO | None = None, err: TextIO | None = None,
                    now: float | None = None) -> int:
    return _report(settings, args, "sessions", out, err, now)


def _report(settings, args, kind: str, out: TextIO | None, err: TextIO | None,
            now: float | None) -> int:
    """Open the database, read the report (vpop/store/reports.py), print it."""
    from vpop.store import reports as queries
    out, err = out or sys.stdout, err or sys.stderr
    now = time.time() if now is None else now
    filters = filters_from(args, now)
    progress = _progress(args, err, kind)
    engine, sessions = _session_maker(settings)
    try:
        with sessions() as session:
            if kind == "utilization":
                rows, columns = queries.utilization(session, filters, events=args.events,
                                                    now=now, progress=progress)
            else:
                rows, columns = queries.sessions(session, filters, by=args.by,
                                                 online=args.online, limit=args.limit,
                                                 progress=progress)
    finally:
        engine.dispose()
    out.write(reports.render(rows, columns, args.format))
    return 0


def _progress(args, err: TextIO, label: str):
    """A progress bar (or lines) on `err` for a given number of slices."""
    stream = _progress_stream(args, err)
    return lambda total: Progress(total, stream, label)
