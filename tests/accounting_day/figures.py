"""The figures a day of accounting must give, computed from its packets alone.

This is the specification of vpop's accounting figures (docs/accounting.md), written
a second time without vpop's code: it imports nothing from vpop, so a mistake in one
shows up as a difference from the other.

* Event time t = Event-Timestamp - Acct-Delay-Time. A session is (NAS-IP-Address,
  Acct-Session-Id, User-Name); THRESHOLD = stale_intervals 3 x interim_interval 300.
* A session is online over [start, end): start is its Start's event time; end its
  Stop's. Without a Stop, with L its last record's event time: the first
  Accounting-On/Off of its NAS at T >= L ends it at T if T <= L + THRESHOLD; else, if
  the NAS's clock passed L + THRESHOLD (or such a T came later), it was stale and ended
  at L; else it is still open. A NAS's clock is its newest event time, or the newest of
  all once the NAS has been silent for more than THRESHOLD.
* Per 5-minute bucket: starts (bucket of start), stops (bucket of end, for ended
  sessions), session seconds (the overlap with [start, end), [start, L) while open),
  octets (each increase between consecutive records spread over the time between them
  in proportion, floor of the running share, so the pieces add up), and the peak:
  the most sessions online in any second of the bucket.
* A session counts against a lease: by its Class's ISP, else its realm's ISP, the
  lease of that ISP covering its NAS (a port range before a whole NAS) active at its
  start; with neither, the lease covering its NAS and port, whatever its ISP.
* Utilization events per lease: over_sessions while more sessions are online than
  leased; under_sessions while fewer than ceil(sessions x under_percent / 100), within
  the lease's period and not before the bucket of the first record, kept when it
  lasted under_window.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

FIVE_MINUTES = 300
DAY = 86_400
THRESHOLD = 900  # seconds: stale_intervals 3 x interim_interval 300, vpop's defaults
WRAP = 1 << 32  # a 32-bit octet counter without Gigawords wraps here
NO_LEASE = "(no lease)"  # the report's group for sessions that count against no lease
FIELDS = ("starts", "stops", "session_seconds", "input_octets", "output_octets", "online_peak")
OPEN = math.inf  # the end of a session still open: online through the end of the data

Pairs = Sequence[tuple[str, object]]


# --- what is imported: ISPs and leases ------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Isp:
    name: str
    realms: tuple[str, ...] = ()  # suffixes, "@north.example"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortRange:
    nas: str
    first: int
    last: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    name: str
    isp: str
    nas: tuple[str, ...] = ()  # whole NASes
    ports: tuple[PortRange, ...] = ()
    sessions: int
    under_percent: int = 0
    under_window: int = 3600
    starts: int  # seconds since the epoch
    ends: int | None = None  # exclusive

    def covers(self, nas: str, port: int | None) -> int:
        """2: a port range holds the port; 1: the whole NAS; 0: neither."""
        if port is not None and any(r.nas == nas and r.first <= port <= r.last
                                    for r in self.ports):
            return 2
        return 1 if nas in self.nas else 0

    def active(self, t: int) -> bool:
        return self.starts <= t and (self.ends is None or t < self.ends)

    @property
    def under_level(self) -> int:
        """Fewer sessions online than this is under-use."""
        return math.ceil(self.sessions * self.under_percent / 100)


# --- records and sessions -------------------------------------------------------------

STATUS_RANK = {"Start": 0, "Interim-Update": 1, "Stop": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    status: str
    nas: str
    time: int  # event time
    session_id: str | None = None
    user: str | None = None
    port: int | None = None
    routed_isp: str | None = None  # from the routing Class
    session_time: int = 0
    input: int | None = None  # 64-bit with Gigawords, else the 32-bit counter as sent
    output: int | None = None
    gigawords: bool = False


def parse(pairs: Pairs) -> Record:
    """One Accounting-Request's attributes (name, value) as the test sends them."""
    attrs: dict[str, object] = {}
    for name, value in pairs:
        attrs.setdefault(name, value)
    gigawords = "Acct-Input-Gigawords" in attrs or "Acct-Output-Gigawords" in attrs

    def counter(kind: str) -> int | None:
        octets = attrs.get(f"Acct-{kind}-Octets")
        if octets is None:
            return None
        return (int(attrs.get(f"Acct-{kind}-Gigawords", 0)) << 32) + int(octets)

    port = attrs.get("NAS-Port")
    return Record(
        status=str(attrs["Acct-Status-Type"]), nas=str(attrs["NAS-IP-Address"]),
        time=int(attrs["Event-Timestamp"]) - int(attrs.get("Acct-Delay-Time", 0)),
        session_id=attrs.get("Acct-Session-Id"), user=attrs.get("User-Name"),
        port=None if port is None else int(port), routed_isp=routed_isp(attrs.get("Class")),
        session_time=int(attrs.get("Acct-Session-Time", 0)),
        input=counter("Input"), output=counter("Output"), gigawords=gigawords)


def routed_isp(value: object) -> str | None:
    """The ISP of a routing Class `vpop1;isp=<isp>;mode=...;reason=...` (RFC 2865 §5.25)."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    if not text.startswith("vpop1;"):
        return None
    fields = dict(part.partition("=")[::2] for part in text.split(";")[1:])
    return fields.get("isp") or None


@dataclass(slots=True, kw_only=True)
class Session:
    nas: str
    session_id: str
    user: str
    port: int | None
    records: list[Record]  # in event order
    start: int = 0
    last: int = 0  # L: the last record's event time
    end: float = OPEN  # OPEN while still open
    ended_by: str = "open"  # stop | nas-reboot | stale | open
    lease: str = NO_LEASE
    input: list[int] = field(default_factory=list)  # unwrapped counters, per record
    output: list[int] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.nas, self.session_id, self.user)


def unwrapped(records: Sequence[Record], kind: str) -> list[int]:
    """Each record's counter as 64 bits: with Gigawords as sent; without, a 32-bit counter
    that went down wrapped (2^32 added for each time)."""
    values, wraps, last_raw = [], 0, 0
    for r in records:
        raw = getattr(r, kind)
        if raw is None:  # a Start: counters begin at 0
            values.append(values[-1] if values else 0)
            continue
        if r.gigawords:
            values.append(raw)
            continue
        if raw < last_raw:
            wraps += 1
        last_raw = raw
        values.append(wraps * WRAP + raw)
    return values


def sessions_of(records: Iterable[Pairs], *, threshold: int = THRESHOLD
                ) -> tuple[list[Session], int, int]:
    """The sessions, with how and when each ended; the overall clock and the first
    record's event time."""
    parsed = [parse(pairs) for pairs in dict.fromkeys(tuple(p) for p in records)]
    if not parsed:
        return [], 0, 0
    clock = max(r.time for r in parsed)
    first = min(r.time for r in parsed)
    newest: dict[str, int] = defaultdict(int)
    reboots: dict[str, list[int]] = defaultdict(list)
    grouped: dict[tuple, list[Record]] = defaultdict(list)
    for r in parsed:
        newest[r.nas] = max(newest[r.nas], r.time)
        if r.status in ("Accounting-On", "Accounting-Off"):
            reboots[r.nas].append(r.time)
        elif r.status in STATUS_RANK:
            grouped[(r.nas, r.session_id, r.user)].append(r)
    for times in reboots.values():
        times.sort()
    found = []
    for (nas, sid, user), rs in grouped.items():
        rs.sort(key=lambda r: (r.time, r.session_time, STATUS_RANK[r.status]))
        starts = [r for r in rs if r.status == "Start"]
        if not starts:
            raise ValueError(f"session {(nas, sid, user)} has no Start: not specified")
        s = Session(nas=nas, session_id=sid, user=user, port=starts[0].port, records=rs,
                    start=starts[0].time, last=rs[-1].time)
        s.input, s.output = unwrapped(rs, "input"), unwrapped(rs, "output")
        stops = [r for r in rs if r.status == "Stop"]
        nas_clock = clock if clock - newest[nas] > threshold else newest[nas]
        times = reboots.get(nas, [])
        after = times[bisect.bisect_left(times, s.last):]
        if stops:
            s.end, s.ended_by = stops[0].time, "stop"
        elif after and after[0] <= s.last + threshold:
            s.end, s.ended_by = after[0], "nas-reboot"
        elif after or nas_clock > s.last + threshold:
            s.end, s.ended_by = s.last, "stale"
        found.append(s)
    found.sort(key=lambda s: (s.start, s.key))
    return found, clock, first


def attribute(sessions: Iterable[Session], isps: Sequence[Isp], leases: Sequence[Lease]
              ) -> None:
    """Set each session's lease: by Class, else realm, else NAS and port."""
    realms = {realm.lower(): isp.name for isp in isps for realm in isp.realms}
    for s in sessions:
        isp = s.records[0].routed_isp
        for r in s.records:  # the NAS echoes the Class on every record
            isp = isp or r.routed_isp
        if isp is None and "@" in s.user:
            isp = realms.get("@" + s.user.rsplit("@", 1)[1].lower())
        candidates = [(lease.covers(s.nas, s.port), lease) for lease in leases
                      if lease.active(s.start) and (isp is None or lease.isp == isp)]
        candidates = [(rank, lease) for rank, lease in candidates if rank]
        if candidates:
            best = max(rank for rank, _ in candidates)
            chosen = [lease for rank, lease in candidates if rank == best]
            if len(chosen) > 1:
                raise ValueError(f"session {s.key} is covered by {len(chosen)} leases alike: "
                                 "not specified")
            s.lease = chosen[0].name


# --- 5-minute pieces ------------------------------------------------------------------

def bucket(t: float, grain: int = FIVE_MINUTES) -> int:
    return int(t - t % grain)


def spread(delta: int, ta: int, tb: int) -> dict[int, int]:
    """An increase between records at ta and tb over [ta, tb), by 5-minute bucket: the
    share up to boundary x is floor(delta (x - ta) / (tb - ta)); all of it in tb's
    bucket when ta == tb."""
    if tb == ta:
        return {bucket(tb): delta} if delta else {}
    pieces, done, b = {}, 0, bucket(ta)
    while b < tb:
        upto = min(b + FIVE_MINUTES, tb)
        share = delta * (upto - ta) // (tb - ta)
        if share - done:
            pieces[b] = share - done
        done, b = share, b + FIVE_MINUTES
    return pieces


def overlap_seconds(start: int, end: int) -> dict[int, int]:
    """Seconds of [start, end) in each 5-minute bucket."""
    out, b = {}, bucket(start)
    while b < end:
        seconds = min(b + FIVE_MINUTES, end) - max(b, start)
        if seconds > 0:
            out[b] = seconds
        b += FIVE_MINUTES
    return out


def levels(intervals: Iterable[tuple[int, float]]) -> list[tuple[int, int]]:
    """Sessions online as steps: (from this second, this many), in time order, from 0."""
    changes: dict[int, int] = defaultdict(int)
    for start, end in intervals:
        if end <= start:
            continue
        changes[start] += 1
        if end != OPEN:
            changes[int(end)] -= 1
    steps, level = [], 0
    for t in sorted(changes):
        level += changes[t]
        if not steps or steps[-1][1] != level:
            steps.append((t, level))
    return steps


def bucket_peaks(steps: Sequence[tuple[int, int]], upto: int) -> dict[int, int]:
    """The most sessions online in any second of each 5-minute bucket that has any,
    through the bucket of `upto`."""
    peaks: dict[int, int] = {}
    for n, (t, level) in enumerate(steps):
        until = steps[n + 1][0] if n + 1 < len(steps) else max(upto + 1, t + 1)
        if level == 0:
            continue
        b = bucket(t)
        while b < until and b <= upto:
            peaks[b] = max(peaks.get(b, 0), level)
            b += FIVE_MINUTES
    return peaks


# --- the figures ----------------------------------------------------------------------

Row = dict[str, int | None]
Key = tuple[int, str]  # (bucket start, group)


@dataclass(slots=True, kw_only=True)
class Figures:
    sessions: list[Session]
    clock: int  # the newest event time of all
    first: int  # the oldest
    by_nas: dict[Key, Row]  # 5-minute rows
    by_lease: dict[Key, Row]
    events: list[dict[str, object]]
    lease_levels: dict[str, list[tuple[int, int]]]  # steps per lease, for designing days

    def rows(self, by: str, grain: str = "5min") -> dict[tuple[str, str], Row]:
        """Report rows keyed (bucket as ISO 8601 Z, group), for grain 5min or day."""
        rows = self.by_nas if by == "nas" else self.by_lease
        if grain == "5min":
            return {(iso(b), g): dict(r) for (b, g), r in rows.items()}
        assert grain == "day", grain
        out: dict[tuple[str, str], Row] = {}
        for (b, g), r in rows.items():
            total = out.setdefault((iso(bucket(b, DAY)), g), dict.fromkeys(FIELDS, 0))
            for name in FIELDS:
                if name == "online_peak":
                    if r[name] is None or total[name] is None:
                        total[name] = None
                    else:
                        total[name] = max(total[name], r[name])
                else:
                    total[name] += r[name]
        return out


def iso(t: float | None) -> str:
    if t is None or t == OPEN:
        return ""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expected_figures(records: Iterable[Pairs], isps: Sequence[Isp], leases: Sequence[Lease],
                     *, threshold: int = THRESHOLD) -> Figures:
    sessions, clock, first = sessions_of(records, threshold=threshold)
    attribute(sessions, isps, leases)
    by_nas = _rows(sessions, lambda s: s.nas, clock, peaks=True)
    by_lease = _rows(sessions, lambda s: s.lease, clock, peaks=True)
    for (b, group), row in list(by_lease.items()):
        if group == NO_LEASE:  # no gauge is kept for sessions of no lease
            row["online_peak"] = None
            if not any(row.values()):
                del by_lease[(b, group)]
    lease_levels = {lease.name: levels((s.start, s.end) for s in sessions
                                       if s.lease == lease.name) for lease in leases}
    events = []
    for lease in leases:
        events += _events(lease, lease_levels[lease.name], clock=clock,
                          since=max(lease.starts, bucket(first)))
    events.sort(key=lambda e: (e["start"], e["lease"], e["kind"]))
    return Figures(sessions=sessions, clock=clock, first=first, by_nas=by_nas,
                   by_lease=by_lease, events=events, lease_levels=lease_levels)


def _rows(sessions: Sequence[Session], group_of, clock: int, *, peaks: bool
          ) -> dict[Key, Row]:
    rows: dict[Key, Row] = {}

    def row(b: int, group: str) -> Row:
        return rows.setdefault((b, group), dict.fromkeys(FIELDS, 0))

    members: dict[str, list[Session]] = defaultdict(list)
    for s in sessions:
        group = group_of(s)
        members[group].append(s)
        row(bucket(s.start), group)["starts"] += 1
        if s.end != OPEN:
            row(bucket(s.end), group)["stops"] += 1
        online_until = s.last if s.end == OPEN else int(s.end)
        for b, seconds in overlap_seconds(s.start, online_until).items():
            row(b, group)["session_seconds"] += seconds
        times = [r.time for r in s.records]
        for kind, values in (("input_octets", s.input), ("output_octets", s.output)):
            for n in range(1, len(times)):
                delta = values[n] - values[n - 1]
                if delta < 0:
                    raise ValueError(f"session {s.key}: {kind} went down: not specified")
                for b, piece in spread(delta, times[n - 1], times[n]).items():
                    row(b, group)[kind] += piece
    if peaks:
        for group, found in members.items():
            steps = levels((s.start, s.end) for s in found)
            for b, peak in bucket_peaks(steps, bucket(clock)).items():
                row(b, group)["online_peak"] = peak
    return rows


def _events(lease: Lease, steps: Sequence[tuple[int, int]], *, clock: int, since: int
            ) -> list[dict[str, object]]:
    """over_sessions and under_sessions of one lease from its steps of sessions online."""
    pieces = []  # (from, until or OPEN, level): the steps, with the zero before them
    previous = (-math.inf, 0)
    for t, level in steps:
        pieces.append((previous[0], t, previous[1]))
        previous = (t, level)
    pieces.append((previous[0], OPEN, previous[1]))
    found = []
    for kind, inside in (("over_sessions", lambda level: level > lease.sessions),
                         ("under_sessions", lambda level: level < lease.under_level)):
        lower = since if kind == "under_sessions" else -math.inf
        upper = lease.ends if (kind == "under_sessions" and lease.ends is not None) else OPEN
        current = None
        for start, until, level in pieces:
            start, until = max(start, lower), min(until, upper)
            if until <= start:
                continue
            if inside(level):
                if current is None:
                    current = {"start": start, "end": until, "peak": level}
                else:
                    current["end"] = until
                    current["peak"] = (max if kind == "over_sessions" else min)(
                        current["peak"], level)
            elif current is not None:
                found.append((kind, current))
                current = None
        if current is not None:
            found.append((kind, current))
    events = []
    for kind, e in found:
        going_on = e["end"] == OPEN
        if kind == "under_sessions":
            lasted = (clock if going_on else e["end"]) - e["start"]
            if lasted < lease.under_window:
                continue
        events.append({"isp": lease.isp, "lease": lease.name, "kind": kind,
                       "start": iso(e["start"]), "end": iso(e["end"]), "peak": e["peak"]})
    return events


def under_intervals(lease: Lease, figures: Figures) -> list[tuple[int, float, int]]:
    """Every stretch of under-use of a lease, however short: (start, end or OPEN, lowest).
    For checking that a day's design keeps them clear of the window."""
    steps = figures.lease_levels[lease.name]
    wide = Lease(**{**{f: getattr(lease, f) for f in Lease.__dataclass_fields__},
                    "under_window": 0})
    events = _events(wide, steps, clock=figures.clock,
                     since=max(lease.starts, bucket(figures.first)))
    return [(_epoch(e["start"]), _epoch(e["end"]) if e["end"] else OPEN, e["peak"])
            for e in events if e["kind"] == "under_sessions"]


def _epoch(text: str) -> int:
    return int(dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=dt.timezone.utc).timestamp())


# --- comparing with a report ----------------------------------------------------------

def differences(expected: Mapping[tuple[str, str], Row], actual: Mapping[tuple[str, str], Row],
                fields: Sequence[str] = FIELDS, *, shown: int = 5,
                names: tuple[str, str] = ("expected", "reported")) -> list[str]:
    """A short account of where report rows differ from the expected ones: how many
    rows differ in each field, then the first few rows. A row missing on one side counts
    as all zeros; a field None on the expected side is not compared."""
    by_field: dict[str, int] = defaultdict(int)
    lines = []
    keys = sorted(set(expected) | set(actual))
    for key in keys:
        zero = {f: None if (f, key[1]) == ("online_peak", NO_LEASE) else 0 for f in fields}
        want, got = expected.get(key, zero), actual.get(key, zero)
        wrong = [f for f in fields if want.get(f) is not None and want.get(f) != got.get(f)]
        for f in wrong:
            by_field[f] += 1
        if wrong and len(lines) < shown:
            lines.append(f"  {key[0]} {key[1]}: " + ", ".join(
                f"{f} {want.get(f)} {names[0]}, {got.get(f, 'absent')} {names[1]}"
                for f in wrong))
    if not by_field:
        return []
    summary = ", ".join(f"{f} in {n}" for f, n in by_field.items())
    return [f"{len(keys)} rows; they differ: {summary}; first rows that differ:"] + lines


def event_differences(expected: Sequence[Mapping[str, object]],
                      actual: Sequence[Mapping[str, object]], *, shown: int = 5,
                      names: tuple[str, str] = ("expected", "reported")) -> list[str]:
    """Events expected and not reported, and reported and not expected (first few)."""
    keys = ("lease", "kind", "start", "end", "peak", "isp")

    def line(e: Mapping[str, object]) -> str:
        return "  " + " ".join(f"{k}={e.get(k)!r}" for k in keys)

    want = [tuple(e.get(k) for k in keys) for e in expected]
    got = [tuple(e.get(k) for k in keys) for e in actual]
    missing = [e for e, k in zip(expected, want) if k not in got]
    extra = [e for e, k in zip(actual, got) if k not in want]
    if not missing and not extra:
        return []
    want_name, got_name = names
    out = [f"{len(expected)} events {want_name}, {len(actual)} {got_name}"]
    if missing:
        out += [f"{len(missing)} {want_name}, not {got_name}:"] + [
            line(e) for e in missing[:shown]]
    if extra:
        out += [f"{len(extra)} {got_name}, not {want_name}:"] + [line(e) for e in extra[:shown]]
    return out
