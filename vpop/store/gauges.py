"""Sessions online per lease, ISP and NAS in the store: levels second by second, and
the peaks of each bucket. The caller commits.

`acct_gauge_second` holds each gauge's net change per second of event time and the
level after it. Changes are added to what the second holds, whatever order they come
in; then the levels from the earliest change on are rewritten, and the peaks of the
buckets from there are derived again (5 minutes from the levels, hours and days from
the 5 minutes). So a late record, a reaped session or a replay in
other batches leaves the same levels and peaks as records in event-time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, delete, func, insert, select

from vpop.accounting.rollups import GRAINS, bucket, bucket_peaks, levels_from
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
    mine = (_SECOND.c.kind == kind, _SECOND.c.key == key)
    t0 = min(changes)
    b0 = bucket(t0, "5min")
    before = level_before(connection, gauge, t0)
    # The seconds from t0 on: the changes added, the levels after them rewritten.
    deltas: dict[int, int] = {}
    for at, delta in connection.execute(
            select(_SECOND.c.at, _SECOND.c.delta).where(*mine, _SECOND.c.at >= when(t0))):
        deltas[seconds(at)] = delta
    for t, delta in changes.items():
        deltas[t] = deltas.get(t, 0) + delta
    series = levels_from(before, sorted((t, d) for t, d in deltas.items() if d))
    connection.execute(delete(_SECOND).where(*mine, _SECOND.c.at >= when(t0)))
    if series:
        connection.execute(insert(_SECOND), [
            dict(kind=kind, key=key, at=when(t), delta=d, level=level)
            for t, d, level in series])
    # The peaks of the 5 minutes from t0's on; what came before t0 in its bucket stands.
    fine = bucket_peaks(before, [(t, level) for t, _, level in series])
    head_peak, head_first = connection.execute(
        select(func.max(_SECOND.c.level), func.min(_SECOND.c.at)).where(
            *mine, _SECOND.c.at >= when(b0), _SECOND.c.at < when(t0))).one()
    if head_first is not None:
        peak = head_peak
        if seconds(head_first) != b0:  # the bucket began with the level before it
            peak = max(peak, level_before(connection, gauge, b0))
        if b0 in fine:
            fine[b0] = (max(peak, fine[b0][0]), fine[b0][1])
        else:
            fine[b0] = (max(peak, before), before)
    _replace_peaks(connection, gauge, "5min", b0, fine)
    last = max(fine, default=b0)
    for grain in ("hour", "day"):
        coarse: dict[int, tuple[int, int]] = {}
        start = bucket(b0, grain)
        for c in range(start, bucket(last, grain) + 1, GRAINS[grain]):
            found = _coarse_peak(connection, gauge, grain, c)
            if found is not None:
                coarse[c] = found
        _replace_peaks(connection, gauge, grain, start, coarse,
                       until=bucket(last, grain) + GRAINS[grain])
    return series[-1][2] if series else before


def _coarse_peak(connection: Connection, gauge: Gauge, grain: str, start: int
                 ) -> tuple[int, int] | None:
    """(peak, last level) of an hour or day from its 5-minute rows; None without any."""
    kind, key = gauge
    inside = (_PEAK.c.kind == kind, _PEAK.c.key == key, _PEAK.c.grain == "5min",
              _PEAK.c.bucket >= when(start), _PEAK.c.bucket < when(start + GRAINS[grain]))
    peak, first, final = connection.execute(select(
        func.max(_PEAK.c.peak), func.min(_PEAK.c.bucket), func.max(_PEAK.c.bucket))
        .where(*inside)).one()
    if first is None:
        return None
    if seconds(first) != start:  # its first 5 minutes had the level it began with
        peak = max(peak, _last_before(connection, gauge, "5min", start))
    last = connection.execute(select(_PEAK.c.last).where(
        *inside[:3], _PEAK.c.bucket == final)).scalar()
    return peak, last


def _last_before(connection: Connection, gauge: Gauge, grain: str, start: int) -> int:
    kind, key = gauge
    last = connection.execute(
        select(_PEAK.c.last).where(_PEAK.c.kind == kind, _PEAK.c.key == key,
                                   _PEAK.c.grain == grain, _PEAK.c.bucket < when(start))
        .order_by(_PEAK.c.bucket.desc()).limit(1)).scalar()
    return last or 0


def _replace_peaks(connection: Connection, gauge: Gauge, grain: str, start: int,
                   peaks: Mapping[int, tuple[int, int]], until: int | None = None) -> None:
    """The gauge's peak rows of `grain` from `start` (to `until`) are now `peaks`."""
    kind, key = gauge
    where = [_PEAK.c.kind == kind, _PEAK.c.key == key, _PEAK.c.grain == grain,
             _PEAK.c.bucket >= when(start)]
    if until is not None:
        where.append(_PEAK.c.bucket < when(until))
    connection.execute(delete(_PEAK).where(*where))
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
