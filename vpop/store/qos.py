"""The QoS time series of upstream servers (table isp_qos) and their current state
(isp_server_state); the caller commits.

The shell writes each worker's flushed buckets with ``record_buckets``, and each
change of a server's state at once with ``record_states``; one process runs
``downsample`` now and then; the portal, ``vpop isp status`` and the selection score
read ``series``, ``latest_health`` and ``server_states``. Rules and definitions:
vpop/isp/qos.py, vpop/isp/pool.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vpop.isp.qos import (LEVELS, BucketSummary, Histogram, Level, check_levels, expiry, fold,
                          isp_health)
from vpop.isp.pool import ServerState
from vpop.isp.selection import IspHealth
from vpop.store.isp_models import IspRecord, IspQos, IspServer, IspServerState

PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def _columns(summary: BucketSummary) -> dict:
    columns = dict(
        server=summary.server, isp=summary.isp, bucket_start=summary.start,
        bucket_seconds=summary.seconds, probes=summary.probes,
        probes_lost=summary.probes_lost, requests=summary.requests, accepts=summary.accepts,
        rejects=summary.rejects, timeouts=summary.timeouts, invalid=summary.invalid,
        rtt_histogram=summary.rtt.encode(), response_histogram=summary.response.encode())
    for name, q in PERCENTILES:
        columns[f"rtt_{name}_ms"] = summary.rtt_ms(q)
        columns[f"response_{name}_ms"] = summary.response_ms(q)
    return columns


def summary_of(row: IspQos) -> BucketSummary:
    return BucketSummary(
        isp=row.isp, server=row.server, start=row.bucket_start, seconds=row.bucket_seconds,
        probes=row.probes, probes_lost=row.probes_lost, requests=row.requests,
        accepts=row.accepts, rejects=row.rejects, timeouts=row.timeouts, invalid=row.invalid,
        rtt=Histogram.decode(row.rtt_histogram),
        response=Histogram.decode(row.response_histogram))


def record_buckets(session: Session, summaries: Iterable[BucketSummary], *,
                   levels: Sequence[Level] = LEVELS) -> int:
    """Store flushed buckets as they are: several workers may write the same server and
    minute, and readers merge them. Buckets must have the size of one of ``levels``."""
    sizes = {level.seconds for level in levels}
    count = 0
    for summary in summaries:
        if summary.seconds not in sizes:
            raise ValueError(f"bucket of {summary.seconds} s: use one of {sorted(sizes)}")
        session.add(IspQos(**_columns(summary)))
        count += 1
    session.flush()
    return count


def downsample(session: Session, now: dt.datetime, *,
               levels: Sequence[Level] = LEVELS) -> int:
    """Fold expired buckets into the next level, drop those past the last; returns how
    many rows went. Meant for one process: if another run removed the same rows first,
    the flush raises sqlalchemy.orm.exc.StaleDataError and the caller rolls back."""
    check_levels(levels)
    gone = 0
    for index, level in enumerate(levels):
        cut = expiry(levels, index, now)
        rows = session.scalars(select(IspQos).where(
            IspQos.bucket_seconds == level.seconds, IspQos.bucket_start < cut)).all()
        if not rows:
            continue
        if index + 1 < len(levels):
            _merge_into(session, fold((summary_of(row) for row in rows),
                                      levels[index + 1].seconds))
        for row in rows:
            session.delete(row)
        session.flush()
        gone += len(rows)
    return gone


def _merge_into(session: Session, summaries: list[BucketSummary]) -> None:
    """Add coarse buckets, merged with rows already stored for the same bucket."""
    seconds = {s.seconds for s in summaries}
    starts = [s.start for s in summaries]
    stored = {(r.isp, r.server, r.bucket_start, r.bucket_seconds): r for r in session.scalars(
        select(IspQos).where(IspQos.bucket_seconds.in_(seconds),
                             IspQos.bucket_start >= min(starts),
                             IspQos.bucket_start <= max(starts),
                             IspQos.server.in_({s.server for s in summaries})))}
    for summary in summaries:
        row = stored.get((summary.isp, summary.server, summary.start, summary.seconds))
        if row is None:
            session.add(IspQos(**_columns(summary)))
        else:
            merged = summary_of(row).merge(summary, start=summary.start, seconds=summary.seconds)
            for name, value in _columns(merged).items():
                setattr(row, name, value)


def series(session: Session, *, since: dt.datetime, until: dt.datetime | None = None,
           isp: str | None = None, server: str | None = None,
           resolution: int = 60) -> list[BucketSummary]:
    """Buckets of ``resolution`` seconds (or coarser where only coarser ones are kept)
    overlapping [since, until), per ISP and server, sorted by ISP, server and start."""
    widest = max(level.seconds for level in LEVELS)
    query = select(IspQos).where(IspQos.bucket_start > since - dt.timedelta(seconds=widest))
    if until is not None:
        query = query.where(IspQos.bucket_start < until)
    if isp is not None:
        query = query.where(IspQos.isp == isp)
    if server is not None:
        query = query.where(IspQos.server == server)
    rows = [summary_of(row) for row in session.scalars(query)
            if row.bucket_start + dt.timedelta(seconds=row.bucket_seconds) > since]
    return fold(rows, resolution)


def servers_by_isp(session: Session) -> dict[str, list[str]]:
    """ISP name -> the names of its RADIUS servers, in provisioned order."""
    out: dict[str, list[str]] = {}
    for isp, server in session.execute(
            select(IspRecord.name, IspServer.name).join(IspServer.isp).order_by(IspRecord.name,
                                                                        IspServer.id)):
        out.setdefault(isp, []).append(server)
    return out


def latest_health(session: Session, now: dt.datetime, *,
                  window: dt.timedelta = dt.timedelta(minutes=5)) -> dict[str, IspHealth]:
    """What the selection score reads: each proxy ISP's health over the last ``window``
    (definitions in vpop/isp/qos.py). ISPs without servers are left out."""
    rows = session.scalars(select(IspQos).where(IspQos.bucket_start >= now - window,
                                                IspQos.bucket_start < now))
    return isp_health(servers_by_isp(session), [summary_of(row) for row in rows])


def record_states(session: Session, states: Iterable[ServerState]) -> None:
    """Store each server's state unless a later one is stored already: workers write
    their own changes, in any order, and the latest change wins."""
    table = IspServerState.__table__
    dialect = session.get_bind().dialect.name
    upsert_into = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for state in states:
        statement = upsert_into(table).values(
            server=state.server, isp=state.isp, state=state.state, since=state.since,
            reason=state.reason[:255])
        new = statement.excluded
        session.execute(statement.on_conflict_do_update(
            index_elements=["server"],
            set_={name: new[name] for name in ("isp", "state", "since", "reason")},
            where=table.c.since <= new.since))


def server_states(session: Session) -> dict[str, ServerState]:
    """Server name -> its latest stored state."""
    return {row.server: ServerState(server=row.server, isp=row.isp, state=row.state,
                                     since=row.since, reason=row.reason)
            for row in session.scalars(select(IspServerState))}
