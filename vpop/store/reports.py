"""Reports from the store, for the `vpop report` command and the portal alike: rollups
only, never the raw accounting, read in slices of whole buckets. The caller owns the
session; rows come from vpop.accounting.reports, ready for render()."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from vpop.accounting import reports
from vpop.accounting import sessions as S
from vpop.accounting.rollups import MEASURES, bucket
from vpop.errors import ConfigError
from vpop.store.accounting import load_leases
from vpop.store.accounting_models import (AcctHistory, AcctPeak, AcctRollup,
                                          LeaseRollup, RadAcct, UtilizationEvent)
from vpop.store.timestamps import seconds, when


class _Silent:
    def step(self, n: int = 1) -> None:
        pass

    def done(self) -> None:
        pass


def utilization(session: Session, filters: reports.Filters, *, events: bool = False,
                now: float, progress=None) -> tuple[list[dict], tuple[str, ...]]:
    """(rows, columns) of `vpop report utilization`: per lease and bucket, or the events
    (`events`). `progress`: made with the number of slices, stepped per slice."""
    leases = reports.select_leases(load_leases(session).by_id.values(), filters)
    if filters.lease is not None and not leases:
        raise ConfigError(f"--lease {filters.lease!r}: no such lease in the period")
    ids = [lease.id for lease in leases]
    if events:
        found = utilization_events(session, ids, filters.start, filters.end)
        return (reports.event_rows({lease.id: lease for lease in leases}, found, int(now)),
                reports.EVENT_COLUMNS)
    slices = reports.time_slices(filters.start, filters.end, filters.grain)
    progress = progress(len(slices)) if progress is not None else _Silent()
    keys = [str(i) for i in ids]
    seconds_, traffic, peaks = {}, {}, {}
    for start, end in slices:
        seconds_.update(lease_seconds(session, ids, filters.grain, start, end))
        traffic.update(lease_traffic(session, ids, filters.grain, start, end))
        for key, found in gauge_peaks(session, "lease", keys, filters.grain, start,
                                      end).items():
            peaks.setdefault(int(key), {}).update(found)
        progress.step()
    carry = {int(k): v for k, v in gauge_carry(session, "lease", keys, filters.grain,
                                                 filters.start).items()}
    going = utilization_events(session, ids, filters.start, filters.end)
    progress.done()
    return (reports.utilization_rows(leases, filters, seconds=seconds_, peaks=peaks,
                                     carry=carry, traffic=traffic, events=going),
            reports.UTILIZATION_COLUMNS)


def sessions(session: Session, filters: reports.Filters, *, by: str, online: bool = False,
             limit: int = 1000, progress=None) -> tuple[list[dict], tuple[str, ...]]:
    """(rows, columns) of `vpop report sessions`: per bucket and ISP, lease or NAS, or the
    sessions online now (`online`)."""
    by_name = {lease.name: lease for lease in load_leases(session).by_id.values()}
    lease_id = None
    if filters.lease is not None:
        if filters.lease not in by_name:
            raise ConfigError(f"--lease {filters.lease!r}: no such lease")
        lease_id = by_name[filters.lease].id
    if online:
        rows = online_sessions(session, isp=filters.isp, lease_id=lease_id, nas=filters.nas,
                               limit=limit)
        for row in rows:
            row["start"] = reports.iso(row["start"])
            row["last_update"] = reports.iso(row["last_update"])
        return rows, reports.ONLINE_COLUMNS
    slices = reports.time_slices(filters.start, filters.end, filters.grain)
    progress = progress(len(slices)) if progress is not None else _Silent()
    sums = []
    for start, end in slices:
        sums += rollup_sums(session, by, filters.grain, start, end, isp=filters.isp,
                            lease_id=lease_id, nas=filters.nas)
        progress.step()
    # A gauge's peak is the group's only when no other filter narrows the group.
    narrowing = {"isp": filters.isp, "lease": lease_id, "nas": filters.nas}
    narrowing.pop(by)
    peaks = carry = None
    if all(v is None for v in narrowing.values()):
        keys = sorted({str(s[1]) for s in sums if s[1] not in ("", 0)})
        peaks = {}
        for start, end in slices:
            for key, found in gauge_peaks(session, by, keys, filters.grain, start,
                                          end).items():
                peaks.setdefault(key, {}).update(found)
        carry = gauge_carry(session, by, keys, filters.grain, filters.start)
    progress.done()
    names = {lease.id: lease.name for lease in by_name.values()} if by == "lease" else {}
    if by == "lease":
        names[0] = "(no lease)"
    return (reports.session_rows(filters, by, sums, names=names, peaks=peaks, carry=carry),
            reports.SESSION_COLUMNS)


# --- queries ------------------------------------------------------------------------------

def _period(table, grain: str, start: int, end: int):
    return (table.c.grain == grain, table.c.bucket >= when(start), table.c.bucket < when(end))


def lease_seconds(session: Session, lease_ids: Sequence[int], grain: str, start: int,
                  end: int) -> dict[tuple[int, int], int]:
    """Session seconds per (lease, bucket)."""
    table = AcctRollup.__table__
    rows = session.execute(
        select(table.c.lease_id, table.c.bucket, func.sum(table.c.session_seconds))
        .where(*_period(table, grain, start, end), table.c.lease_id.in_(list(lease_ids)))
        .group_by(table.c.lease_id, table.c.bucket))
    return {(lease_id, seconds(b)): int(total or 0) for lease_id, b, total in rows}


def lease_traffic(session: Session, lease_ids: Sequence[int], grain: str, start: int,
                  end: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(octets, busiest 5 minutes' octets) per (lease, bucket)."""
    table = LeaseRollup.__table__
    rows = session.execute(
        select(table.c.lease_id, table.c.bucket, table.c.octets, table.c.peak_5min_octets)
        .where(*_period(table, grain, start, end), table.c.lease_id.in_(list(lease_ids))))
    return {(lease_id, seconds(b)): (octets, peak) for lease_id, b, octets, peak in rows}


def gauge_peaks(session: Session, kind: str, keys: Sequence[str] | None, grain: str,
                start: int, end: int) -> dict[str, dict[int, tuple[int, int]]]:
    """Per gauge key and bucket: (peak, level after the bucket's last change)."""
    table = AcctPeak.__table__
    query = select(table.c.key, table.c.bucket, table.c.peak, table.c.last).where(
        table.c.kind == kind, *_period(table, grain, start, end))
    if keys is not None:
        query = query.where(table.c.key.in_(list(keys)))
    found: dict[str, dict[int, tuple[int, int]]] = collections.defaultdict(dict)
    for key, b, peak, last in session.execute(query):
        found[key][seconds(b)] = (peak, last)
    return found


def gauge_carry(session: Session, kind: str, keys: Iterable[str], grain: str,
                before: int) -> dict[str, int]:
    """The level of each gauge when the bucket holding `before` began: for every key, in
    one query, its last bucket before it, read backwards along the primary key."""
    table = AcctPeak.__table__
    start = when(bucket(before, grain))
    wanted = sorted(set(keys))
    carry = dict.fromkeys(wanted, 0)
    for first in range(0, len(wanted), _IN_CHUNK):
        # The keys as a derived table (a UNION ALL: SQLite names no VALUES columns).
        listed = union_all(*(select(literal(key, table.c.key.type).label("key"))
                             for key in wanted[first:first + _IN_CHUNK])).subquery("wanted")
        last = (select(table.c.last)
                .where(table.c.kind == kind, table.c.key == listed.c.key,
                       table.c.grain == grain, table.c.bucket < start)
                .order_by(table.c.bucket.desc()).limit(1).scalar_subquery())
        for key, level in session.execute(select(listed.c.key, last)):
            carry[key] = level or 0
    return carry


_IN_CHUNK = 250  # keys a query: under SQLite's limit of 500 SELECTs in a UNION


def utilization_events(session: Session, lease_ids: Sequence[int] | None, start: int,
                       end: int) -> list[dict]:
    """Events going on at any time in [start, end)."""
    table = UtilizationEvent.__table__
    query = select(table).where(table.c.start_time < when(end),
                                (table.c.end_time.is_(None)) | (table.c.end_time > when(start)))
    if lease_ids is not None:
        query = query.where(table.c.lease_id.in_(list(lease_ids)))
    return [dict(lease_id=row.lease_id, isp=row.isp, kind=row.kind,
                 start=seconds(row.start_time), end=seconds(row.end_time), peak=row.peak,
                 limit=row.limit_value, recorded=seconds(row.recorded_at))
            for row in session.execute(query.order_by(table.c.start_time, table.c.id))]


def rollup_sums(session: Session, by: str, grain: str, start: int, end: int, *,
                isp: str | None = None, lease_id: int | None = None,
                nas: str | None = None) -> list[tuple]:
    """(bucket, group, starts, stops, session seconds, input octets, output octets,
    records, flagged) per bucket and ISP ("" for local), lease id (0: none) or NAS."""
    table = AcctRollup.__table__
    group = table.c[{"isp": "isp", "lease": "lease_id", "nas": "nas"}[by]]
    query = select(table.c.bucket, group, *(func.sum(table.c[m]) for m in MEASURES)).where(
        *_period(table, grain, start, end))
    if isp is not None:
        query = query.where(table.c.isp == isp)
    if lease_id is not None:
        query = query.where(table.c.lease_id == lease_id)
    if nas is not None:
        query = query.where(table.c.nas == nas)
    rows = session.execute(query.group_by(table.c.bucket, group))
    return [(seconds(b), g, *(int(v or 0) for v in values)) for b, g, *values in rows]


def online_sessions(session: Session, *, isp: str | None = None, lease_id: int | None = None,
                    nas: str | None = None, limit: int = 1000) -> list[dict]:
    """Who is online now: open sessions, most recent first."""
    table = RadAcct.__table__
    query = select(table).where(table.c.status == S.OPEN)
    if isp is not None:
        query = query.where(table.c.isp == isp)
    if lease_id is not None:
        query = query.where(table.c.lease_id == lease_id)
    if nas is not None:
        query = query.where(table.c.nas_address == nas)
    rows = session.execute(query.order_by(table.c.start_time.desc(), table.c.id.desc())
                           .limit(limit))
    return [dict(username=r.username, isp=r.isp, route_mode=r.route_mode, nas=r.nas_address,
                 port=r.nas_port, caller=r.calling_station_id, framed_ip=r.framed_ip,
                 start=seconds(r.start_time), last_update=seconds(r.update_time),
                 seconds=r.session_time, input_octets=r.input_octets,
                 output_octets=r.output_octets, flags=r.flags) for r in rows]


# --- session lists ------------------------------------------------------------------------

SESSION_LIST_COLUMNS = (
    "id", "username", "isp", "lease_id", "nas", "port", "caller", "framed_ip", "route_mode",
    "status", "start", "last_update", "stop", "seconds", "input_octets", "output_octets",
    "terminate_cause", "closed_by", "dynauth_state", "flags")
STATUSES = (S.OPEN, S.CLOSED)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionQuery:
    """Which sessions a list shows, newest start first. An ISP operator's lists always
    carry its ISP. `start`/`end`: the sessions that started in [start, end)."""

    isp: str | None = None
    lease_id: int | None = None
    nas: str | None = None
    username: str | None = None
    status: str | None = None  # open (online now) | closed | None: both
    start: int | None = None
    end: int | None = None


def _cursor(text: str | None) -> tuple[int, int] | None:
    """A page's position: "<start time>.<id>" of the last session of the page before."""
    if not text:
        return None
    start, dot, ident = text.partition(".")
    try:
        return int(start), int(ident)
    except ValueError:
        raise ConfigError(f"after {text!r}: not a position in this list") from None


def session_page(session: Session, query: SessionQuery, *, after: str | None = None,
                 limit: int = 50) -> tuple[list[dict], str | None]:
    """(one page of sessions, the position of the next page or None).

    Keyset pagination over (start_time, id), descending, so a page costs the same at
    any depth; every filter has an index beginning with it and start_time
    (ix_radacct_isp_start_time and its siblings), so no page scans radacct."""
    table = RadAcct.__table__
    c = table.c
    statement = select(table)
    for column, value in ((c.isp, query.isp), (c.lease_id, query.lease_id),
                          (c.nas_address, query.nas), (c.username, query.username),
                          (c.status, query.status)):
        if value is not None:
            statement = statement.where(column == value)
    if query.start is not None:
        statement = statement.where(c.start_time >= when(query.start))
    if query.end is not None:
        statement = statement.where(c.start_time < when(query.end))
    position = _cursor(after)
    if position is not None:
        at = when(position[0])
        statement = statement.where((c.start_time < at)
                                    | ((c.start_time == at) & (c.id < position[1])))
    rows = session.execute(statement.order_by(c.start_time.desc(), c.id.desc())
                           .limit(limit + 1)).all()
    found = [_listed(r) for r in rows[:limit]]
    following = None
    if len(rows) > limit and found:
        following = f"{found[-1]['start']}.{found[-1]['id']}"
    return found, following


def session_pages(session: Session, query: SessionQuery, *, chunk: int = 1000
                  ) -> Iterable[list[dict]]:
    """Every session of the query, a page at a time (for a streamed CSV export)."""
    after = None
    while True:
        rows, after = session_page(session, query, after=after, limit=chunk)
        if rows:
            yield rows
        if after is None:
            return


def session_by_id(session: Session, ident: int, *, isp: str | None = None) -> dict | None:
    """One session; with `isp`, only if it is that ISP's (None otherwise, as if absent)."""
    table = RadAcct.__table__
    statement = select(table).where(table.c.id == ident)
    if isp is not None:
        statement = statement.where(table.c.isp == isp)
    row = session.execute(statement).first()
    return None if row is None else _listed(row)


def session_records(session: Session, radacct_id: int, *, limit: int = 500) -> list[dict]:
    """A session's accounting records as stored, in event-time order (by its index)."""
    table = AcctHistory.__table__
    rows = session.execute(select(table).where(table.c.radacct_id == radacct_id)
                           .order_by(table.c.event_time, table.c.id).limit(limit))
    return [dict(status=r.status, event_time=seconds(r.event_time),
                 arrival=seconds(r.arrival), delay=r.delay, seconds=r.session_time,
                 input_octets=r.input_octets, output_octets=r.output_octets,
                 terminate_cause=r.terminate_cause, flags=r.flags) for r in rows]


def _listed(r) -> dict:
    return dict(id=r.id, username=r.username, isp=r.isp, lease_id=r.lease_id,
                nas=r.nas_address, port=r.nas_port, caller=r.calling_station_id,
                framed_ip=r.framed_ip, route_mode=r.route_mode, status=r.status,
                start=seconds(r.start_time), last_update=seconds(r.update_time),
                stop=seconds(r.stop_time), seconds=r.session_time,
                input_octets=r.input_octets, output_octets=r.output_octets,
                terminate_cause=r.terminate_cause, closed_by=r.closed_by,
                dynauth_state=r.dynauth_state, flags=r.flags)

