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
* ``gauge_changes``: sessions online per lease, ISP and NAS going up or down, each at
  the second it happened. The store keeps them netted per second (``GaugeSeconds``), so
  the level at any second, and the peak of any bucket, is the same whatever order the
  changes came in; see ``levels_from`` and ``bucket_peaks``.
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
        self.gauge_changes: list[GaugeChange] = []

    def _add(self, state: SessionState, t: int, index: int, amount: int) -> None:
        cell = (state.isp or NO_ISP, state.lease_id or NO_LEASE, state.nas_address)
        for grain in GRAINS:
            self.cells[(grain, bucket(t, grain), *cell)][index] += amount

    def add(self, step: Step, *, record: bool = True, at: int | None = None) -> None:
        """`record`: the step is a record's (counted in `records`, and in `flagged` when
        it has flags), in the bucket of `at` (default: the session's newest event time)."""
        state = step.after
        if record:
            at = state.update_time if at is None else at
            self._add(state, at, RECORDS, 1)
            if step.flags:
                self._add(state, at, FLAGGED, 1)
        for t, index, amount in ((step.started, STARTS, 1), (step.unstarted, STARTS, -1),
                                 (step.stopped, STOPS, 1), (step.unstopped, STOPS, -1)):
            if t is not None:
                self._add(state, t, index, amount)
        cell = (state.isp or NO_ISP, state.lease_id or NO_LEASE, state.nas_address)
        for span in step.spans:
            sign = span.sign
            for b5, seconds, octets_in, octets_out in pieces(span):
                seconds, octets_in, octets_out = sign * seconds, sign * octets_in, sign * octets_out
                for grain in GRAINS:
                    measures = self.cells[(grain, b5 - b5 % GRAINS[grain], *cell)]
                    measures[SECONDS] += seconds
                    measures[INPUT] += octets_in
                    measures[OUTPUT] += octets_out
                if state.lease_id is not None and (octets_in or octets_out):
                    self.lease_octets[(state.lease_id, b5)] += octets_in + octets_out
        for t, delta in ((step.online, 1), (step.offline, -1), (step.unonline, -1)):
            if t is not None:
                for kind, key in gauge_keys(state):
                    self.gauge_changes.append(GaugeChange(kind, key, t, delta))


def net_changes(changes: Iterable[GaugeChange]) -> dict[tuple[str, str], dict[int, int]]:
    """Changes netted per gauge and second: what happens in one second happens at once."""
    net: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for change in changes:
        net[(change.kind, change.key)][change.at] += change.delta
    netted = {gauge: {t: d for t, d in seconds.items() if d} for gauge, seconds in net.items()}
    return {gauge: seconds for gauge, seconds in netted.items() if seconds}


def levels_from(level: int, deltas: Iterable[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(second, change, level after it) for changes in time order, from `level` before
    the first."""
    out = []
    for t, delta in deltas:
        level += delta
        out.append((t, delta, level))
    return out


def bucket_peaks(level: int, levels: Iterable[tuple[int, int]], grain: str = "5min"
                 ) -> dict[int, tuple[int, int]]:
    """(peak, last level) per bucket with a change, from the level before the first change
    and (second, level after it) in time order. A bucket's peak is the most sessions online
    at any second of it: at least the level it began with."""
    peaks: dict[int, tuple[int, int]] = {}
    for t, after in levels:
        b = bucket(t, grain)
        seen = peaks.get(b)
        if seen is None:  # it began with `level`, unless this change is at its first second
            peaks[b] = (after if t == b else max(level, after), after)
        else:
            peaks[b] = (max(seen[0], after), after)
        level = after
    return peaks
