"""Event time per NAS, and what it decides, without I/O.

There is one clock, event time. Each NAS has its own: the newest event time applied
from it (Accounting-On/Off included), and when it last restarted. "Now" is the newest of
all, or a later one the caller knows (an event clock that moves on with the wall clock
while nothing newer arrives). A NAS that has been silent for longer than the stale
threshold goes by "now".

From these follow, the same whatever order and batches records come in:

* a session is stale once its NAS's clock has passed its last record by more than the
  threshold; the reaper closes it as of that last record;
* an Accounting-On/Off at T ends the NAS's sessions last heard of before T: at T when
  that was within the threshold, else they were stale and end at their last record; a
  session the reaper took within the threshold before T ends at T after all;
* a record's time is implausible (kept out of the figures) when it lies before its
  session's start, when it had to be taken from the arrival (the NAS's clock was
  unusable) and is far from the NAS's clock, or when it is more than MAX_SPAN behind it.
"""

from __future__ import annotations

from collections.abc import Iterable

from vpop.accounting import sessions as S
from vpop.accounting.records import BAD_TIMESTAMP, AcctRecord

NAS_REBOOT = "NAS-Reboot"
STALE = "Stale-Session"


class NasClocks:
    def __init__(self, stored: Iterable[tuple[str, int | None, int | None]], *,
                 stale: int | None, now: int | None = None):
        """stored: (NAS, newest event time, last restart); stale: the threshold in
        seconds, None when the reaper is off; now: the caller's event clock, if any."""
        self.stale = stale
        self._clocks: dict[str, list[int | None]] = {
            nas: [newest, restarted] for nas, newest, restarted in stored}
        self.moved: set[str] = set()  # NASes whose clock this batch moved
        newest = max((c[0] for c in self._clocks.values() if c[0] is not None), default=None)
        self.now = max(filter(None, (newest, now)), default=None)

    def observe(self, nas: str, t: int, *, restart: bool = False) -> None:
        clock = self._clocks.setdefault(nas, [t, None])
        clock[0] = t if clock[0] is None else max(clock[0], t)
        if restart:
            clock[1] = t if clock[1] is None else max(clock[1], t)
        self.moved.add(nas)
        self.now = t if self.now is None else max(self.now, t)

    def newest(self, nas: str) -> int | None:
        return (self._clocks.get(nas) or [None])[0]

    def restarted(self, nas: str) -> int | None:
        return (self._clocks.get(nas) or [None, None])[1]

    def rows(self, nases: Iterable[str]) -> list[tuple[str, int, int | None]]:
        """(NAS, newest, last restart) to store."""
        return [(nas, *self._clocks[nas]) for nas in sorted(nases)]

    def clock(self, nas: str) -> int | None:
        """The NAS's clock: its newest event time; "now" once it has been silent longer
        than the stale threshold."""
        newest = self.newest(nas)
        if newest is None or self.stale is None or self.now - newest > self.stale:
            return self.now
        return newest

    def stale_before(self) -> int | None:
        """No session last heard of at or after this can be stale yet."""
        if self.stale is None or self.now is None:
            return None
        return self.now - self.stale

    def is_stale(self, state: S.SessionState) -> bool:
        if state.status != S.OPEN or self.stale is None:
            return False
        clock = self.clock(state.nas_address)
        return clock is not None and state.update_time < clock - self.stale

    def reap(self, state: S.SessionState) -> S.Step:
        return S.close(state, state.update_time, S.BY_REAPER, STALE)

    def end_at_restart(self, state: S.SessionState, at: int) -> S.Step:
        """An open session whose NAS restarted at `at`."""
        if self.stale is None or at - state.update_time <= self.stale:
            return S.close(state, at, S.BY_NAS, NAS_REBOOT)
        return self.reap(state)  # silent longer than the threshold before it: stale

    def reaped_but_restarted(self, state: S.SessionState, at: int) -> bool:
        """The reaper took it, but its NAS restarted within the threshold of its last
        record: it ends with the restart (sessions.unreap)."""
        return (state.closed_by == S.BY_REAPER and self.stale is not None
                and state.update_time < at and at - state.update_time <= self.stale)

    def implausible(self, state: S.SessionState | None, record: AcctRecord) -> bool:
        t = record.event_time
        if state is not None and record.status != "start" and t < state.start_time:
            return True
        newest = self.newest(record.nas_address)
        if newest is None:
            return False
        if BAD_TIMESTAMP in record.flags and abs(t - newest) > (self.stale or S.MAX_SPAN):
            return True
        return t < newest - S.MAX_SPAN
