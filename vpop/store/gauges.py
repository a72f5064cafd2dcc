"""Sessions online per lease, ISP and NAS in the store: levels second by second, and
the peaks of each bucket. The caller commits.

`acct_gauge_second` holds each gauge's net change per second of event time and the
level after it. Changes are added to what the second holds, whatever order they come
in; then the levels from the 5 minutes of the earliest change on are rewritten, and
the peaks of the buckets from there are derived again (5 minutes from the levels,
hours and days from the 5 minutes). So a late record, a reaped session or a replay in
other batches leaves the same levels and peaks as records in event-time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, delete, insert, select

from vpop.accounting.rollups import bucket, bucket_peaks, coarse_peaks, levels_from
from vpop.store.accounting_models import AcctGauge, AcctGaugeSecond, AcctPeak
from vpop.store.timestamps import seconds, when

Gauge = tuple[str, str]  # (kind, key)
_SECOND = AcctGaugeSecond.__table__
_PEAK = AcctPeak.__table__
_LEVEL = AcctGauge.__table__


def level_before(connection: Connection, gauge: Gauge, t: int) -> int:
    """The gauge's level just before second `t`."""
    kind, key = gauge
    level = connection.execute(
        select(_SECOND.c.level).where(_SECOND.c.kind == kind, _SECOND.c.key == key,
                                      _SECOND.c.at < when(t))
        .order_by(_SECOND.c.at.desc()).limit(1)).scalar()
    return level or 0


def levels_since(connection: Connection, gauge: Gauge, t: int) -> list[tuple[int, int]]:
    """(second, level after it) for the seconds with a change from `t` on, in order."""
    kind, key = gauge
    return [(seconds(at), level) for at, level in connection.execute(
        select(_SECOND.c.at, _SECOND.c.level).where(
            _SECOND.c.kind == kind, _SECOND.c.key == key, _SECOND.c.at >= when(t))
        .order_by(_SECOND.c.at))]


def apply_changes(connection: Connection, changes: Mapping[Gauge, Mapping[int, int]]
                  ) -> dict[Gauge, int]:
    """Add net changes per (gauge, second); rewrite levels and peaks from there. Returns
    each changed gauge's level after its newest change."""
    final: dict[Gauge, int] = {}
    for gauge in sorted(changes):
        final[gauge] = _apply(connection, gauge, changes[gauge])
    if final:
        stored = {(kind, key) for kind, key in connection.execute(
            select(_LEVEL.c.kind, _LEVEL.c.key).where(
                _LEVEL.c.kind.in_({k for k, _ in final}),
                _LEVEL.c.key.in_({v for _, v in final})))}
        rows = [dict(kind=k, key=v, level=n) for (k, v), n in sorted(final.items())]
        fresh = [row for row in rows if (row["kind"], row["key"]) not in stored]
        if fresh:
            connection.execute(insert(_LEVEL), fresh)
        for row in rows:
            if (row["kind"], row["key"]) in stored:
                connection.execute(_LEVEL.update().where(
                    _LEVEL.c.kind == row["kind"], _LEVEL.c.key == row["key"])
                    .values(level=row["level"]))
    return final


def _apply(connection: Connection, gauge: Gauge, changes: Mapping[int, int]) -> int:
    kind, key = gauge
    first = bucket(min(changes), "5min")
    before = level_before(connection, gauge, first)
    deltas: dict[int, int] = {}
    for at, delta in connection.execute(
            select(_SECOND.c.at, _SECOND.c.delta).where(
                _SECOND.c.kind == kind, _SECOND.c.key == key, _SECOND.c.at >= when(first))):
        deltas[seconds(at)] = delta
    for t, delta in changes.items():
        deltas[t] = deltas.get(t, 0) + delta
    series = levels_from(before, sorted((t, d) for t, d in deltas.items() if d))
    connection.execute(delete(_SECOND).where(
        _SECOND.c.kind == kind, _SECOND.c.key == key, _SECOND.c.at >= when(first)))
    if series:
        connection.execute(insert(_SECOND), [
            dict(kind=kind, key=key, at=when(t), delta=d, level=level)
            for t, d, level in series])
    fine = bucket_peaks(before, [(t, level) for t, _, level in series])
    _replace_peaks(connection, gauge, "5min", first, fine)
    for grain in ("hour", "day"):
        start = bucket(first, grain)
        rows = _peaks_since(connection, gauge, start)
        carry = _last_before(connection, gauge, "5min", start)
        _replace_peaks(connection, gauge, grain, start, coarse_peaks(carry, rows, grain))
    return series[-1][2] if series else before


def _peaks_since(connection: Connection, gauge: Gauge, start: int
                 ) -> list[tuple[int, tuple[int, int]]]:
    kind, key = gauge
    return [(seconds(b), (peak, last)) for b, peak, last in connection.execute(
        select(_PEAK.c.bucket, _PEAK.c.peak, _PEAK.c.last).where(
            _PEAK.c.kind == kind, _PEAK.c.key == key, _PEAK.c.grain == "5min",
            _PEAK.c.bucket >= when(start)).order_by(_PEAK.c.bucket))]


def _last_before(connection: Connection, gauge: Gauge, grain: str, start: int) -> int:
    kind, key = gauge
    last = connection.execute(
        select(_PEAK.c.last).where(_PEAK.c.kind == kind, _PEAK.c.key == key,
                                   _PEAK.c.grain == grain, _PEAK.c.bucket < when(start))
        .order_by(_PEAK.c.bucket.desc()).limit(1)).scalar()
    return last or 0


def _replace_peaks(connection: Connection, gauge: Gauge, grain: str, start: int,
                   peaks: Mapping[int, tuple[int, int]]) -> None:
    kind, key = gauge
    connection.execute(delete(_PEAK).where(
        _PEAK.c.kind == kind, _PEAK.c.key == key, _PEAK.c.grain == grain,
        _PEAK.c.bucket >= when(start)))
    if peaks:
        connection.execute(insert(_PEAK), [
            dict(kind=kind, key=key, grain=grain, bucket=when(b), peak=peak, last=last)
            for b, (peak, last) in sorted(peaks.items())])


def levels(connection: Connection, kind: str, keys: Iterable[str] | None = None
           ) -> dict[str, int]:
    """Sessions online now per gauge of `kind`."""
    query = select(_LEVEL.c.key, _LEVEL.c.level).where(_LEVEL.c.kind == kind)
    if keys is not None:
        query = query.where(_LEVEL.c.key.in_(list(keys)))
    return {key: level for key, level in connection.execute(query)}
