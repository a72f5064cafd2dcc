"""Reports from the store, for the `vpop report` command and the portal alike: rollups
only, never the raw accounting, read in slices of whole buckets. The caller owns the
session; rows come from vpop.accounting.reports, ready for render()."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vpop.accounting import reports
from vpop.accounting import sessions as S
from vpop.accounting.rollups import MEASURES, bucket
from vpop.errors import ConfigError
from vpop.store.accounting import load_leases
from vpop.store.accounting_models import AcctPeak, AcctRollup, LeaseRollup, RadAcct, UtilizationEvent
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
    """The level of each gauge when the bucket holding `before` began."""
    table = AcctPeak.__table__
    carry = {}
    for key in sorted(set(keys)):
        last = session.execute(
            select(table.c.last).where(table.c.kind == kind, table.c.key == key,
                                       table.c.grain == grain,
                                       table.c.bucket < when(bucket(before, grain)))
            .order_by(table.c.bucket.desc()).limit(1)).scalar()
        carry[key] = last or 0
    return carry


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
