"""Incremental rollups of accounting, without I/O.

Activity is cut into 5-minute pieces first, in integers, so that every hour is
exactly the sum of its twelve 5-minute buckets and every day of its hours: a
report on any grain adds up to the same totals. Buckets are aligned to UTC.

A batch of session steps becomes:

* ``cells``: additive measures per (grain, bucket, ISP, lease, NAS): session starts
  and stops, session seconds (the integral of sessions online: divided by the
  bucket's length it is the average number online), octets in and out, records,
  flagged records;
* ``lease_octets``: octets per lease and 5-minute bucket, for the traffic rate;
* ``gauge_changes``: sessions online per lease, ISP and NAS going up or down, in the
  order they happened, from which the peaks of each bucket follow.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Iterator

from vpop.accounting.sessions import SessionState, Span, Step

FIVE_MINUTES = 300
GRAINS = {"5min": 300, "hour": 3600, "day": 86_400}
GAUGE_KINDS = ("lease", "isp", "nas")
NO_ISP = ""  # sessions routed locally
NO_LEASE = 0

# Positions in a cell's measures.
STARTS, STOPS, SECONDS, INPUT, OUTPUT, RECORDS, FLAGGED = range(7)
MEASURES = ("starts", "stops", "session_seconds", "input_octets", "output_octets", "records",
            "flagged")

CellKey = tuple[str, int, str, int, str]  # grain, bucket, isp, lease id, nas


def bucket(t: int, grain: str) -> int:
    size = GRAINS[grain]
    return t - t % size


def month_start(t: int) -> int:
    day = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return int(dt.datetime(day.year, day.month, 1, tzinfo=dt.timezone.utc).timestamp())


def next_month(t: int) -> int:
    day = dt.datetime.fromtimestamp(month_start(t), dt.timezone.utc)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return int(dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp())


def bucket_end(start: int, grain: str) -> int:
    return next_month(start) if grain == "month" else start + GRAINS[grain]


def pieces(span: Span) -> Iterator[tuple[int, int, int, int]]:
    """(5-minute bucket, seconds, input octets, output octets) covering the span; the
    octets are shared in proportion to time and add up exactly."""
    start, end = span.start, span.end
    if end <= start:
        yield bucket(end, "5min"), 0, span.input_octets, span.output_octets
        return
    length = end - start
    done_in = done_out = 0
    b = bucket(start, "5min")
    while b < end:
        upto = min(end, b + FIVE_MINUTES)
        share_in = span.input_octets * (upto - start) // length
        share_out = span.output_octets * (upto - start) // length
        yield (b, upto - max(start, b) if span.timed else 0, share_in - done_in,
               share_out - done_out)
        done_in, done_out = share_in, share_out
        b += FIVE_MINUTES


@dataclass(frozen=True, slots=True)
class GaugeChange:
    kind: str  # lease | isp | nas
    key: str
    at: int
    delta: int  # +1 online, -1 offline


def gauge_keys(state: SessionState) -> Iterator[tuple[str, str]]:
    if state.lease_id is not None:
        yield "lease", str(state.lease_id)
    if state.isp is not None:
        yield "isp", state.isp
    yield "nas", state.nas_address


class RollupBatch:
    """What a batch of steps adds to the rollups; the store merges it into its tables."""

    def __init__(self) -> None:
        self.cells: dict[CellKey, list[int]] = defaultdict(lambda: [0] * len(MEASURES))
        self.lease_octets: dict[tuple[int, int], int] = defaultdict(int)  # (lease, 5min)
        # (lease, month, time, octets) in the order they came: when the month's volume
        # passed the lease's is known to the 5 minutes, whatever the batches were.
        self.lease_volume: list[tuple[int, int, int, int]] = []
        self.gauge_changes: list[GaugeChange] = []

    def _add(self, state: SessionState, t: int, index: int, amount: int) -> None:
        cell = (state.isp or NO_ISP, state.lease_id or NO_LEASE, state.nas_address)
        for grain in GRAINS:
            self.cells[(grain, bucket(t, grain), *cell)][index] += amount

    def add(self, step: Step, *, record: bool = True) -> None:
        state = step.after
        if record:
            at = state.update_time
            self._add(state, at, RECORDS, 1)
            if step.flags:
                self._add(state, at, FLAGGED, 1)
        if step.started is not None:
            self._add(state, step.started, STARTS, 1)
        if step.stopped is not None:
            self._add(state, step.stopped, STOPS, 1)
        if step.unstopped is not None:
            self._add(state, step.unstopped, STOPS, -1)
        cell = (state.isp or NO_ISP, state.lease_id or NO_LEASE, state.nas_address)
        for span in step.spans:
            for b5, seconds, octets_in, octets_out in pieces(span):
                for grain in GRAINS:
                    measures = self.cells[(grain, b5 - b5 % GRAINS[grain], *cell)]
                    measures[SECONDS] += seconds
                    measures[INPUT] += octets_in
                    measures[OUTPUT] += octets_out
                if state.lease_id is not None and (octets_in or octets_out):
                    self.lease_octets[(state.lease_id, b5)] += octets_in + octets_out
                    self.lease_volume.append((state.lease_id, month_start(b5),
                                              min(span.end, b5 + FIVE_MINUTES),
                                              octets_in + octets_out))
        for at, delta in ((step.online, 1), (step.offline, -1)):
            if at is not None:
                for kind, key in gauge_keys(state):
                    self.gauge_changes.append(GaugeChange(kind, key, at, delta))


def walk_gauges(levels: dict[tuple[str, str], int], changes: Iterable[GaugeChange]
                ) -> tuple[dict[tuple[str, str], int],
                           dict[tuple[str, int, str, str], list[int]],
                           list[tuple[int, int, int]]]:
    """Apply the changes in order to the stored levels.

    Returns the new levels, the peaks per (grain, bucket, kind, key) as [peak, last
    level], and for the utilization monitor every lease's (lease id, time, level).
    """
    levels = dict(levels)
    peaks: dict[tuple[str, int, str, str], list[int]] = {}
    lease_levels: list[tuple[int, int, int]] = []
    for change in changes:
        gauge = (change.kind, change.key)
        level = max(0, levels.get(gauge, 0) + change.delta)
        levels[gauge] = level
        for grain in GRAINS:
            key = (grain, bucket(change.at, grain), change.kind, change.key)
            seen = peaks.get(key)
            if seen is None:
                peaks[key] = [level, level]
            else:
                seen[0] = max(seen[0], level)
                seen[1] = level
        if change.kind == "lease":
            lease_levels.append((int(change.key), change.at, level))
    return levels, peaks, lease_levels
