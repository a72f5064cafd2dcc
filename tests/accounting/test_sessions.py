"""One session's life, record by record, in any order."""

import pytest

from acct_support import T0, rec
from vpop.accounting import sessions as S


def no_lease(record, start):
    return S.Attribution(None)


def run(*records, state=None):
    steps = []
    for record in records:
        step = S.apply(state, record, no_lease)
        steps.append(step)
        state = step.after
    return state, steps


def test_start_interim_stop():
    state, steps = run(rec("start", t=T0, isp="isp-a"),
                       rec("interim", t=T0 + 300, session_time=300, octets_in=1000,
                           octets_out=3000, isp="isp-a"),
                       rec("stop", t=T0 + 400, session_time=400, octets_in=1500,
                           octets_out=4000, isp="isp-a"))
    assert (state.status, state.closed_by, state.terminate_cause) == ("closed", "stop",
                                                                      "User-Request")
    assert (state.start_time, state.update_time, state.stop_time) == (T0, T0 + 400, T0 + 400)
    assert (state.session_time, state.input_octets, state.output_octets) == (400, 1500, 4000)
    assert (state.isp, state.route_mode, state.flags) == ("isp-a", "proxy", ())
    assert [s.online for s in steps] == [T0, None, None]
    assert [s.offline for s in steps] == [None, None, T0 + 400]
    assert (steps[0].started, steps[2].stopped) == (T0, T0 + 400)
    assert [s.spans for s in steps] == [(), (S.Span(T0, T0 + 300, 1000, 3000),),
                                        (S.Span(T0 + 300, T0 + 400, 500, 1000),)]


def test_stop_before_its_start():
    state, steps = run(rec("stop", t=T0 + 600, session_time=600, octets_in=900),
                       rec("start", t=T0))
    assert state.status == "closed" and state.start_time == T0
    assert state.flags == (S.NO_START, S.LATE_START)
    assert steps[0].spans == (S.Span(T0, T0 + 600, 900, 0),)
    # online from its start to its stop, as its seconds count, though no Start came yet
    assert (steps[0].online, steps[0].offline) == (T0, T0 + 600)
    assert (steps[0].started, steps[0].stopped) == (T0, T0 + 600)
    # the Start agrees with the Stop's session time: nothing to move
    assert steps[1].spans == () and steps[1].started is None


def test_interim_without_start_opens_the_session_from_its_session_time():
    state, steps = run(rec("interim", t=T0 + 300, session_time=300, octets_in=10))
    assert (state.status, state.start_time, state.flags) == ("open", T0, (S.NO_START,))
    assert steps[0].online == T0  # online from its start, as its seconds count


def test_a_late_start_that_disagrees_moves_the_start_the_time_online_and_the_first_span():
    interim = rec("interim", t=T0 + 600, session_time=500, octets_in=10)
    state, steps = run(interim)
    assert state.start_time == T0 + 100
    step = S.apply(state, rec("start", t=T0), no_lease,
                   S.Neighbours(None, S.Mark(T0 + 600, 10, 0)))
    assert step.after.start_time == T0 and step.flags == (S.LATE_START,)
    assert (step.started, step.unstarted, step.online, step.unonline) == (
        T0, T0 + 100, T0, T0 + 100)
    assert step.spans == (S.Span(T0 + 100, T0 + 600, 10, 0, True, -1),
                          S.Span(T0, T0 + 600, 10, 0, True))


def test_a_late_interim_puts_its_octets_between_its_neighbours():
    state, _ = run(rec("start", t=T0),
                   rec("interim", t=T0 + 600, session_time=600, octets_in=600))
    late = rec("interim", t=T0 + 300, session_time=300, octets_in=100)
    step = S.apply(state, late, no_lease,
                   S.Neighbours(S.Mark(T0, 0, 0), S.Mark(T0 + 600, 600, 0)))
    assert step.flags == (S.OUT_OF_ORDER,)
    assert step.after.input_octets == 600 and step.after.update_time == T0 + 600
    assert step.spans == (S.Span(T0, T0 + 600, 600, 0, False, -1),
                          S.Span(T0, T0 + 300, 100, 0, False),
                          S.Span(T0 + 300, T0 + 600, 500, 0, False))
    # counters that do not fit between the neighbours: flagged, nothing moves
    odd = rec("interim", t=T0 + 300, session_time=300, octets_in=700, gigawords=True)
    step = S.apply(state, odd, no_lease,
                   S.Neighbours(S.Mark(T0, 0, 0), S.Mark(T0 + 600, 600, 0)))
    assert step.flags == (S.OUT_OF_ORDER, S.OUT_OF_RANGE) and step.spans == ()


def test_a_late_interim_that_shows_a_second_wrap_adds_it_to_the_totals():
    """In order: 3,900,000,000, then 100,000,000 (wrapped), then 3,950,000,000 (not less:
    no wrap seen). The middle one came last: the last one wrapped too."""
    first, last = S.Mark(T0 + 300, 3_900_000_000, 0), S.Mark(T0 + 900, 3_950_000_000, 0)
    state, _ = run(rec("start", t=T0),
                   rec("interim", t=T0 + 300, session_time=300, octets_in=3_900_000_000),
                   rec("interim", t=T0 + 900, session_time=900, octets_in=3_950_000_000))
    assert state.input_octets == 3_950_000_000
    late = rec("interim", t=T0 + 600, session_time=600, octets_in=100_000_000)
    step = S.apply(state, late, no_lease, S.Neighbours(first, last))
    assert step.after.input_octets == (2 << 32) + 3_950_000_000 - (1 << 32)
    assert [span.input_octets * span.sign for span in step.spans] == [
        -50_000_000, (1 << 32) + 100_000_000 - 3_900_000_000, 3_850_000_000]
    assert sum(span.input_octets * span.sign for span in step.spans) == 1 << 32


def test_the_records_after_a_wrap_go_on_from_the_wrapped_total():
    state, steps = run(rec("start", t=T0),
                       rec("interim", t=T0 + 300, session_time=300, octets_in=4_000_000_000),
                       rec("interim", t=T0 + 600, session_time=600, octets_in=100),
                       rec("interim", t=T0 + 900, session_time=900, octets_in=500),
                       rec("interim", t=T0 + 1200, session_time=1200, octets_in=4_100_000_000),
                       rec("interim", t=T0 + 1500, session_time=1500, octets_in=50))
    assert [s.flags for s in steps] == [(), (), (S.WRAPPED,), (), (), (S.WRAPPED,)]
    assert [s.spans[0].input_octets for s in steps[1:]] == [
        4_000_000_000, (1 << 32) + 100 - 4_000_000_000, 400, 4_100_000_000 - 500,
        (1 << 32) + 50 - 4_100_000_000]
    assert state.input_octets == (2 << 32) + 50


def test_repeated_and_reordered_interims_change_nothing():
    start = rec("start", t=T0)
    late = rec("interim", t=T0 + 600, session_time=600, octets_in=600)
    early = rec("interim", t=T0 + 300, session_time=300, octets_in=300)
    state, steps = run(start, late, early, late)
    assert (state.session_time, state.input_octets) == (600, 600)
    assert steps[2].flags == (S.OUT_OF_ORDER,) and steps[2].spans == ()
    # The same content again (a duplicate the store did not catch): no new octets.
    assert steps[3].spans == (S.Span(T0 + 600, T0 + 600, 0, 0),)


def test_a_32_bit_counter_that_wraps_without_gigawords():
    state, steps = run(rec("start", t=T0),
                       rec("interim", t=T0 + 300, session_time=300, octets_in=4_000_000_000),
                       rec("interim", t=T0 + 600, session_time=600, octets_in=500_000_000))
    assert state.input_octets == (1 << 32) + 500_000_000
    assert steps[2].flags == (S.WRAPPED,)
    assert steps[2].spans[0].input_octets == (1 << 32) + 500_000_000 - 4_000_000_000


def test_a_counter_that_goes_backwards_is_kept_and_flagged():
    state, steps = run(rec("start", t=T0),
                       rec("interim", t=T0 + 300, session_time=300, octets_in=5000,
                           gigawords=True),
                       rec("interim", t=T0 + 600, session_time=600, octets_in=100,
                           gigawords=True))
    assert state.input_octets == 5000
    assert steps[2].flags == (S.NEGATIVE,) and steps[2].spans[0].input_octets == 0
    # Without Gigawords the counter is 32 bits wide: any drop is a wrap.
    state, steps = run(rec("start", t=T0),
                       rec("interim", t=T0 + 300, session_time=300, octets_in=5000),
                       rec("interim", t=T0 + 600, session_time=600, octets_in=100))
    assert steps[2].flags == (S.WRAPPED,) and state.input_octets == (1 << 32) + 100


def test_records_after_the_stop_are_flagged_and_ignored():
    state, steps = run(rec("start", t=T0), rec("stop", t=T0 + 60, session_time=60),
                       rec("interim", t=T0 + 300, session_time=300, octets_in=99))
    assert steps[2].flags == (S.AFTER_STOP,) and state.input_octets == 0


def test_a_reused_session_id_after_the_stop_is_a_new_session():
    first, _ = run(rec("start", t=T0), rec("stop", t=T0 + 60, session_time=60))
    step = S.apply(first, rec("start", t=T0 + 3600), no_lease)
    assert step.retire == first
    assert (step.after.status, step.after.start_time, step.before) == ("open", T0 + 3600, None)


def test_closed_by_the_nas_rebooting_counts_time_to_the_reboot():
    state, _ = run(rec("start", t=T0), rec("interim", t=T0 + 300, session_time=300))
    step = S.close(state, T0 + 500, S.BY_NAS, "NAS-Reboot")
    assert (step.after.status, step.after.stop_time, step.after.session_time) == (
        "closed", T0 + 500, 500)
    assert step.spans == (S.Span(T0 + 300, T0 + 500),)
    assert step.offline == step.stopped == T0 + 500
    # Its late Stop still brings the octets, but not more time.
    late = S.apply(step.after, rec("stop", t=T0 + 450, session_time=450, octets_in=70),
                   no_lease)
    assert late.after.input_octets == 70 and late.spans[0].timed is False
    assert late.flags == (S.AFTER_CLOSE,) and late.offline is None


def test_reaped_too_early_the_session_comes_back():
    state, _ = run(rec("start", t=T0))
    reaped = S.close(state, T0 + 5000, S.BY_REAPER, "Stale-Session")
    assert (reaped.after.stop_time, reaped.spans, reaped.after.flags) == (T0, (), (S.REAPED,))
    back = S.apply(reaped.after, rec("interim", t=T0 + 6000, session_time=6000), no_lease)
    # never stale after all: online again from where the reaper took it off, throughout
    assert (back.after.status, back.online, back.unstopped) == ("open", T0, T0)
    assert back.spans == (S.Span(T0, T0 + 6000),)
    assert S.REOPENED in back.flags
    # ... or comes back with its Stop: online to it, its stop counted at the new time.
    stop = S.apply(reaped.after, rec("stop", t=T0 + 6000, session_time=6000), no_lease)
    assert (stop.after.status, stop.online, stop.offline) == ("closed", T0, T0 + 6000)
    assert (stop.stopped, stop.unstopped) == (T0 + 6000, T0)


def test_a_restart_within_the_threshold_of_a_reaped_session_ends_it_there():
    state, _ = run(rec("start", t=T0), rec("interim", t=T0 + 300, session_time=300))
    reaped = S.close(state, T0 + 2000, S.BY_REAPER, "Stale-Session")
    step = S.unreap(reaped.after, T0 + 900, "NAS-Reboot")
    assert (step.after.closed_by, step.after.stop_time, step.after.flags) == (
        S.BY_NAS, T0 + 900, ())
    assert (step.online, step.offline, step.unstopped, step.stopped) == (
        T0 + 300, T0 + 900, T0 + 300, T0 + 900)
    assert step.spans == (S.Span(T0 + 300, T0 + 900),)


def test_a_very_long_span_is_clipped_and_flagged():
    state, steps = run(rec("stop", t=T0, session_time=S.MAX_SPAN + 100))
    assert steps[0].spans[0].start == T0 - S.MAX_SPAN
    assert S.LONG_SPAN in state.flags


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0)])
def test_any_order_ends_with_the_same_counters(order):
    records = [rec("start", t=T0),
               rec("interim", t=T0 + 300, session_time=300, octets_in=300, octets_out=30),
               rec("stop", t=T0 + 900, session_time=900, octets_in=900, octets_out=90)]
    state, steps = run(*(records[i] for i in order))
    assert (state.status, state.start_time, state.stop_time) == ("closed", T0, T0 + 900)
    assert (state.session_time, state.input_octets, state.output_octets) == (900, 900, 90)
    assert sum(span.input_octets for s in steps for span in s.spans) == 900
