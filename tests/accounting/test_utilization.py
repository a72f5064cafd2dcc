"""Utilization events derived from a lease's sessions online and octets, and the clock."""

from acct_support import T0
from vpop.accounting.leases import LeaseTerms
from vpop.accounting.utilization import (OVER_BANDWIDTH, OVER_SESSIONS, OVER_VOLUME,
                                         UNDER_SESSIONS, Event, EventClock, bandwidth_capacity,
                                         bandwidth_events, session_events, under_threshold,
                                         volume_event)

LEASE = LeaseTerms(id=1, name="berlin", isp="isp-a", nas=frozenset({"192.0.2.1"}), sessions=4,
                   under_percent=50, under_window=3600, bandwidth_kbps=80,
                   volume_bytes=10_000_000, starts=T0 - 86_400)


def event(kind, start, end, peak, limit):
    return Event(lease_id=1, isp="isp-a", kind=kind, start=start, end=end, peak=peak,
                 limit=limit)


def levels(*pairs):
    return [(T0 + at, level) for at, level in pairs]


def test_thresholds():
    assert under_threshold(LEASE) == 2
    assert bandwidth_capacity(LEASE) == 3_000_000  # 80 kbit/s for 5 minutes, in octets


def test_over_sessions_from_the_first_second_over_to_the_first_back_at_the_limit():
    series = levels((10, 4), (20, 5), (30, 6), (40, 5), (50, 4), (60, 5))
    assert session_events(LEASE, OVER_SESSIONS, T0, 3, series, T0 + 100, T0) == [
        event(OVER_SESSIONS, T0 + 20, T0 + 50, 6, 4),
        event(OVER_SESSIONS, T0 + 60, None, 5, 4)]


def test_over_sessions_going_on_where_the_series_begins():
    assert session_events(LEASE, OVER_SESSIONS, T0, 5, levels((30, 4)), T0 + 100, T0) == [
        event(OVER_SESSIONS, T0, T0 + 30, 5, 4)]


def test_under_sessions_needs_its_window():
    series = levels((0, 1), (1800, 0), (3000, 2), (4000, 1))
    # below 2 for 50 minutes only, then again from 4000 on: not an hour yet at 7599
    assert session_events(LEASE, UNDER_SESSIONS, T0, 3, series, T0 + 7599, T0) == []
    assert session_events(LEASE, UNDER_SESSIONS, T0, 3, series, T0 + 7600, T0) == [
        event(UNDER_SESSIONS, T0 + 4000, None, 1, 2)]
    ended = series + levels((9000, 0), (9500, 3))
    assert session_events(LEASE, UNDER_SESSIONS, T0, 3, ended, T0 + 9600, T0) == [
        event(UNDER_SESSIONS, T0 + 4000, T0 + 9500, 0, 2)]


def test_a_lease_nobody_uses_is_under_used_from_the_first_record_stored():
    assert session_events(LEASE, UNDER_SESSIONS, 0, 0, [], T0 + 600, None) == []
    assert session_events(LEASE, UNDER_SESSIONS, 0, 0, [], T0 + 3600 + 299, T0 + 300) == []
    assert session_events(LEASE, UNDER_SESSIONS, 0, 0, [], T0 + 3600 + 300, T0 + 300) == [
        event(UNDER_SESSIONS, T0 + 300, None, 0, 2)]


def test_under_use_ends_with_the_lease():
    lease = LeaseTerms(**{**{f: getattr(LEASE, f) for f in LEASE.__slots__},
                          "ends": T0 + 7200})
    got = session_events(lease, UNDER_SESSIONS, 0, 0, [], T0 + 9000, T0)
    assert got == [event(UNDER_SESSIONS, T0, T0 + 7200, 0, 2)]


def test_over_bandwidth_from_the_first_bucket_over_to_the_end_of_the_last():
    octets = [(T0, 3_000_000), (T0 + 300, 6_000_000), (T0 + 600, 4_500_000),
              (T0 + 900, 10)]  # at the capacity is not over
    # the bucket after the last one over may still get interims: not ended yet
    assert bandwidth_events(LEASE, octets, T0 + 900 + 300 + 299, 300) == [
        event(OVER_BANDWIDTH, T0 + 300, None, 160, 80)]
    assert bandwidth_events(LEASE, octets, T0 + 900 + 300 + 300, 300) == [
        event(OVER_BANDWIDTH, T0 + 300, T0 + 900, 160, 80)]
    gap = octets + [(T0 + 1200, 3_000_001)]
    assert [e.start for e in bandwidth_events(LEASE, gap, T0 + 9000, 300)] == [
        T0 + 300, T0 + 1200]


def test_over_volume_from_the_5_minutes_that_crossed_to_the_end_of_the_month():
    octets = [(T0, 9_000_000), (T0 + 300, 1_000_001), (T0 + 600, 2_000_000)]
    assert volume_event(LEASE, T0, octets, T0 + 900) == event(
        OVER_VOLUME, T0 + 300, None, 12_000_001, 10_000_000)
    assert volume_event(LEASE, T0, octets, T0 + 31 * 86_400).end == T0 + 31 * 86_400  # April
    assert volume_event(LEASE, T0, octets[:1], T0 + 900) is None


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
