"""Utilization of leases, on the fly, without I/O.

Each lease has conditions the monitor follows as accounting arrives:

* ``over_sessions``: more sessions online than leased. Starts with the session that
  went beyond, ends with the one that brought it back; peak: most sessions online.
* ``under_sessions``: fewer online than ``under_percent`` of the leased sessions
  for at least ``under_window`` seconds. Recorded once the window has passed, with
  the time it began; ends when usage is back; peak: fewest sessions online.
* ``over_bandwidth``: a 5-minute bucket carried more octets than the leased rate
  allows. Starts at the first such bucket, ends at the end of the last one once the
  following bucket is complete (its interims are in) and within the lease; peak:
  the highest 5-minute rate in kbit/s.
* ``over_volume``: the calendar month's octets passed the leased volume. Starts with
  the record that crossed it, ends at the end of the month; peak: the month's octets.

Every decision depends on event times only (the NAS's clock, see records.py), never
on when the record happened to arrive, so replaying a day gives the same events.
The monitor's notion of "now" is an ``EventClock``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Mapping

from vpop.accounting.leases import LeaseTerms
from vpop.accounting.rollups import FIVE_MINUTES, next_month

OVER_SESSIONS = "over_sessions"
UNDER_SESSIONS = "under_sessions"
OVER_BANDWIDTH = "over_bandwidth"
OVER_VOLUME = "over_volume"
KINDS = (OVER_SESSIONS, UNDER_SESSIONS, OVER_BANDWIDTH, OVER_VOLUME)
UNITS = {OVER_SESSIONS: "sessions", UNDER_SESSIONS: "sessions", OVER_BANDWIDTH: "kbit/s",
         OVER_VOLUME: "octets"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """Where a lease stands on one kind: kept in the store between batches."""
    lease_id: int
    kind: str
    since: int | None = None  # when the condition began; None: it does not hold
    extreme: int = 0  # peak (over) or trough (under) since then
    mark: int | None = None  # over_bandwidth: last bucket over; over_volume: the month
    recorded: bool = False  # an event for it is in the store


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A utilization event as it now stands; (lease_id, kind, start) identifies it."""
    lease_id: int
    isp: str
    kind: str
    start: int
    end: int | None  # None: still going on
    peak: int
    limit: int  # what the lease allows (sessions, kbit/s, octets), or the under threshold


class EventClock:
    """'Now' in event time: the newest event time seen, moving on with the wall clock
    while nothing newer arrives. A replay at speed moves it as fast as its records;
    a quiet network still lets it advance."""

    def __init__(self) -> None:
        self.watermark: int | None = None
        self._seen_at = 0.0

    def observe(self, event_time: int, wall: float) -> None:
        if self.watermark is None or event_time > self.now(wall):
            self.watermark, self._seen_at = event_time, wall

    def now(self, wall: float) -> int | None:
        if self.watermark is None:
            return None
        return self.watermark + int(max(0.0, wall - self._seen_at))


def bandwidth_capacity(lease: LeaseTerms) -> int | None:
    """Octets the leased rate carries in five minutes."""
    if lease.bandwidth_kbps is None:
        return None
    return lease.bandwidth_kbps * 1000 * FIVE_MINUTES // 8


def kbps(octets_per_5min: int) -> int:
    return octets_per_5min * 8 // FIVE_MINUTES // 1000


def under_threshold(lease: LeaseTerms) -> int | None:
    """Sessions below which the lease is under-used; None when not watched."""
    if not lease.under_percent or not lease.sessions:
        return None
    return -(-lease.sessions * lease.under_percent // 100)  # rounded up


class Monitor:
    """Follows the conditions of the leases touched by a batch and collects events."""

    def __init__(self, leases: Mapping[int, LeaseTerms], conditions: Iterable[Condition],
                 settle: int):
        self.leases = leases
        self.settle = settle  # seconds until a bucket's interims are all in
        self.conditions: dict[tuple[int, str], Condition] = {
            (c.lease_id, c.kind): c for c in conditions}
        self.changed: dict[tuple[int, str], Condition] = {}
        self.events: dict[tuple[int, str, int], Event] = {}

    def condition(self, lease_id: int, kind: str) -> Condition:
        return self.conditions.get((lease_id, kind)) or Condition(lease_id=lease_id, kind=kind)

    def _set(self, condition: Condition) -> None:
        key = (condition.lease_id, condition.kind)
        if self.conditions.get(key) != condition:
            self.conditions[key] = condition
            self.changed[key] = condition

    def _event(self, lease: LeaseTerms, condition: Condition, end: int | None, limit: int
               ) -> None:
        assert condition.since is not None
        self.events[(lease.id, condition.kind, condition.since)] = Event(
            lease_id=lease.id, isp=lease.isp, kind=condition.kind, start=condition.since,
            end=end, peak=condition.extreme, limit=limit)

    # --- observations ---------------------------------------------------------------

    def sessions(self, lease_id: int, at: int, level: int) -> None:
        """The lease's sessions online changed to `level` at event time `at`."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return
        if lease.sessions is not None:
            self._over_sessions(lease, at, level)
        threshold = under_threshold(lease)
        if threshold is not None:
            self._under_sessions(lease, at, level, threshold)

    def _over_sessions(self, lease: LeaseTerms, at: int, level: int) -> None:
        c = self.condition(lease.id, OVER_SESSIONS)
        if level > lease.sessions:
            if c.since is None:
                c = dataclasses.replace(c, since=at, extreme=level, recorded=True)
            elif level > c.extreme:
                c = dataclasses.replace(c, extreme=level)
            else:
                return
            self._event(lease, c, None, lease.sessions)
            self._set(c)
        elif c.since is not None:
            self._event(lease, c, at, lease.sessions)
            self._set(Condition(lease_id=lease.id, kind=OVER_SESSIONS))

    def _under_sessions(self, lease: LeaseTerms, at: int, level: int, threshold: int) -> None:
        c = self.condition(lease.id, UNDER_SESSIONS)
        if level < threshold:
            if c.since is None:
                c = dataclasses.replace(c, since=max(at, lease.starts), extreme=level)
            elif level < c.extreme:
                c = dataclasses.replace(c, extreme=level)
            self._set(c)
            self._confirm_under(lease, c, at, threshold)
        elif c.since is not None:
            if c.recorded or at - c.since >= lease.under_window:
                self._event(lease, c, at, threshold)
            self._set(Condition(lease_id=lease.id, kind=UNDER_SESSIONS))

    def _confirm_under(self, lease: LeaseTerms, c: Condition, now: int, threshold: int) -> None:
        if c.since is None:
            return
        if not c.recorded and now - c.since >= lease.under_window:
            c = dataclasses.replace(c, recorded=True)
            self._set(c)
        if c.recorded:
            self._event(lease, c, None, threshold)

    def bandwidth(self, lease_id: int, bucket: int, octets: int) -> None:
        """A 5-minute bucket of the lease now holds `octets` in total."""
        lease = self.leases.get(lease_id)
        capacity = bandwidth_capacity(lease) if lease is not None else None
        if capacity is None or octets <= capacity or not lease.active(bucket):
            return
        c = self.condition(lease_id, OVER_BANDWIDTH)
        rate = kbps(octets)
        if c.since is None:
            c = dataclasses.replace(c, since=bucket, extreme=rate, mark=bucket, recorded=True)
        elif rate > c.extreme or bucket > (c.mark or bucket):
            c = dataclasses.replace(c, extreme=max(c.extreme, rate),
                                    mark=max(c.mark or bucket, bucket))
        else:
            return
        self._set(c)
        self._event(lease, c, None, lease.bandwidth_kbps)

    def volume(self, lease_id: int, at: int, month: int, octets: int) -> None:
        """The lease's month beginning at `month` now holds `octets`, the last at `at`."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.volume_bytes is None or octets <= lease.volume_bytes:
            return
        c = self.condition(lease_id, OVER_VOLUME)
        if c.since is not None and c.mark != month:
            return  # an older month arriving late: its event is closed
        if c.since is None:
            c = dataclasses.replace(c, since=max(at, month), extreme=octets, mark=month,
                                    recorded=True)
        elif octets > c.extreme:
            c = dataclasses.replace(c, extreme=octets)
        else:
            return
        self._set(c)
        self._event(lease, c, None, lease.volume_bytes)

    # --- time passing ---------------------------------------------------------------

    def advance(self, now: int, levels: Mapping[int, int], epoch: int | None) -> None:
        """Let event time `now` pass for every lease: confirm under-use that lasted its
        window, close what has ended. A lease nobody used is under-used from its start,
        or from `epoch` (the 5 minutes of the first record stored) if that is later: the
        same whenever the monitor happens to run."""
        for lease in self.leases.values():
            threshold = under_threshold(lease)
            if threshold is not None and lease.active(now):
                c = self.condition(lease.id, UNDER_SESSIONS)
                level = levels.get(lease.id, 0)
                if c.since is None and level < threshold and epoch is not None:
                    c = dataclasses.replace(c, since=min(now, max(epoch, lease.starts)),
                                            extreme=level)
                    self._set(c)
                self._confirm_under(lease, c, now, threshold)
            c = self.condition(lease.id, OVER_BANDWIDTH)
            if c.since is not None and c.mark is not None:
                end = c.mark + FIVE_MINUTES
                if now >= end + FIVE_MINUTES + self.settle:
                    self._event(lease, c, end, lease.bandwidth_kbps or 0)
                    self._set(Condition(lease_id=lease.id, kind=OVER_BANDWIDTH))
            c = self.condition(lease.id, OVER_VOLUME)
            if c.since is not None and c.mark is not None and now >= next_month(c.mark):
                self._event(lease, c, next_month(c.mark), lease.volume_bytes or 0)
                self._set(Condition(lease_id=lease.id, kind=OVER_VOLUME))
