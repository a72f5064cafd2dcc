"""One session's state as accounting records arrive, without I/O.

``apply(state, record)`` returns a ``Step``: the state to store, the record's
flags for its history row, the activity to roll up (``Span``s of time and
octets, session starts and stops) and whether the session started or stopped
counting as online. Records may come twice, late or in any order:

* a retransmission is recognised by the store (same content key) before this runs;
* a Stop or Interim without a Start opens the session from Acct-Session-Time and
  flags it ``no-start``; a Start that arrives later only corrects the start time;
* a record older than what is stored changes nothing (counters only grow) and is
  flagged ``out-of-order``;
* a counter that goes down is a 32-bit wrap when the NAS sends no Gigawords and the
  drop is more than half the range (``wrapped``), else it is kept and flagged
  ``negative``;
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
    """Activity between two event times: octets, and session time unless `timed` is off."""
    start: int
    end: int
    input_octets: int = 0
    output_octets: int = 0
    timed: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    before: SessionState | None
    after: SessionState
    flags: tuple[str, ...] = ()  # of this record
    spans: tuple[Span, ...] = ()
    started: int | None = None  # a session start to count, at this time
    stopped: int | None = None  # a session stop to count, at this time
    unstopped: int | None = None  # a stop counted earlier that was wrong (reaped too early)
    online: int | None = None  # the session began counting as online at this time
    offline: int | None = None  # ... or stopped counting at this time
    retire: SessionState | None = None  # a finished session whose key the NAS reused


Assign = Callable[[AcctRecord, int], int | None]  # (record, start time) -> lease id

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
    """The new counter total and a flag: a 32-bit counter wrapped, or went backwards."""
    if new >= old:
        return new, None
    if wraps and (old & _LOW) - (new & _LOW) > 1 << 31:
        total = (old >> 32 << 32) + (new & _LOW)
        return (total if total > old else total + (1 << 32)), WRAPPED
    return old, NEGATIVE


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
    after = SessionState(
        unique_id=record.unique_id, session_id=record.session_id, username=record.username,
        nas_address=record.nas_address, nas_port=record.nas_port,
        calling_station_id=record.calling_station_id,
        called_station_id=record.called_station_id, framed_ip=record.framed_ip,
        framed_ipv6_prefix=record.framed_ipv6_prefix,
        delegated_ipv6_prefix=record.delegated_ipv6_prefix,
        isp=routing.isp, route_mode=routing.mode, route_reason=routing.reason,
        lease_id=assign(record, start), status=CLOSED if stop else OPEN, start_time=start,
        update_time=t, stop_time=t if stop else None, session_time=record.session_time,
        input_octets=record.input_octets, output_octets=record.output_octets,
        input_packets=record.input_packets, output_packets=record.output_packets,
        terminate_cause=record.terminate_cause if stop else None,
        closed_by=BY_STOP if stop else None, flags=merge_flags(flags_t))
    return Step(before=None, after=after, flags=flags_t, spans=spans, started=start,
                stopped=t if stop else None, online=None if stop else t)


def apply(state: SessionState | None, record: AcctRecord, assign: Assign) -> Step:
    """The session after `record` (a Start, Interim-Update or Stop)."""
    if state is None:
        return new_session(record, assign)
    t = record.event_time
    if record.status == "start":
        if state.status == CLOSED and t > (state.stop_time or t):
            fresh = new_session(record, assign)
            return dataclasses.replace(fresh, retire=state)
        return _late_start(state, record)

    flags = list(record.flags)
    # Older than what is stored. (A session the NAS did not stop has its time extended
    # to its closing: only its last record's time tells.)
    older = t < state.update_time or (
        state.closed_by in (None, BY_STOP) and record.session_time < state.session_time)
    changes = _details(state, record)
    online = offline = stopped = unstopped = None
    timed = True
    if state.status == CLOSED:
        if state.closed_by == BY_STOP or older:
            flags.append(AFTER_STOP if state.closed_by == BY_STOP else OUT_OF_ORDER)
            return _unchanged(state, flags)
        if state.closed_by == BY_REAPER and t > (state.stop_time or 0):
            # Reaped too early: the NAS still reports it.
            flags.append(REOPENED)
            changes.update(status=OPEN, stop_time=None, closed_by=None, terminate_cause=None)
            online, unstopped = t, state.stop_time
        else:  # closed by an Accounting-On/Off: take its octets, not its time
            flags.append(AFTER_CLOSE)
            timed = False
    elif older:
        flags.append(OUT_OF_ORDER)
        return _unchanged(state, flags)

    totals = {}
    for name in ("input_octets", "output_octets", "input_packets", "output_packets"):
        wraps = not record.gigawords or name.endswith("packets")
        totals[name], flag = _advance(getattr(state, name), getattr(record, name), wraps)
        if flag:
            flags.append(flag)
    spans = (_clip(Span(state.update_time, max(t, state.update_time),
                        totals["input_octets"] - state.input_octets,
                        totals["output_octets"] - state.output_octets, timed), flags),)
    changes.update(totals, session_time=max(record.session_time, state.session_time),
                   update_time=max(t, state.update_time))
    if record.status == "stop":
        changes.update(terminate_cause=record.terminate_cause)
        if state.status == OPEN or online is not None:
            changes.update(status=CLOSED, stop_time=t, closed_by=BY_STOP)
            offline = stopped = t
            if online is not None:  # reopened and stopped at once: never online again
                online = offline = None
        else:
            changes.update(closed_by=BY_STOP)
    flags = tuple(flags)
    after = _with(state, **changes, flags=merge_flags(state.flags, flags))
    return Step(before=state, after=after, flags=flags, spans=spans, stopped=stopped,
                unstopped=unstopped, online=online, offline=offline)


def _unchanged(state: SessionState, flags: list[str]) -> Step:
    flags_t = tuple(flags)
    return Step(before=state, after=dataclasses.replace(
        state, flags=merge_flags(state.flags, flags_t)), flags=flags_t)


def _late_start(state: SessionState, record: AcctRecord) -> Step:
    flags = list(record.flags)
    changes = _details(state, record)
    if NO_START in state.flags and LATE_START not in state.flags:
        flags.append(LATE_START)  # the Start came after its Interim or Stop: its time is right
        changes["start_time"] = record.event_time
    else:
        flags.append(REPEATED_START)
    flags_t = tuple(flags)
    return Step(before=state, after=dataclasses.replace(
        state, **changes, flags=merge_flags(state.flags, flags_t)), flags=flags_t)


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
