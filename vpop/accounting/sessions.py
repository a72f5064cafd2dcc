"""One session's state as accounting records arrive, without I/O.

``apply(state, record)`` returns a ``Step``: the state to store, the record's
flags for its history row, the activity to roll up (``Span``s of time and
octets, session starts and stops) and whether the session started or stopped
counting as online. Records may come twice, late or in any order:

* a retransmission is recognised by the store (same content key) before this runs;
* a Stop or Interim without a Start opens the session from Acct-Session-Time and
  flags it ``no-start``; a Start that arrives later only corrects the start time;
* a record older than what is stored (it arrived after a later record of its
  session) is flagged ``out-of-order``; given the records around it (``Neighbours``,
  which the store reads from the history) its octets are moved into place, so the
  rollups are what they would have been in order; without them it changes nothing;
* a counter of a NAS that sends no Gigawords is 32 bits wide: when it goes down it
  wrapped (``wrapped``), and the records after the wrap go on from the wrapped total; a
  counter with Gigawords that goes down is kept and flagged ``negative``;
* a session counts as online from its start to its end, whatever record told of it
  first: a Stop or Interim without a Start makes it online from its start as its
  Acct-Session-Time gives it; a session the reaper closed that reports again was never
  stale, and is online throughout;
* a Start for a finished session with a later time is a new session that reuses the
  Acct-Session-Id (NASes restart their numbering after a reboot): the old one is
  retired under another key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from vpop.accounting.records import AcctRecord

OPEN, CLOSED = "open", "closed"
BY_STOP, BY_NAS, BY_REAPER = "stop", "nas-reboot", "reaper"

# Flags of records and sessions: why a figure may not be what the NAS meant.
NO_START = "no-start"
LATE_START = "late-start"
REPEATED_START = "repeated-start"
AFTER_STOP = "after-stop"
AFTER_CLOSE = "after-close"
OUT_OF_ORDER = "out-of-order"
OUT_OF_RANGE = "out-of-range"  # out of order, and its counters do not fit between its neighbours
WRAPPED = "wrapped"
NEGATIVE = "negative"
REOPENED = "reopened"
REAPED = "reaped"
LONG_SPAN = "long-span"
ID_REUSED = "id-reused"  # on the earlier session, whose Acct-Session-Id came back

MAX_SPAN = 31 * 86_400  # time and octets spread over at most the last 31 days
_LOW = (1 << 32) - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionState:
    id: int | None = None  # the store's row id; None until stored
    unique_id: str
    session_id: str
    username: str
    nas_address: str
    nas_port: str | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    framed_ip: str | None = None
    framed_ipv6_prefix: str | None = None
    delegated_ipv6_prefix: str | None = None
    isp: str | None = None
    route_mode: str = "local"
    route_reason: str = ""
    lease_id: int | None = None
    status: str = OPEN
    start_time: int
    update_time: int  # event time of the newest record applied
    stop_time: int | None = None
    session_time: int = 0
    input_octets: int = 0
    output_octets: int = 0
    input_packets: int = 0
    output_packets: int = 0
    terminate_cause: str | None = None
    closed_by: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Span:
    """Activity between two event times: octets, and session time unless `timed` is off.
    A span with `sign` -1 takes back exactly what the same span added (its pieces are cut
    the same way, then subtracted)."""
    start: int
    end: int
    input_octets: int = 0
    output_octets: int = 0
    timed: bool = True
    sign: int = 1


@dataclass(frozen=True, slots=True)
class Mark:
    """A point of a session's history: a record's event time and the counters it carried."""
    at: int
    input_octets: int
    output_octets: int


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The records applied before and after a late one (`before` None: the session's
    start, counters 0), their counters as totals (32-bit wraps counted: `totals`)."""
    before: Mark | None
    after: Mark | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    before: SessionState | None
    after: SessionState
    flags: tuple[str, ...] = ()  # of this record
    spans: tuple[Span, ...] = ()
    started: int | None = None  # a session start to count, at this time
    unstarted: int | None = None  # a start counted earlier at this time that was wrong
    stopped: int | None = None  # a session stop to count, at this time
    unstopped: int | None = None  # a stop counted earlier that was wrong (reaped too early)
    online: int | None = None  # the session began counting as online at this time
    offline: int | None = None  # ... or stopped counting at this time
    unonline: int | None = None  # an earlier 'online' at this time is taken back
    retire: SessionState | None = None  # a finished session whose key the NAS reused


@dataclass(frozen=True, slots=True)
class Attribution:
    """The lease a new session counts against, and its ISP and why when no routing Class
    named one (a realm, or the lease's holder)."""
    lease_id: int | None
    isp: str | None = None
    reason: str = ""


Assign = Callable[[AcctRecord, int], Attribution]  # (record, start time) -> attribution

_FIELDS = tuple(f.name for f in dataclasses.fields(SessionState))


def _with(state: SessionState, **changes) -> SessionState:
    """dataclasses.replace for the hot path: the same result in half the time."""
    values = {name: getattr(state, name) for name in _FIELDS}
    values.update(changes)
    return SessionState(**values)


def merge_flags(*groups) -> tuple[str, ...]:
    seen: list[str] = []
    for group in groups:
        for flag in group:
            if flag not in seen:
                seen.append(flag)
    return tuple(seen)


def _clip(span: Span, flags: list[str]) -> Span:
    if span.end - span.start > MAX_SPAN:
        flags.append(LONG_SPAN)
        return dataclasses.replace(span, start=span.end - MAX_SPAN)
    return span


def _advance(old: int, new: int, wraps: bool) -> tuple[int, str | None]:
    """The new counter total and a flag: a 32-bit counter wrapped, or went backwards.

    `wraps`: the NAS's counter is 32 bits wide (it sends no Gigawords), so the total is
    the wraps counted so far plus what it sends, and the record after a wrap goes on from
    it. Such a counter that went down wrapped, however little (RFC 2866 counters only
    grow within a session; 2^32 octets in an interim interval is a line of 115 Mbit/s).
    """
    if wraps and new <= _LOW:
        wrapped, low = old - (old & _LOW), old & _LOW
        if new >= low:
            return wrapped + new, None
        return wrapped + (1 << 32) + new, WRAPPED
    if new >= old:
        return new, None
    return old, NEGATIVE


def totals(marks: list[Mark], wraps: bool) -> list[Mark]:
    """Marks in time order with the counters as the NAS sent them, as running totals:
    a 32-bit counter (`wraps`) that went down wrapped."""
    out, total_in, total_out = [], 0, 0
    for mark in marks:
        total_in = _advance(total_in, mark.input_octets, wraps)[0]
        total_out = _advance(total_out, mark.output_octets, wraps)[0]
        out.append(Mark(mark.at, total_in, total_out))
    return out


def _details(state: SessionState, record: AcctRecord) -> dict:
    """Attributes the NAS may send in any record: keep what was known, add what is new."""
    return dict(
        nas_port=record.nas_port or state.nas_port,
        calling_station_id=record.calling_station_id or state.calling_station_id,
        called_station_id=record.called_station_id or state.called_station_id,
        framed_ip=record.framed_ip or state.framed_ip,
        framed_ipv6_prefix=record.framed_ipv6_prefix or state.framed_ipv6_prefix,
        delegated_ipv6_prefix=record.delegated_ipv6_prefix or state.delegated_ipv6_prefix)


def new_session(record: AcctRecord, assign: Assign) -> Step:
    t = record.event_time
    flags = list(record.flags)
    starting = record.status == "start"
    start = t if starting else t - record.session_time
    if not starting:
        flags.append(NO_START)
    stop = record.status == "stop"
    spans = ()
    if not starting:  # the whole session so far, at most MAX_SPAN of it
        spans = (_clip(Span(start, t, record.input_octets, record.output_octets), flags),)
    flags_t = tuple(flags)
    routing = record.routing
    attribution = assign(record, start)
    isp, reason = routing.isp, routing.reason
    if isp is None and attribution.isp is not None:
        isp, reason = attribution.isp, f"attributed by {attribution.reason}"
    after = SessionState(
        unique_id=record.unique_id, session_id=record.session_id, username=record.username,
        nas_address=record.nas_address, nas_port=record.nas_port,
        calling_station_id=record.calling_station_id,
        called_station_id=record.called_station_id, framed_ip=record.framed_ip,
        framed_ipv6_prefix=record.framed_ipv6_prefix,
        delegated_ipv6_prefix=record.delegated_ipv6_prefix,
        isp=isp, route_mode=routing.mode, route_reason=reason,
        lease_id=attribution.lease_id, status=CLOSED if stop else OPEN, start_time=start,
        update_time=t, stop_time=t if stop else None, session_time=record.session_time,
        input_octets=record.input_octets, output_octets=record.output_octets,
        input_packets=record.input_packets, output_packets=record.output_packets,
        terminate_cause=record.terminate_cause if stop else None,
        closed_by=BY_STOP if stop else None, flags=merge_flags(flags_t))
    # Online from its start, however it was first heard of; a Stop alone was online
    # from its start to its stop.
    online = start if not stop or start < t else None
    return Step(before=None, after=after, flags=flags_t, spans=spans, started=start,
                stopped=t if stop else None, online=online,
                offline=t if stop and online is not None else None)


def apply(state: SessionState | None, record: AcctRecord, assign: Assign,
          neighbours: Neighbours | None = None) -> Step:
    """The session after `record` (a Start, Interim-Update or Stop).

    `neighbours`: for a record older than the session's newest (and for a Start that
    comes after its session's first record), the records applied around it, so that
    its octets (or the start) can be put in place."""
    if state is None:
        return new_session(record, assign)
    t = record.event_time
    if record.status == "start":
        if state.status == CLOSED and t > (state.stop_time or t):
            fresh = new_session(record, assign)
            return dataclasses.replace(fresh, retire=state)
        return _late_start(state, record, neighbours)

    flags = list(record.flags)
    if t < state.update_time:
        return _late(state, record, flags, neighbours)
    changes = _details(state, record)
    online = offline = stopped = unstopped = None
    timed = True
    if state.status == CLOSED:
        if state.closed_by == BY_STOP:
            flags.append(AFTER_STOP)
            return _unchanged(state, flags)
        if state.closed_by == BY_REAPER and t > (state.stop_time or 0):
            # Reaped too early: the NAS still reports it, so it was never stale.
            flags.append(REOPENED)
            changes.update(status=OPEN, stop_time=None, closed_by=None, terminate_cause=None)
            online, unstopped = state.stop_time, state.stop_time
        else:  # closed by an Accounting-On/Off: take its octets, not its time
            flags.append(AFTER_CLOSE)
            timed = False

    totals = {}
    for name in ("input_octets", "output_octets", "input_packets", "output_packets"):
        wraps = not record.gigawords or name.endswith("packets")
        totals[name], flag = _advance(getattr(state, name), getattr(record, name), wraps)
        if flag:
            flags.append(flag)
    spans = (_clip(Span(state.update_time, t,
                        totals["input_octets"] - state.input_octets,
                        totals["output_octets"] - state.output_octets, timed), flags),)
    changes.update(totals, session_time=max(record.session_time, state.session_time),
                   update_time=t)
    if record.status == "stop":
        changes.update(terminate_cause=record.terminate_cause)
        if state.status == OPEN or online is not None:
            changes.update(status=CLOSED, stop_time=t, closed_by=BY_STOP)
            offline = stopped = t
        else:
            changes.update(closed_by=BY_STOP)
    flags = tuple(flags)
    after = _with(state, **changes, flags=merge_flags(state.flags, flags))
    return Step(before=state, after=after, flags=flags, spans=spans, stopped=stopped,
                unstopped=unstopped, online=online, offline=offline)


def _late(state: SessionState, record: AcctRecord, flags: list[str],
          neighbours: Neighbours | None) -> Step:
    """A record older than the session's newest: its octets go between its neighbours,
    where they would have gone had it come in order. Time is unchanged (the interval
    between the neighbours was counted already); so are the session's totals."""
    flags.append(OUT_OF_ORDER)
    if neighbours is None or neighbours.after is None:
        return _unchanged(state, flags)
    before = neighbours.before or Mark(state.start_time, 0, 0)
    after = neighbours.after
    t = record.event_time
    wraps = not record.gigawords
    # Its counters as totals, going on from the record before it; and the record after it
    # going on from this one: a 32-bit counter may have wrapped once more than it seemed
    # without it (both wrapped between the two neighbours).
    counters = []
    for name in ("input_octets", "output_octets"):
        mine, flag = _advance(getattr(before, name), getattr(record, name), wraps)
        theirs = getattr(after, name)
        if wraps:
            theirs = max(theirs, _advance(mine, theirs & _LOW, True)[0])
        counters.append((mine, theirs, flag))
    (in_mine, in_after, in_flag), (out_mine, out_after, out_flag) = counters
    fits = (before.at <= t <= after.at and NEGATIVE not in (in_flag, out_flag)
            and in_mine <= in_after and out_mine <= out_after)
    if not fits or after.at - before.at > MAX_SPAN:
        flags.append(OUT_OF_RANGE)
        return _unchanged(state, flags)
    spans = (
        Span(before.at, after.at, after.input_octets - before.input_octets,
             after.output_octets - before.output_octets, False, -1),
        Span(before.at, t, in_mine - before.input_octets, out_mine - before.output_octets,
             False),
        Span(t, after.at, in_after - in_mine, out_after - out_mine, False))
    step = _unchanged(state, flags)
    more_in, more_out = in_after - after.input_octets, out_after - after.output_octets
    if more_in or more_out:  # the wrap it revealed counts for every total after it
        step = dataclasses.replace(step, after=dataclasses.replace(
            step.after, input_octets=state.input_octets + more_in,
            output_octets=state.output_octets + more_out))
    return dataclasses.replace(step, spans=spans)


def _unchanged(state: SessionState, flags: list[str]) -> Step:
    flags_t = tuple(flags)
    return Step(before=state, after=dataclasses.replace(
        state, flags=merge_flags(state.flags, flags_t)), flags=flags_t)


def _late_start(state: SessionState, record: AcctRecord,
                neighbours: Neighbours | None) -> Step:
    """A Start after its session's first record: its time is the session's start. The
    session was counted from the start its first record's Acct-Session-Time gave; when
    the Start says otherwise, the start, the time online and the first interval move."""
    flags = list(record.flags)
    changes = _details(state, record)
    t = record.event_time
    if NO_START not in state.flags or LATE_START in state.flags:
        flags.append(REPEATED_START)
        flags_t = tuple(flags)
        return Step(before=state, after=dataclasses.replace(
            state, **changes, flags=merge_flags(state.flags, flags_t)), flags=flags_t)
    flags.append(LATE_START)
    flags_t = tuple(flags)
    old = state.start_time
    first = neighbours.after if neighbours is not None else None
    moved = {}
    if (t != old and first is not None and t <= first.at
            and first.at - min(old, t) <= MAX_SPAN):
        changes["start_time"] = t
        spans = (Span(old, first.at, first.input_octets, first.output_octets, True, -1),
                 Span(t, first.at, first.input_octets, first.output_octets, True))
        moved = dict(spans=spans, started=t, unstarted=old)
        counted_online = not (state.closed_by == BY_STOP and old == state.stop_time)
        if counted_online:
            moved.update(online=t, unonline=old)
        elif t < (state.stop_time or t):  # a Stop alone at its start: now it has a length
            moved.update(online=t, offline=state.stop_time)
    after = dataclasses.replace(state, **changes, flags=merge_flags(state.flags, flags_t))
    return Step(before=state, after=after, flags=flags_t, **moved)


def close(state: SessionState, at: int, closed_by: str, cause: str) -> Step:
    """End an open session without a Stop: the NAS restarted (Accounting-On/Off, its
    time counts up to `at`) or it went silent (the reaper: up to its last record)."""
    end = max(at, state.update_time) if closed_by == BY_NAS else state.update_time
    flags = (REAPED,) if closed_by == BY_REAPER else ()
    spans = (Span(state.update_time, end),) if end > state.update_time else ()
    after = dataclasses.replace(
        state, status=CLOSED, stop_time=end, closed_by=closed_by, terminate_cause=cause,
        session_time=max(state.session_time, end - state.start_time),
        flags=merge_flags(state.flags, flags))
    return Step(before=state, after=after, flags=flags, spans=spans, stopped=end,
                offline=end)


def unreap(state: SessionState, at: int, cause: str) -> Step:
    """A session the reaper closed at its last record whose NAS then restarted within
    the stale threshold of it (the Accounting-On/Off came late): it was not stale but
    ended with the NAS, at `at`."""
    end = max(at, state.update_time)
    spans = (Span(state.update_time, end),) if end > state.update_time else ()
    after = dataclasses.replace(
        state, status=CLOSED, stop_time=end, closed_by=BY_NAS, terminate_cause=cause,
        session_time=max(state.session_time, end - state.start_time),
        flags=merge_flags(tuple(f for f in state.flags if f != REAPED)))
    return Step(before=state, after=after, spans=spans, stopped=end,
                unstopped=state.stop_time, online=state.stop_time, offline=end)
