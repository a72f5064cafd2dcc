"""The utilization monitor, observation by observation, and its clock."""

from acct_support import T0
from vpop.accounting.leases import LeaseTerms
from vpop.accounting.utilization import (OVER_BANDWIDTH, OVER_SESSIONS, OVER_VOLUME,
                                         UNDER_SESSIONS, Event, EventClock, Monitor,
                                         bandwidth_capacity, under_threshold)

LEASE = LeaseTerms(id=1, name="berlin", isp="isp-a", nas=frozenset({"192.0.2.1"}), sessions=4,
                   under_percent=50, under_window=3600, bandwidth_kbps=80,
                   volume_bytes=10_000_000, starts=T0 - 86_400)


def monitor(conditions=()):
    return Monitor({1: LEASE}, conditions, settle=300)


def event(kind, start, end, peak, limit):
    return Event(lease_id=1, isp="isp-a", kind=kind, start=start, end=end, peak=peak,
                 limit=limit)


def test_thresholds():
    assert under_threshold(LEASE) == 2
    assert bandwidth_capacity(LEASE) == 3_000_000  # 80 kbit/s for 5 minutes, in octets


def test_over_sessions_starts_and_ends_with_the_sessions_that_cross():
    m = monitor()
    for at, level in ((10, 4), (20, 5), (30, 6), (40, 5), (50, 4), (60, 5)):
        m.sessions(1, T0 + at, level)
    assert m.events[(1, OVER_SESSIONS, T0 + 20)] == event(OVER_SESSIONS, T0 + 20, T0 + 50, 6, 4)
    assert m.events[(1, OVER_SESSIONS, T0 + 60)] == event(OVER_SESSIONS, T0 + 60, None, 5, 4)


def test_under_sessions_needs_its_window():
    m = monitor()
    m.sessions(1, T0, 1)  # below 2 from here ...
    m.sessions(1, T0 + 1800, 0)
    m.sessions(1, T0 + 3000, 2)  # ... for 50 minutes only: no event
    assert m.events == {}
    m.sessions(1, T0 + 4000, 1)
    m.advance(T0 + 4000 + 3599, {1: 1}, T0)
    assert m.events == {}
    m.advance(T0 + 4000 + 3600, {1: 1}, T0)  # an hour: recorded, from when it began
    assert m.events[(1, UNDER_SESSIONS, T0 + 4000)] == event(UNDER_SESSIONS, T0 + 4000, None,
                                                            1, 2)
    m.sessions(1, T0 + 9000, 0)
    m.sessions(1, T0 + 9500, 3)
    assert m.events[(1, UNDER_SESSIONS, T0 + 4000)] == event(UNDER_SESSIONS, T0 + 4000,
                                                            T0 + 9500, 0, 2)


def test_under_use_that_lasted_its_window_is_recorded_even_without_a_tick_in_between():
    m = monitor()
    m.sessions(1, T0, 1)
    m.sessions(1, T0 + 7200, 3)
    assert list(m.events.values()) == [event(UNDER_SESSIONS, T0, T0 + 7200, 1, 2)]


def test_a_lease_nobody_uses_is_under_used_from_the_first_record_stored():
    m = monitor()
    m.advance(T0 + 600, {}, None)  # nothing stored yet: nothing to say
    assert m.changed == {}
    m.advance(T0 + 600, {}, T0 + 300)
    m.advance(T0 + 3600 + 299, {}, T0 + 300)
    assert m.events == {}
    m.advance(T0 + 3600 + 300, {}, T0 + 300)
    assert list(m.events.values()) == [event(UNDER_SESSIONS, T0 + 300, None, 0, 2)]


def test_over_bandwidth_from_the_first_bucket_over_to_the_end_of_the_last():
    m = monitor()
    m.bandwidth(1, T0, 3_000_000)  # at the capacity: not over
    m.bandwidth(1, T0 + 300, 3_000_001)
    m.bandwidth(1, T0 + 300, 6_000_000)
    m.bandwidth(1, T0 + 600, 4_500_000)
    m.advance(T0 + 900 + 300 + 299, {1: 3}, T0)  # the next bucket's interims may still come
    assert m.events[(1, OVER_BANDWIDTH, T0 + 300)].end is None
    m.advance(T0 + 900 + 300 + 300, {1: 3}, T0)
    assert m.events[(1, OVER_BANDWIDTH, T0 + 300)] == event(OVER_BANDWIDTH, T0 + 300, T0 + 900,
                                                           160, 80)


def test_over_volume_from_the_crossing_to_the_end_of_the_month():
    m = monitor()
    m.volume(1, T0 + 100, T0, 9_000_000)
    m.volume(1, T0 + 200, T0, 10_000_001)
    m.volume(1, T0 + 300, T0, 12_000_000)
    assert m.events[(1, OVER_VOLUME, T0 + 200)] == event(OVER_VOLUME, T0 + 200, None,
                                                        12_000_000, 10_000_000)
    m.advance(T0 + 31 * 86_400, {1: 3}, T0)  # April
    assert m.events[(1, OVER_VOLUME, T0 + 200)].end == T0 + 31 * 86_400


def test_state_carries_over_between_batches():
    first = monitor()
    first.sessions(1, T0, 5)
    second = monitor(first.conditions.values())
    second.sessions(1, T0 + 60, 4)
    assert second.events[(1, OVER_SESSIONS, T0)] == event(OVER_SESSIONS, T0, T0 + 60, 5, 4)


def test_the_event_clock_follows_event_time_and_then_the_wall_clock():
    clock = EventClock()
    assert clock.now(1000.0) is None
    clock.observe(T0, 1000.0)
    assert clock.now(1000.5) == T0
    assert clock.now(1010.0) == T0 + 10  # nothing newer: time goes on
    clock.observe(T0 + 3, 1010.0)  # older than the clock: ignored
    assert clock.now(1010.0) == T0 + 10
    clock.observe(T0 + 3600, 1011.0)  # a replay at speed jumps ahead
    assert clock.now(1011.0) == T0 + 3600
