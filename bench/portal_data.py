"""A large accounting data set written straight into the tables, for bench/portal_pages.py.

What the ledger would hold after --days days of sessions on --nas NASes for --isps ISPs
(each leasing its share of the NASes; a tenth of the NASes unleased, for sessions routed
locally), with a Start, an Interim-Update every 5 minutes and a Stop per session, busier
in the afternoon than at night, the newest sessions still online: the sessions
(radacct), every record (acct_record), routing records, the rollups per 5 minutes, hour
and day (acct_rollup, lease_rollup), the sessions-online gauges second by second with
their peaks (acct_gauge_second, acct_peak, acct_gauge), the NASes' clocks and the
leases' utilization events, derived with the same pure functions the ledger uses
(vpop.accounting.rollups, vpop.accounting.utilization). The NAS clients, ISPs, profile,
a few subscribers and the leases are provisioned as `vpop import` does.

Rows go in with executemany (SQLite) or COPY (PostgreSQL) in large chunks: 10 million
records load in a few minutes instead of the ledger's twenty.
"""

from __future__ import annotations

import io
import math
import random
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass

from vpop.accounting.leases import LeaseTerms
from vpop.accounting.rollups import GRAINS, bucket, bucket_peaks, month_start, next_month
from vpop.accounting.utilization import (OVER_SESSIONS, UNDER_SESSIONS, bandwidth_events,
                                         session_events, volume_event)
from vpop.config import IdentificationSettings

T0 = 1_772_323_200  # 2026-03-01T00:00:00Z
INTERVAL = 300
RECORDS_PER_SESSION = 25  # of the average session: 30 minutes to 3.5 hours
MEAN_RATE = 20_000  # octets a second in, of the average session
CHUNK = 100_000


def nas_address(n: int) -> str:
    return f"10.0.{n // 250}.{n % 250 + 1}"


def isp_name(k: int) -> str:
    return f"isp-{k:02d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    records: int
    days: int = 30
    nas: int = 200
    isps: int = 20
    subscribers: int = 2000
    seed: int = 1

    @property
    def now(self) -> int:
        return T0 + self.days * 86_400

    @property
    def leased_nas(self) -> int:
        return self.nas - max(1, self.nas // 10)

    def lease_nas(self, k: int) -> list[int]:
        return list(range(k, self.leased_nas, self.isps))

    def per_lease_online(self) -> float:
        """Sessions online on a lease on average."""
        sessions = self.records / RECORDS_PER_SESSION
        return max(0.2, sessions * 7200 / (self.days * 86_400) * 0.9 / self.isps)


def provisioning_toml(shape: Shape) -> str:
    """NAS clients, ISPs, a profile, subscribers and leases sized to the load."""
    out = io.StringIO()
    for n in range(shape.nas):
        out.write(f'[[nas]]\nname = "nas-{n:03d}"\naddress = "{nas_address(n)}"\n'
                  f'secret = "bench-secret-{n}"\n\n')
    for k in range(shape.isps):
        out.write(f'[[isp]]\nname = "{isp_name(k)}"\nmode = "proxy"\n'
                  f'realms = ["@{isp_name(k)}.example"]\n'
                  f'servers = [{{ name = "{isp_name(k)}/1", address = "192.0.2.{k + 1}", '
                  f'secret = "upstream-{k}" }}]\nprice_per_minute = "0.01"\n\n')
    out.write('[[profile]]\nname = "bench"\nrate_down_kbps = 10000\n\n')
    for u in range(shape.subscribers):
        out.write(f'[[subscriber]]\nusername = "user{u:06d}"\nprofile = "bench"\n'
                  f'password_hash = "pbkdf2-sha256$1$c2FsdA==$aGFzaA=="\n\n')
    online = shape.per_lease_online()
    sessions = max(1, round(online * 1.3))
    kbps = max(1, round(online * MEAN_RATE * 1.125 * 8 / 1000 * 1.2))
    volume_gb = max(1, round(online * MEAN_RATE * 1.125 * 31 * 86_400 * 0.9 / 1e9))
    for k in range(shape.isps):
        nas = ", ".join(f'"{nas_address(n)}"' for n in shape.lease_nas(k))
        out.write(f'[[lease]]\nname = "lease-{k:02d}"\nisp = "{isp_name(k)}"\nnas = [{nas}]\n'
                  f'sessions = {sessions}\nbandwidth_mbps = {kbps / 1000}\n'
                  f'volume_gb = {volume_gb}\nstarts = 2026-02-01\nprice = 1000.00\n'
                  f'under_percent = 60\nunder_window = 3600\n\n')
    return out.getvalue()


def provision(sessionmaker, shape: Shape) -> None:
    from vpop import provisioning
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        f.write(provisioning_toml(shape))
        f.flush()
        with sessionmaker() as session:
            provisioning.import_file(session, f.name, iterations=1, env={},
                                     identification=IdentificationSettings(country_code="49"))
            session.commit()


@dataclass(slots=True)
class Session_:
    ident: int
    start: int
    duration: int
    isp: int | None
    nas: int
    rate: int
    user: int


def sessions(shape: Shape, rng: random.Random):
    """Sessions in start order, about shape.records records in all; more start in the
    afternoon than at night."""
    span = shape.days * 86_400
    count = max(1, shape.records // RECORDS_PER_SESSION)
    starts = []
    while len(starts) < count:
        t = rng.randrange(span)
        hour = (t % 86_400) / 3600
        if rng.random() < 0.55 + 0.45 * math.sin(2 * math.pi * (hour - 10) / 24):
            starts.append(T0 + t)
    starts.sort()
    for ident, start in enumerate(starts, 1):
        duration = rng.randrange(1800, 12_600)
        if rng.random() < 0.1:
            isp, nas = None, shape.leased_nas + rng.randrange(shape.nas - shape.leased_nas)
        else:
            isp = rng.randrange(shape.isps)
            nas = rng.choice(shape.lease_nas(isp))
        s = Session_(ident=ident, start=start, duration=duration, isp=isp, nas=nas,
                     rate=rng.randrange(1, 2 * MEAN_RATE), user=rng.randrange(shape.subscribers * 5))
        yield s


def steps(s: Session_, now: int) -> list[tuple[int, str, int]]:
    """(event time, status, session time) of the session's records up to `now`."""
    end = s.start + s.duration
    out = [(s.start, "start", 0)]
    out += [(s.start + k, "interim", k)
            for k in range(INTERVAL, min(s.duration, now - s.start + 1), INTERVAL)]
    if end <= now:
        out.append((end, "stop", s.duration))
    return out


class Stamps:
    """Timestamps as the database's text form for bulk loading, memoised."""

    def __init__(self, dialect: str):
        self.suffix = ".000000" if dialect == "sqlite" else "+00"
        self._seen: dict[int, str] = {}

    def __call__(self, t: int | None) -> str | None:
        if t is None:
            return None
        text = self._seen.get(t)
        if text is None:
            text = self._seen[t] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + self.suffix
        return text


class Loader:
    """Rows into a table in chunks: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, connection):
        self.raw = connection.connection.dbapi_connection
        self.dialect = connection.dialect.name
        self.rows = 0

    def load(self, table: str, columns: tuple[str, ...], rows) -> int:
        batch, count = [], 0
        for row in rows:
            batch.append(row)
            if len(batch) >= CHUNK:
                self._write(table, columns, batch)
                count += len(batch)
                batch = []
        if batch:
            self._write(table, columns, batch)
            count += len(batch)
        self.rows += count
        return count

    def _write(self, table, columns, batch) -> None:
        cursor = self.raw.cursor()
        names = ", ".join(f'"{c}"' for c in columns)
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
        else:
            buffer = io.StringIO()
            for row in batch:
                buffer.write("\t".join(_copy_text(v) for v in row))
                buffer.write("\n")
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN", buffer)
        cursor.close()


def _copy_text(value) -> str:
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


RADACCT = ("id", "unique_id", "acct_session_id", "username", "nas_address", "nas_port",
           "calling_station_id", "framed_ip", "isp", "route_mode", "route_reason", "lease_id",
           "start_time", "update_time", "stop_time", "session_time", "input_octets",
           "output_octets", "input_packets", "output_packets", "terminate_cause", "status",
           "closed_by", "flags")
RECORD = ("radacct_id", "content_key", "status", "nas_address", "event_time", "arrival",
          "delay", "session_time", "input_octets", "output_octets", "input_packets",
          "output_packets", "terminate_cause", "flags")
ROUTING = ("radacct_id", "username", "isp", "route_mode", "route_reason", "nas_address",
           "lease_id", "start_time", "stop_time", "session_time", "input_octets",
           "output_octets", "closed_by")
ROLLUP = ("grain", "bucket", "isp", "lease_id", "nas", "starts", "stops", "session_seconds",
          "input_octets", "output_octets", "records", "flagged")


class Totals:
    """What the sessions add to the rollups, gauges and leases' traffic."""

    def __init__(self) -> None:
        self.cells: dict[tuple, list[int]] = defaultdict(lambda: [0] * 7)  # 5-minute cells
        self.changes: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.lease_octets: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, s: Session_, isp: str, lease_id: int, nas: str, records, now: int) -> None:
        cell = (isp, lease_id, nas)
        last = records[-1][0]
        closed = records[-1][1] == "stop"
        self.cells[(bucket(s.start, "5min"), *cell)][0] += 1
        if closed:
            self.cells[(bucket(last, "5min"), *cell)][1] += 1
        for t, _, _ in records:
            self.cells[(bucket(t, "5min"), *cell)][5] += 1
        # Octets grow linearly with the session's time: a 5-minute piece's share is exact.
        b = bucket(s.start, "5min")
        while b < last:
            lo, hi = max(b, s.start), min(b + 300, last)
            measures = self.cells[(b, *cell)]
            octets_in = (hi - lo) * s.rate
            octets_out = (hi - s.start) * s.rate // 8 - (lo - s.start) * s.rate // 8
            measures[2] += hi - lo
            measures[3] += octets_in
            measures[4] += octets_out
            if lease_id:
                self.lease_octets[lease_id][b] += octets_in + octets_out
            b += 300
        keys = [("nas", nas)] + ([("isp", isp)] if isp else []) + (
            [("lease", str(lease_id))] if lease_id else [])
        for key in keys:
            self.changes[key][s.start] += 1
            if closed:
                self.changes[key][last] -= 1


def generate(engine, sessionmaker, shape: Shape, *, say=print) -> dict[str, int]:
    """Provision, then load the accounting; the number of rows per table."""
    started = time.perf_counter()
    provision(sessionmaker, shape)
    from vpop.store.accounting import load_leases
    with sessionmaker() as session:
        leases = {lease.isp: lease for lease in load_leases(session).by_id.values()}
    rng = random.Random(shape.seed)
    totals = Totals()
    counts: dict[str, int] = {}
    with engine.begin() as connection:
        stamp = Stamps(connection.dialect.name)
        loader = Loader(connection)
        radacct, routing, newest = [], [], {}

        def records():
            for s in sessions(shape, rng):
                isp = isp_name(s.isp) if s.isp is not None else None
                lease = leases[isp].id if isp else 0
                nas = nas_address(s.nas)
                steps_ = steps(s, shape.now)
                totals.add(s, isp or "", lease, nas, steps_, shape.now)
                last, status, elapsed = steps_[-1]
                closed = status == "stop"
                newest[nas] = max(newest.get(nas, 0), last)
                user = f"user{s.user:06d}" + (f"@{isp}.example" if isp else "")
                octets_in, octets_out = elapsed * s.rate, elapsed * s.rate // 8
                mode, reason = ("proxy", "realm") if isp else ("local", "default")
                radacct.append((
                    s.ident, f"{s.ident:032x}", f"{s.ident:08X}", user, nas, str(s.nas % 4000),
                    f"4930{s.user:08d}", f"100.64.{s.ident // 250 % 250}.{s.ident % 250 + 1}",
                    isp, mode, reason, lease or None, stamp(s.start), stamp(last),
                    stamp(last) if closed else None, elapsed, octets_in, octets_out,
                    octets_in // 1000, octets_out // 1000, "User-Request" if closed else None,
                    "closed" if closed else "open", "stop" if closed else None, ""))
                if closed:
                    routing.append((s.ident, user, isp, mode, reason, nas, lease or None,
                                    stamp(s.start), stamp(last), elapsed, octets_in, octets_out,
                                    "stop"))
                for n, (t, kind, seconds) in enumerate(steps_):
                    o_in, o_out = seconds * s.rate, seconds * s.rate // 8
                    yield (s.ident, n + 1, kind, nas, stamp(t), stamp(t), 0, seconds, o_in,
                           o_out, o_in // 1000, o_out // 1000,
                           "User-Request" if kind == "stop" else None, "")

        counts["acct_record"] = loader.load("acct_record", RECORD, records())
        say(f"  acct_record: {counts['acct_record']:,} rows "
            f"({time.perf_counter() - started:.0f} s)")
        counts["radacct"] = loader.load("radacct", RADACCT, radacct)
        counts["routing_record"] = loader.load("routing_record", ROUTING, routing)
        counts["acct_clock"] = loader.load("acct_clock", ("nas", "newest"),
                                           ((n, stamp(t)) for n, t in sorted(newest.items())))
        counts["acct_rollup"] = loader.load("acct_rollup", ROLLUP, _rollup_rows(totals, stamp))
        say(f"  rollups ({time.perf_counter() - started:.0f} s)")
        terms = {lease.id: lease for lease in leases.values()}
        counts["lease_rollup"] = loader.load(
            "lease_rollup", ("lease_id", "grain", "bucket", "octets", "peak_5min_octets"),
            _lease_rows(totals, stamp))
        levels = _gauge_levels(totals)
        counts["acct_gauge_second"] = loader.load(
            "acct_gauge_second", ("kind", "key", "at", "delta", "level"),
            ((k, key, stamp(t), d, level) for (k, key), series in levels.items()
             for t, d, level in series))
        counts["acct_gauge"] = loader.load(
            "acct_gauge", ("kind", "key", "level"),
            ((k, key, series[-1][2] if series else 0) for (k, key), series in levels.items()))
        counts["acct_peak"] = loader.load(
            "acct_peak", ("kind", "key", "grain", "bucket", "peak", "last"),
            _peak_rows(levels, stamp))
        first = min((t for series in levels.values() for t, _, _ in series[:1]), default=T0)
        counts["utilization_event"] = loader.load(
            "utilization_event", ("lease_id", "isp", "kind", "start_time", "end_time", "peak",
                                  "limit_value", "recorded_at"),
            _event_rows(terms, levels, totals, shape.now, bucket(first, "5min"), stamp))
        if connection.dialect.name == "postgresql":
            for table in ("radacct", "acct_record", "routing_record", "utilization_event"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))")
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE")
    say(f"loaded {sum(counts.values()):,} rows in {time.perf_counter() - started:.0f} s")
    return counts


def _rollup_rows(totals: Totals, stamp):
    coarse: dict[tuple, list[int]] = defaultdict(lambda: [0] * 7)
    for (b, *cell), measures in sorted(totals.cells.items()):
        yield ("5min", stamp(b), *cell, *measures)
        for grain in ("hour", "day"):
            into = coarse[(grain, bucket(b, grain), *cell)]
            for n, v in enumerate(measures):
                into[n] += v
    for (grain, b, *cell), measures in sorted(coarse.items()):
        yield (grain, stamp(b), *cell, *measures)


def _lease_rows(totals: Totals, stamp):
    for lease_id, fives in sorted(totals.lease_octets.items()):
        coarse: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for b, octets in sorted(fives.items()):
            yield (lease_id, "5min", stamp(b), octets, octets)
            for grain in ("hour", "day", "month"):
                start = month_start(b) if grain == "month" else bucket(b, grain)
                into = coarse[(grain, start)]
                into[0] += octets
                into[1] = max(into[1], octets)
        for (grain, b), (octets, busiest) in sorted(coarse.items()):
            yield (lease_id, grain, stamp(b), octets, busiest)


def _gauge_levels(totals: Totals) -> dict[tuple[str, str], list[tuple[int, int, int]]]:
    out = {}
    for key, changes in sorted(totals.changes.items()):
        level, series = 0, []
        for t in sorted(changes):
            if changes[t]:
                level += changes[t]
                series.append((t, changes[t], level))
        out[key] = series
    return out


def _peak_rows(levels, stamp):
    for (kind, key), series in levels.items():
        points = [(t, level) for t, _, level in series]
        for grain in GRAINS:
            for b, (peak, last) in sorted(bucket_peaks(0, points, grain).items()):
                yield (kind, key, grain, stamp(b), peak, last)


def _event_rows(terms: dict[int, LeaseTerms], levels, totals: Totals, now: int, epoch: int,
                stamp):
    for lease_id, lease in sorted(terms.items()):
        series = [(t, level) for t, _, level in levels.get(("lease", str(lease_id)), [])]
        found = []
        for kind in (OVER_SESSIONS, UNDER_SESSIONS):
            found += session_events(lease, kind, lease.starts, 0, series, now, epoch)
        fives = sorted(totals.lease_octets.get(lease_id, {}).items())
        found += bandwidth_events(lease, fives, now, 300)
        month = month_start(T0)
        while month < now:
            event = volume_event(lease, month, [(b, n) for b, n in fives
                                                if month <= b < next_month(month)], now)
            if event is not None:
                found.append(event)
            month = next_month(month)
        for e in found:
            yield (e.lease_id, e.isp, e.kind, stamp(e.start), stamp(e.end), e.peak, e.limit,
                   stamp(e.start))
