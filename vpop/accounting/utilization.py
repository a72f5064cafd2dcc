"""Utilization of leases, without I/O: events derived from what the leases carried.

Each lease has conditions, and an event is each interval in which one held:

* ``over_sessions``: more sessions online than leased. From the first second over to
  the first second back at or below (exclusive); peak: most sessions online.
* ``under_sessions``: fewer online than ``under_percent`` of the leased sessions, for
  at least ``under_window`` seconds, within the lease's period and not before the first
  record stored. Recorded once the window has passed; peak: fewest sessions online.
* ``over_bandwidth``: consecutive 5-minute buckets that each carried more octets than
  the leased rate allows. From the first such bucket to the end of the last; the end
  is known once the bucket after it is complete (its interims are in: `settle`);
  peak: the highest 5-minute rate in kbit/s.
* ``over_volume``: the calendar month's octets passed the leased volume. From the 5
  minutes in which they did to the end of the month; peak: the month's octets.

Events are functions of the sessions-online level of the lease second by second and of
its octets per 5 minutes, both of which the store keeps the same whatever order the
records came in. So they are recomputed, not updated: when a late record changes a
level or a bucket, the events from there on are derived again (``session_events``,
``bandwidth_events``, ``volume_event``), and a day replayed at any speed, in any
batches and, within the lateness bound, in any order gives the same events. "Now" is
event time: an ``EventClock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vpop.accounting.leases import LeaseTerms
from vpop.accounting.rollups import FIVE_MINUTES, next_month

OVER_SESSIONS = "over_sessions"
UNDER_SESSIONS = "under_sessions"
OVER_BANDWIDTH = "over_bandwidth"
OVER_VOLUME = "over_volume"
KINDS = (OVER_SESSIONS, UNDER_SESSIONS, OVER_BANDWIDTH, OVER_VOLUME)
SESSION_KINDS = (OVER_SESSIONS, UNDER_SESSIONS)
UNITS = {OVER_SESSIONS: "sessions", UNDER_SESSIONS: "sessions", OVER_BANDWIDTH: "kbit/s",
         OVER_VOLUME: "octets"}
FOREVER = 1 << 62

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


def session_events(lease: LeaseTerms, kind: str, since: int, before: int,
                   levels: Sequence[tuple[int, int]], now: int, epoch: int | None
                   ) -> list[Event]:
    """The lease's `kind` (over_sessions or under_sessions) events from `since` on.

    before: sessions online just before `since`; levels: (second, level after its
    changes) for the seconds from `since` on with a change, in order; now: event time,
    how far the levels are known; epoch: the 5-minute bucket of the first record stored.
    `since` must not fall inside an event (the caller starts from the start of the one
    going on), except where an event begins with the series.
    """
    if kind == OVER_SESSIONS:
        if lease.sessions is None:
            return []
        held = lambda level: level > lease.sessions  # noqa: E731
        limit, floor, ceiling, window = lease.sessions, since, FOREVER, 0
    else:
        limit = under_threshold(lease)
        if limit is None or epoch is None:
            return []
        held = lambda level: level < limit  # noqa: E731
        floor = max(since, lease.starts, epoch)
        ceiling = lease.ends if lease.ends is not None else FOREVER
        window = lease.under_window
    pick = max if kind == OVER_SESSIONS else min
    events: list[Event] = []
    start = extreme = None

    def close(end: int | None) -> None:
        if (end if end is not None else now) - start >= window:
            events.append(Event(lease_id=lease.id, isp=lease.isp, kind=kind, start=start,
                                end=end, peak=extreme, limit=limit))

    points = [(since, before), *levels]
    for n, (t, level) in enumerate(points):
        t = max(t, floor)
        until = points[n + 1][0] if n + 1 < len(points) else FOREVER
        if until <= floor or t >= ceiling:
            continue
        if held(level):
            if start is None:
                start, extreme = t, level
            else:
                extreme = pick(extreme, level)
        elif start is not None:
            close(t)
            start = None
    if start is not None:
        close(ceiling if ceiling <= now else None)
    return [e for e in events if e.start <= now]


def bandwidth_events(lease: LeaseTerms, octets: Sequence[tuple[int, int]], now: int,
                     settle: int) -> list[Event]:
    """over_bandwidth events from (5-minute bucket, octets) in time order: each run of
    consecutive buckets over the leased rate, within the lease's period."""
    capacity = bandwidth_capacity(lease)
    if capacity is None:
        return []
    runs: list[list[tuple[int, int]]] = []
    for b, total in octets:
        if total <= capacity or not lease.active(b):
            continue
        if runs and runs[-1][-1][0] + FIVE_MINUTES == b:
            runs[-1].append((b, total))
        else:
            runs.append([(b, total)])
    events = []
    for run in runs:
        end = run[-1][0] + FIVE_MINUTES
        known = now >= end + FIVE_MINUTES + settle  # the bucket after it is complete
        events.append(Event(lease_id=lease.id, isp=lease.isp, kind=OVER_BANDWIDTH,
                            start=run[0][0], end=end if known else None,
                            peak=max(kbps(total) for _, total in run),
                            limit=lease.bandwidth_kbps or 0))
    return events


def volume_event(lease: LeaseTerms, month: int, octets: Sequence[tuple[int, int]],
                 now: int) -> Event | None:
    """The over_volume event of the month beginning at `month`, from its (5-minute
    bucket, octets) in time order; None when the month stayed within the volume."""
    if lease.volume_bytes is None:
        return None
    total, start = 0, None
    for b, amount in octets:
        total += amount
        if start is None and total > lease.volume_bytes:
            start = b
    if start is None:
        return None
    end = next_month(month)
    return Event(lease_id=lease.id, isp=lease.isp, kind=OVER_VOLUME, start=start,
                 end=end if now >= end else None, peak=total, limit=lease.volume_bytes)
