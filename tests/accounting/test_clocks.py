"""The NASes' event-time clocks and what they decide."""

from acct_support import NAS, T0, rec
from vpop.accounting import sessions as S
from vpop.accounting.clocks import NasClocks

OTHER = "192.0.2.2"


def session(t, nas=NAS, sid="s"):
    return S.apply(None, rec("start", sid, t, nas=nas), lambda r, s: S.Attribution(None)).after


def test_a_session_is_stale_by_its_own_nas_clock():
    clocks = NasClocks([], stale=900)
    clocks.observe(NAS, T0 + 900)
    clocks.observe(OTHER, T0 + 1500)  # another NAS ahead does not reap this one's
    assert clocks.clock(NAS) == T0 + 900
    assert not clocks.is_stale(session(T0))
    clocks.observe(NAS, T0 + 901)
    assert clocks.is_stale(session(T0))
    reaped = clocks.reap(session(T0))
    assert (reaped.after.closed_by, reaped.after.stop_time) == (S.BY_REAPER, T0)


def test_a_silent_nas_goes_by_now():
    clocks = NasClocks([(NAS, T0 + 100, None), (OTHER, T0 + 1000, None)], stale=900)
    assert clocks.clock(NAS) == T0 + 100  # silent for 900 s: not longer than the threshold
    clocks.observe(OTHER, T0 + 1001)
    assert clocks.clock(NAS) == T0 + 1001
    assert clocks.is_stale(session(T0 + 100))


def test_the_caller_event_clock_counts_when_it_is_later():
    clocks = NasClocks([(NAS, T0, None)], stale=900, now=T0 + 2000)
    assert (clocks.now, clocks.clock(NAS), clocks.stale_before()) == (
        T0 + 2000, T0 + 2000, T0 + 1100)


def test_a_restart_ends_what_it_finds_within_the_threshold_else_it_was_stale():
    clocks = NasClocks([], stale=900)
    near = clocks.end_at_restart(session(T0 + 100), T0 + 1000)
    assert (near.after.closed_by, near.after.stop_time) == (S.BY_NAS, T0 + 1000)
    far = clocks.end_at_restart(session(T0), T0 + 1000)
    assert (far.after.closed_by, far.after.stop_time) == (S.BY_REAPER, T0)
    reaped = clocks.reap(session(T0 + 200)).after
    assert clocks.reaped_but_restarted(reaped, T0 + 1000)
    assert not clocks.reaped_but_restarted(reaped, T0 + 1101)


def test_without_a_reaper_nothing_is_stale_and_a_restart_ends_everything_it_finds():
    clocks = NasClocks([(NAS, T0 + 10 ** 6, None)], stale=None)
    assert not clocks.is_stale(session(T0)) and clocks.stale_before() is None
    assert clocks.end_at_restart(session(T0), T0 + 10 ** 6).after.closed_by == S.BY_NAS


def test_implausible_times():
    clocks = NasClocks([(NAS, T0 + 86_400, None)], stale=900)
    state = session(T0 + 86_000)
    assert clocks.implausible(state, rec("interim", "s", T0 + 85_000))  # before its start
    assert not clocks.implausible(state, rec("interim", "s", T0 + 86_300))
    arrival = rec("interim", "s", T0 + 90 * 86_400, flags=("bad-timestamp",))
    assert clocks.implausible(state, arrival)  # its arrival, far from the NAS's clock
    near = rec("interim", "s", T0 + 86_500, flags=("bad-timestamp",))
    assert not clocks.implausible(state, near)
    assert clocks.implausible(None, rec("start", "x", T0 + 86_400 - S.MAX_SPAN - 1))
    assert not clocks.implausible(None, rec("start", "y", T0, nas=OTHER))  # no clock yet
