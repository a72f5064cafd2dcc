"""``vpop isp status``: each ISP and the state of its RADIUS servers, as a table or as
JSON: the state the proxy last gave each server (stored when it changes, as the log
says it) and what the QoS series in the database measured."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence

from vpop.isp.model import Isp
from vpop.isp.pool import ServerState
from vpop.isp.qos import BucketSummary, server_answering, total

ANSWERING = {True: "up", False: "down", None: "-"}  # in the latest minute with exchanges


def add_arguments(parser) -> None:
    """The options of ``vpop isp status``."""
    parser.add_argument("isp", nargs="?", help="only this ISP")
    parser.add_argument("--minutes", type=int, default=15,
                        help="the window measurements are summed over (default 15)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")


def isp_status(settings, args) -> int:
    """Print the status; 2 if ``args.isp`` names no ISP. Reads the clock here: the CLI
    is a shell."""
    from vpop.store.engine import check_connection, make_engine, make_sessionmaker
    from vpop.store.isp_snapshot import load_isps
    from vpop.store.qos import latest_health, series, server_states
    if args.minutes < 1:
        print("vpop: --minutes must be at least 1", file=sys.stderr)
        return 2
    now = dt.datetime.now(dt.timezone.utc)
    window = dt.timedelta(minutes=args.minutes)
    engine = make_engine(settings.database_url)
    try:
        check_connection(engine)
        with make_sessionmaker(engine)() as session:
            isps = load_isps(session)
            buckets = series(session, since=now - window, until=now, isp=args.isp)
            health = latest_health(session, now, window=window)
            states = server_states(session)
    finally:
        engine.dispose()
    if args.isp is not None:
        isps = tuple(isp for isp in isps if isp.name == args.isp)
        if not isps:
            print(f"vpop: no ISP {args.isp!r}", file=sys.stderr)
            return 2
    report = status_report(isps, buckets, health, states, now=now, minutes=args.minutes)
    print(json.dumps(report, indent=2) if args.json else status_table(report))
    return 0


def status_report(isps: Sequence[Isp], buckets: Sequence[BucketSummary], health,
                  states: Mapping[str, ServerState], *, now: dt.datetime, minutes: int) -> dict:
    """The status as plain data (the JSON output). A server's ``state`` is the proxy's
    (alive, zombie, dead; "-" before any vpop serve has run with it), ``answering``
    whether it gave a valid answer in the latest minute with exchanges."""
    by_server: dict[str, list[BucketSummary]] = {}
    for bucket in buckets:
        by_server.setdefault(bucket.server, []).append(bucket)
    report = {"time": now.isoformat(), "minutes": minutes, "isps": []}
    for isp in isps:
        servers = []
        for server in isp.servers:
            mine = by_server.get(server.name, [])
            summed = total(mine)
            state = states.get(server.name)
            servers.append({
                "name": server.name, "address": server.address, "auth_port": server.auth_port,
                "priority": server.priority, "weight": server.weight,
                "state": state.state if state else "-",
                "since": state.since.isoformat() if state else None,
                "reason": state.reason if state else None,
                "answering": ANSWERING[server_answering(mine)],
                "requests": summed.requests if summed else 0,
                "probes": summed.probes if summed else 0,
                "availability": summed.availability if summed else None,
                "success_rate": summed.success_rate if summed else None,
                "loss": summed.loss if summed else None,
                **{f"{name}_ms": summed.response_ms(q) if summed else None
                   for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
                "rtt_p50_ms": summed.rtt_ms(0.5) if summed else None,
            })
        measured = health.get(isp.name)
        report["isps"].append({
            "name": isp.name, "mode": isp.mode, "status": isp.status,
            "available": measured.available if measured else None, "servers": servers})
    return report


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _since(value: str | None) -> str:
    """An ISO time as 2026-12-05T08:41:07Z (seconds, UTC)."""
    if value is None:
        return "-"
    when = dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def status_table(report: dict) -> str:
    header = ("ISP", "MODE", "STATUS", "SERVER", "STATE", "SINCE", "AVAIL", "SUCCESS",
              "P50 MS", "P99 MS", "REQUESTS")
    lines = [header]
    for isp in report["isps"]:
        first = (isp["name"], isp["mode"], isp["status"])
        if not isp["servers"]:
            lines.append((*first, "-", "", "", "", "", "", "", ""))
        for index, server in enumerate(isp["servers"]):
            lines.append((*(first if index == 0 else ("", "", "")), server["name"],
                          server["state"], _since(server["since"]),
                          _percent(server["availability"]),
                          _percent(server["success_rate"]), _ms(server["p50_ms"]),
                          _ms(server["p99_ms"]), str(server["requests"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"over the last {report['minutes']} minutes, to {report['time']}"]
    out += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    return "\n".join(out)
