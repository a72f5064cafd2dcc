"""Leases' traffic and utilization events in the store. The caller commits.

Octets per lease and bucket are added as they come; the busiest 5 minutes of an hour,
day or month is read back from the 5-minute rows, since a late record can move octets
between them. Events are derived again (vpop.accounting.utilization) from the first
second or bucket a batch changed, starting from the beginning of the interval that
second belongs to, and replace what was stored from there on; an event keeps the time
it was first recorded.

How far back a change to sessions online revises events is bounded (`REVISE_BOUND` of
event time behind "now"): a change older than that is taken as made at the bound.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from vpop.accounting.leases import LeaseTerms
from vpop.accounting.rollups import GRAINS, bucket, month_start, next_month
from vpop.accounting.utilization import (OVER_BANDWIDTH, OVER_SESSIONS, OVER_VOLUME,
                                         SESSION_KINDS, UNDER_SESSIONS, Event,
                                         bandwidth_events, session_events, under_threshold,
                                         volume_event)
from vpop.store import gauges
from vpop.store.accounting_models import AcctGaugeSecond, LeaseRollup, UtilizationEvent
from vpop.store.timestamps import seconds, when

REVISE_BOUND = 86_400  # seconds of event time a late change reaches back into events
_EVENT = UtilizationEvent.__table__
_OCTETS = LeaseRollup.__table__
_SECOND = AcctGaugeSecond.__table__
COARSE = ("hour", "day", "month")


# --- octets ------------------------------------------------------------------------------

def _start(b5: int, grain: str) -> int:
    return month_start(b5) if grain == "month" else bucket(b5, grain)


def add_lease_octets(connection: Connection, octets: Mapping[tuple[int, int], int],
                     upsert) -> None:
    """Add octets per (lease, 5-minute bucket) to every grain; the busiest 5 minutes of
    each bucket touched is read back from its 5-minute rows."""
    if not octets:
        return
    sums: dict[tuple[int, str, int], int] = collections.Counter()
    for (lease_id, b5), amount in octets.items():
        for grain in (*GRAINS, "month"):
            sums[(lease_id, grain, _start(b5, grain))] += amount
    connection.execute(upsert, [
        dict(lease_id=l, grain=g, bucket=when(b), octets=n, peak_5min_octets=0)
        for (l, g, b), n in sorted(sums.items())])
    fives = [(l, b) for (l, g, b) in sums if g == "5min"]
    for chunk in _chunks(sorted(fives)):  # a 5-minute bucket is its own busiest
        connection.execute(_OCTETS.update().where(
            _OCTETS.c.grain == "5min",
            or_(*(and_(_OCTETS.c.lease_id == l, _OCTETS.c.bucket == when(b)) for l, b in chunk)))
            .values(peak_5min_octets=_OCTETS.c.octets))
    for lease_id, grain, start in sorted(k for k in sums if k[1] in COARSE):
        end = next_month(start) if grain == "month" else start + GRAINS[grain]
        busiest = connection.execute(select(func.max(_OCTETS.c.octets)).where(
            _OCTETS.c.lease_id == lease_id, _OCTETS.c.grain == "5min",
            _OCTETS.c.bucket >= when(start), _OCTETS.c.bucket < when(end))).scalar() or 0
        connection.execute(_OCTETS.update().where(
            _OCTETS.c.lease_id == lease_id, _OCTETS.c.grain == grain,
            _OCTETS.c.bucket == when(start)).values(peak_5min_octets=max(0, busiest)))


def _chunks(values: Sequence, size: int = 200):
    for n in range(0, len(values), size):
        yield values[n:n + size]


def _five_minutes(connection: Connection, lease_id: int, start: int, end: int | None = None
                  ) -> list[tuple[int, int]]:
    query = select(_OCTETS.c.bucket, _OCTETS.c.octets).where(
        _OCTETS.c.lease_id == lease_id, _OCTETS.c.grain == "5min",
        _OCTETS.c.bucket >= when(start))
    if end is not None:
        query = query.where(_OCTETS.c.bucket < when(end))
    return [(seconds(b), n) for b, n in connection.execute(query.order_by(_OCTETS.c.bucket))]


# --- events ------------------------------------------------------------------------------

class Events:
    """Derives and stores the events of the leases a batch touched, and lets time pass."""

    def __init__(self, connection: Connection, leases: Mapping[int, LeaseTerms], *,
                 now: int, epoch: int | None, settle: int, wall: float):
        self.connection = connection
        self.leases = leases
        self.now, self.epoch, self.settle, self.wall = now, epoch, settle, wall
        self.floor = now - REVISE_BOUND
        self.done: set[tuple[int, str]] = set()

    # sessions online

    def sessions_changed(self, since: Mapping[int, int]) -> None:
        """The leases' sessions online changed from these seconds on."""
        for lease_id, t0 in sorted(since.items()):
            lease = self.leases.get(lease_id)
            if lease is None:
                continue
            for kind in SESSION_KINDS:
                self._sessions(lease, kind, t0)

    def _limit(self, lease: LeaseTerms, kind: str) -> int | None:
        return lease.sessions if kind == OVER_SESSIONS else under_threshold(lease)

    @staticmethod
    def _not_held(kind: str, limit: int):
        """SQL: the level is not over (or under) the limit."""
        level = _SECOND.c.level
        return level <= limit if kind == OVER_SESSIONS else level >= limit

    def _sessions(self, lease: LeaseTerms, kind: str, t0: int) -> None:
        """Derive the lease's `kind` events again from second t0 on (the earliest whose
        level changed), starting where the run of levels t0 falls in began."""
        limit = self._limit(lease, kind)
        if limit is None or (lease.id, kind) in self.done:
            return
        self.done.add((lease.id, kind))
        gauge = ("lease", str(lease.id))
        t0 = max(t0, self.floor)
        before = gauges.level_before(self.connection, gauge, t0)
        held = before > limit if kind == OVER_SESSIONS else before < limit
        older = self._going_on(lease.id, kind, t0) if held else None
        if older is not None:
            # It goes on from before t0, where nothing changed: from its start, with the
            # extreme of what came between read back as one aggregate.
            start = seconds(older.start_time)
            at_start = gauges.level_before(self.connection, gauge, start + 1)
            derived = session_events(lease, kind, start, at_start,
                                     gauges.levels_since(self.connection, gauge, t0),
                                     self.now, self.epoch)
            between = self._extreme(gauge, kind, start + 1, t0)
            if derived and derived[0].start == start and between is not None:
                pick = max if kind == OVER_SESSIONS else min
                derived[0] = dataclasses.replace(derived[0],
                                                 peak=pick(derived[0].peak, between))
            self._replace(lease.id, kind, start, derived)
            return
        since = t0
        if held:  # a run not recorded yet (under-use within its window): where it began
            since, before = self._run_start(gauge, kind, limit, t0)
        derived = session_events(lease, kind, since, before,
                                 gauges.levels_since(self.connection, gauge, since),
                                 self.now, self.epoch)
        self._replace(lease.id, kind, since, derived)

    def _extreme(self, gauge, kind: str, start: int, end: int) -> int | None:
        """The highest (over) or lowest (under) level after a change in [start, end)."""
        kind_, key = gauge
        pick = func.max if kind == OVER_SESSIONS else func.min
        return self.connection.execute(select(pick(_SECOND.c.level)).where(
            _SECOND.c.kind == kind_, _SECOND.c.key == key, _SECOND.c.at >= when(start),
            _SECOND.c.at < when(end))).scalar()

    def _run_start(self, gauge, kind: str, limit: int, t0: int) -> tuple[int, int]:
        """The first second of the run of levels over (or under) `limit` that the level
        before t0 is in, and the level before it (0 from the beginning)."""
        kind_, key = gauge
        mine = (_SECOND.c.kind == kind_, _SECOND.c.key == key)
        last_out = self.connection.execute(select(func.max(_SECOND.c.at)).where(
            *mine, _SECOND.c.at < when(t0), self._not_held(kind, limit))).scalar()
        if last_out is None:  # held since the first change: from the beginning
            return 0, 0
        crossing = seconds(self.connection.execute(select(func.min(_SECOND.c.at)).where(
            *mine, _SECOND.c.at > last_out)).scalar())
        return crossing, gauges.level_before(self.connection, gauge, crossing)

    def _replace(self, lease_id: int, kind: str, since: int, derived: list[Event],
                 until: int | None = None) -> None:
        """The lease's `kind` events that begin from `since` (to `until`) are now
        `derived`; each keeps the time it was first recorded."""
        stored = {seconds(row.start_time): row.recorded_at for row in self.connection.execute(
            select(_EVENT.c.start_time, _EVENT.c.recorded_at).where(
                *self._mine(lease_id, kind, since, until)))}
        self.connection.execute(delete(_EVENT).where(*self._mine(lease_id, kind, since, until)))
        if derived:
            self.connection.execute(insert(_EVENT), [dict(
                lease_id=e.lease_id, isp=e.isp, kind=e.kind, start_time=when(e.start),
                end_time=when(e.end), peak=e.peak, limit_value=e.limit,
                recorded_at=stored.get(e.start) or when(int(self.wall)))
                for e in derived])

    def _mine(self, lease_id: int, kind: str, since: int, until: int | None):
        conditions = [_EVENT.c.lease_id == lease_id, _EVENT.c.kind == kind,
                      _EVENT.c.start_time >= when(since)]
        if until is not None:
            conditions.append(_EVENT.c.start_time < when(until))
        return conditions

    def _going_on(self, lease_id: int, kind: str, at: int):
        """A stored event that began before `at` and had not ended before it."""
        return self.connection.execute(select(_EVENT).where(
            _EVENT.c.lease_id == lease_id, _EVENT.c.kind == kind,
            _EVENT.c.start_time < when(at),
            or_(_EVENT.c.end_time.is_(None), _EVENT.c.end_time >= when(at)))
            .order_by(_EVENT.c.start_time.desc()).limit(1)).first()

    # traffic

    def octets_changed(self, buckets: Mapping[int, Sequence[int]]) -> None:
        """The leases' octets changed in these 5-minute buckets."""
        for lease_id, touched in sorted(buckets.items()):
            lease = self.leases.get(lease_id)
            if lease is None:
                continue
            if lease.bandwidth_kbps is not None:
                self._bandwidth(lease, min(touched))
            if lease.volume_bytes is not None:
                for month in sorted({month_start(b) for b in touched}):
                    self._volume(lease, month)

    def _bandwidth(self, lease: LeaseTerms, b0: int) -> None:
        if (lease.id, OVER_BANDWIDTH) in self.done:
            return
        self.done.add((lease.id, OVER_BANDWIDTH))
        b0 = bucket(b0, "5min")
        older = self._going_on(lease.id, OVER_BANDWIDTH, b0)  # or ending where b0 begins
        since = seconds(older.start_time) if older is not None else b0
        derived = bandwidth_events(lease, _five_minutes(self.connection, lease.id, since),
                                   self.now, self.settle)
        self._replace(lease.id, OVER_BANDWIDTH, since, derived)

    def _volume(self, lease: LeaseTerms, month: int) -> None:
        if (lease.id, OVER_VOLUME, month) in self.done:
            return
        self.done.add((lease.id, OVER_VOLUME, month))
        end = next_month(month)
        event = volume_event(lease, month, _five_minutes(self.connection, lease.id, month, end),
                             self.now)
        self._replace(lease.id, OVER_VOLUME, month, [event] if event else [], until=end)

    # time passing

    def time_passes(self, levels: Mapping[int, int]) -> None:
        """Let event time `now` pass for every lease: under-use that lasted its window is
        recorded, events whose end is now known are closed."""
        going = collections.defaultdict(list)
        for lease_id, kind, start in self.connection.execute(
                select(_EVENT.c.lease_id, _EVENT.c.kind, _EVENT.c.start_time)
                .where(_EVENT.c.end_time.is_(None))):
            going[(lease_id, kind)].append(seconds(start))
        for lease in self.leases.values():
            threshold = under_threshold(lease)
            if threshold is not None and (
                    (levels.get(lease.id, 0) < threshold
                     and not going.get((lease.id, UNDER_SESSIONS)))
                    or (going.get((lease.id, UNDER_SESSIONS)) and lease.ends is not None
                        and self.now >= lease.ends)):
                self._sessions(lease, UNDER_SESSIONS, self.now)
            for start in going.get((lease.id, OVER_BANDWIDTH), ()):
                self._bandwidth(lease, start)
            for start in going.get((lease.id, OVER_VOLUME), ()):
                if self.now >= next_month(month_start(start)):
                    self._volume(lease, month_start(start))
