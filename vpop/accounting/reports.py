"""Reports from the rollups, without I/O: rows, then a table, CSV or JSON.

The store hands over rollup rows (never raw accounting); these functions turn them
into report rows. Times are seconds since the epoch in, ISO 8601 UTC out.

* utilization: per lease and bucket, sessions online (average from session seconds,
  peak from the lease's gauge) against the sessions leased, traffic (average, and the
  busiest 5 minutes) against the leased rate, volume, and the events going on;
* sessions: per bucket and ISP, lease or NAS, sessions started and stopped, average
  online, peak online where it is exact, hours, octets, records and flagged records.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vpop.accounting.leases import LeaseTerms
from vpop.accounting.rollups import FIVE_MINUTES, bucket, bucket_end
from vpop.accounting.utilization import KINDS, UNITS
from vpop.errors import ConfigError
from vpop.logs import printable

FORMATS = ("table", "csv", "json")
GROUPS = ("isp", "lease", "nas")


def iso(t: int | None) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, option: str) -> int:
    """A date (2026-03-01) or date and time (2026-03-01T10:00, UTC unless an offset is
    given) as seconds since the epoch; ConfigError naming `option` otherwise."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: use a date (2026-03-01) or a date and time "
                          "(2026-03-01T10:00, UTC unless an offset is given)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def buckets(start: int, end: int, grain: str) -> list[int]:
    """Bucket starts of `grain` from the one holding `start` up to before `end`."""
    found, b = [], bucket(start, grain)
    while b < end:
        found.append(b)
        b = bucket_end(b, grain)
    return found


def default_grain(start: int, end: int) -> str:
    return "hour" if end - start <= 7 * 86_400 else "day"


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    isp: str | None = None
    lease: str | None = None  # lease name
    nas: str | None = None
    start: int
    end: int  # exclusive
    grain: str = "hour"


def select_leases(leases: Iterable[LeaseTerms], filters: Filters) -> list[LeaseTerms]:
    """The leases a utilization report covers: by ISP, name and NAS, active in the period."""
    chosen = []
    for lease in leases:
        if filters.isp is not None and lease.isp != filters.isp:
            continue
        if filters.lease is not None and lease.name != filters.lease:
            continue
        if filters.nas is not None and filters.nas not in lease.nas | {p.nas for p in lease.ports}:
            continue
        if lease.starts >= filters.end or (lease.ends is not None and lease.ends <= filters.start):
            continue
        chosen.append(lease)
    return sorted(chosen, key=lambda lease: (lease.isp, lease.name))


def _ratio(part: float, whole: int | None) -> float | None:
    return None if not whole else round(100.0 * part / whole, 1)


def _mbps(octets: int, seconds: int) -> float:
    return round(octets * 8 / seconds / 1e6, 3) if seconds else 0.0


def levels_through(peaks: Mapping[int, tuple[int, int]], carry: int, starts: Sequence[int]
                   ) -> dict[int, int]:
    """Peak level per bucket: a bucket without a change keeps the level it began with (a
    stored peak already counts the level its bucket began with)."""
    out, level = {}, carry
    for b in starts:
        seen = peaks.get(b)
        if seen is None:
            out[b] = level
        else:
            out[b] = seen[0]
            level = seen[1]
    return out


UTILIZATION_COLUMNS = (
    "bucket", "isp", "lease", "sessions_leased", "session_seconds", "sessions_avg",
    "sessions_peak", "ports_avg_pct", "ports_peak_pct", "mbps_leased", "mbps_avg", "mbps_peak",
    "octets", "events")
EXACT = 6  # decimals of averages: session seconds / bucket length, exact to 1e-6


def utilization_rows(leases: Sequence[LeaseTerms], filters: Filters, *,
                     seconds: Mapping[tuple[int, int], int],
                     peaks: Mapping[int, Mapping[int, tuple[int, int]]],
                     carry: Mapping[int, int],
                     traffic: Mapping[tuple[int, int], tuple[int, int]],
                     events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per lease and bucket of the period.

    seconds: (lease id, bucket) -> session seconds from the rollups;
    peaks: lease id -> bucket -> (peak, last level) of its gauge; carry: lease id ->
    level before the period; traffic: (lease id, bucket) -> (octets, busiest 5 minutes);
    events: utilization events overlapping the period.
    """
    starts = buckets(filters.start, filters.end, filters.grain)
    going: dict[tuple[int, int], set[str]] = {}  # (lease, bucket) -> kinds of events
    index = {b: n for n, b in enumerate(starts)}
    for e in events:
        first = index.get(bucket(max(e["start"], starts[0]), filters.grain), 0) if starts else 0
        for b in starts[first:]:
            if e["end"] is not None and e["end"] <= b:
                break
            if e["start"] < bucket_end(b, filters.grain):
                going.setdefault((e["lease_id"], b), set()).add(e["kind"])
    rows = []
    for lease in leases:
        peak_by_bucket = levels_through(peaks.get(lease.id, {}), carry.get(lease.id, 0), starts)
        for b in starts:
            length = bucket_end(b, filters.grain) - b
            session_seconds = seconds.get((lease.id, b), 0)
            octets, busiest = traffic.get((lease.id, b), (0, 0))
            average = session_seconds / length
            peak = peak_by_bucket[b]
            going_on = sorted(going.get((lease.id, b), ()), key=KINDS.index)
            rows.append({
                "bucket": iso(b), "isp": lease.isp, "lease": lease.name,
                "sessions_leased": lease.sessions, "session_seconds": session_seconds,
                "sessions_avg": round(average, EXACT),
                "sessions_peak": peak, "ports_avg_pct": _ratio(average, lease.sessions),
                "ports_peak_pct": _ratio(peak, lease.sessions),
                "mbps_leased": (None if lease.bandwidth_kbps is None
                                else round(lease.bandwidth_kbps / 1000, 3)),
                "mbps_avg": _mbps(octets, length), "mbps_peak": _mbps(busiest, FIVE_MINUTES),
                "octets": octets, "events": " ".join(going_on)})
    return rows


EVENT_COLUMNS = ("isp", "lease", "kind", "start", "end", "seconds", "peak", "limit", "unit",
                 "recorded")


def event_rows(leases: Mapping[int, LeaseTerms], events: Sequence[Mapping[str, Any]],
               now: int) -> list[dict[str, Any]]:
    rows = []
    for e in sorted(events, key=lambda e: (e["start"], e["lease_id"], e["kind"])):
        lease = leases.get(e["lease_id"])
        end = e["end"]
        rows.append({"isp": e["isp"], "lease": lease.name if lease else str(e["lease_id"]),
                     "kind": e["kind"], "start": iso(e["start"]), "end": iso(end),
                     "seconds": (end if end is not None else now) - e["start"],
                     "peak": e["peak"], "limit": e["limit"], "unit": UNITS[e["kind"]],
                     "recorded": iso(e.get("recorded"))})
    return rows


SESSION_COLUMNS = ("bucket", "group", "starts", "stops", "online_avg", "online_peak",
                   "session_seconds", "hours", "input_octets", "output_octets", "records",
                   "flagged")


def session_rows(filters: Filters, by: str, sums: Iterable[Sequence[Any]], *,
                 names: Mapping[Any, str] | None = None,
                 peaks: Mapping[str, Mapping[int, tuple[int, int]]] | None = None,
                 carry: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """sums: (bucket, group, starts, stops, session seconds, input octets, output octets,
    records, flagged). peaks and carry (by group, as the gauge's key) are given only when
    the gauge is exactly the group (no other filter narrows it); else online_peak is None."""
    names = names or {}
    starts = buckets(filters.start, filters.end, filters.grain)
    grouped: dict[tuple[int, Any], Sequence[Any]] = {(s[0], s[1]): s for s in sums}
    levels = {}
    if peaks is not None:
        for key in {g for _, g in grouped if str(g) in peaks or str(g) in (carry or {})}:
            levels[key] = levels_through(peaks.get(str(key), {}), (carry or {}).get(str(key), 0),
                                         starts)
    rows = []
    for (b, group), s in sorted(grouped.items(), key=lambda item: (
            item[0][0], names.get(item[0][1], str(item[0][1])))):
        length = bucket_end(b, filters.grain) - b
        rows.append({
            "bucket": iso(b), "group": names.get(group, group if group != "" else "(local)"),
            "starts": s[2], "stops": s[3], "online_avg": round(s[4] / length, EXACT),
            "online_peak": levels[group][b] if group in levels and b in levels[group] else None,
            "session_seconds": s[4], "hours": round(s[4] / 3600, EXACT),
            "input_octets": s[5], "output_octets": s[6],
            "records": s[7], "flagged": s[8]})
    return rows


ONLINE_COLUMNS = ("username", "isp", "route_mode", "nas", "port", "caller", "framed_ip",
                  "start", "last_update", "seconds", "input_octets", "output_octets", "flags")


# --- output -------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return printable(str(value))


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> str:
    """Rows as a table, CSV or JSON; text as vpop.logs.printable shows it (JSON escapes
    it itself: json.dumps writes ASCII only)."""
    if fmt == "json":
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        return out.getvalue()
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(_numeric(row.get(c)) for row in rows) for c in columns]
    lines = ["  ".join(c.rjust(w) if n else c.ljust(w)
                       for c, w, n in zip(columns, widths, numeric)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(v.rjust(w) if n else v.ljust(w)
                               for v, w, n in zip(r, widths, numeric)).rstrip())
    if not rows:
        lines.append("(no rows)")
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> Any:
    # Names a NAS sent (user names in --online) may hold control characters: escaped as
    # in the request log, so the CSV stays one record a line for a terminal or grep.
    if value is None:
        return ""
    return printable(value) if isinstance(value, str) else value


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def time_slices(start: int, end: int, grain: str) -> list[tuple[int, int]]:
    """The period in slices of whole buckets (a day; 31 days for daily buckets), so a long
    report reads the rollups piece by piece and can show its progress."""
    size = 31 * 86_400 if grain == "day" else 86_400
    slices, b = [], bucket(start, grain)
    while b < end:
        slices.append((b, min(b + size, end)))
        b += size
    return slices
