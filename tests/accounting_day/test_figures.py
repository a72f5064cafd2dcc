"""The expected figures on a small day worked out by hand, so that the computation the
replayed day is judged by is itself checked."""

from __future__ import annotations

import pytest

from accounting_day.figures import (NO_LEASE, OPEN, Isp, Lease, PortRange, differences,
                                    event_differences, expected_figures, iso, parse,
                                    routed_isp, sessions_of, spread)

B = 1_772_413_200  # 2026-03-02T01:00:00Z, a bucket boundary
NAS, OTHER_NAS = "10.0.0.1", "10.0.0.2"
ISPS = (Isp(name="isp-a", realms=("@a.example",)), Isp(name="isp-b", realms=("@b.example",)))
LEASES = (
    Lease(name="la", isp="isp-a", nas=(NAS,), sessions=1, under_percent=100, under_window=600,
          starts=B - 86_400),
    Lease(name="lp", isp="isp-b", ports=(PortRange(nas=NAS, first=1, last=10),), sessions=1,
          under_percent=100, under_window=60, starts=B - 86_400),
)
CLASS_A = "vpop1;isp=isp-a;mode=local;reason=test"
CLASS_B = "vpop1;isp=isp-b;mode=local;reason=test"


def record(status, sid, user, t, *, nas=NAS, port=None, routing=None, delay=None,
           session_time=None, octets=None, gigawords=None):
    pairs = [("Acct-Status-Type", status), ("NAS-IP-Address", nas)]
    if sid is not None:
        pairs += [("Acct-Session-Id", sid), ("User-Name", user), ("NAS-Port", port)]
    if routing is not None:
        pairs.append(("Class", routing))
    pairs.append(("Event-Timestamp", t + (delay or 0)))
    if delay is not None:
        pairs.append(("Acct-Delay-Time", delay))
    if session_time is not None:
        pairs.append(("Acct-Session-Time", session_time))
    if octets is not None:
        pairs += [("Acct-Input-Octets", octets[0]), ("Acct-Output-Octets", octets[1])]
    if gigawords is not None:
        pairs += [("Acct-Input-Gigawords", gigawords[0]),
                  ("Acct-Output-Gigawords", gigawords[1])]
    return tuple(pairs)


S1 = [  # Class isp-a, port 20: lease la (isp-a's lease of the whole NAS)
    record("Start", "s1", "x", B + 100, port=20, routing=CLASS_A, delay=10),
    record("Interim-Update", "s1", "x", B + 400, port=20, routing=CLASS_A, session_time=300,
           octets=(1000, 600), gigawords=(0, 0)),
    record("Stop", "s1", "x", B + 700, port=20, routing=CLASS_A, session_time=600,
           octets=(1600, 900), gigawords=(0, 0)),
]
S2 = [  # realm of isp-b, port 5: lease lp; no Gigawords, the input counter wraps
    record("Start", "s2", "y@b.example", B + 250, port=5),
    record("Interim-Update", "s2", "y@b.example", B + 550, port=5, session_time=300,
           octets=(4_000_000_000, 0)),
    record("Interim-Update", "s2", "y@b.example", B + 850, port=5, session_time=600,
           octets=(100, 0)),
    record("Interim-Update", "s2", "y@b.example", B + 1150, port=5, session_time=900,
           octets=(200, 0)),
]
S3 = [  # neither, port 7: the port lease lp before the whole-NAS lease la; goes stale
    record("Start", "s3", "z", B, port=7),
    record("Interim-Update", "s3", "z", B + 300, port=7, session_time=300, octets=(0, 0)),
]
S6 = [  # Class isp-b, port 20: isp-b leases no such port, so no lease; no time at all
    record("Start", "s6", "w", B + 1000, port=20, routing=CLASS_B),
    record("Stop", "s6", "w", B + 1000, port=20, routing=CLASS_B, session_time=0,
           octets=(50, 0), gigawords=(0, 0)),
]
S4 = [  # another NAS, leased by nobody, a realm of no ISP; still open at the end
    record("Start", "s4", "v@nowhere.example", B + 600, nas=OTHER_NAS, port=1),
    record("Interim-Update", "s4", "v@nowhere.example", B + 900, nas=OTHER_NAS, port=1,
           session_time=300, octets=(5, 7), gigawords=(1, 0)),
]
REBOOT = record("Accounting-On", None, None, B + 1650)
# s1's interim again (a retransmission): counted once.
DAY = [*S3, *S1, S1[1], *S2, *S4, *S6, REBOOT]


def rows(figures, by):
    return {(b, g): r for (b, g), r in figures.rows(by).items()}


def at(offset: int) -> str:
    return iso(B + offset)


def row(starts=0, stops=0, seconds=0, octets_in=0, octets_out=0, peak=0):
    return {"starts": starts, "stops": stops, "session_seconds": seconds,
            "input_octets": octets_in, "output_octets": octets_out, "online_peak": peak}


def test_how_each_session_ends():
    sessions, clock, first = sessions_of(DAY)
    ends = {s.session_id: (s.start - B, s.end if s.end == OPEN else s.end - B, s.ended_by)
            for s in sessions}
    assert ends == {
        "s1": (100, 700, "stop"),  # event time: Event-Timestamp minus Acct-Delay-Time
        "s2": (250, 1650, "nas-reboot"),  # Accounting-On 500 s after its last record
        "s3": (0, 300, "stale"),  # the Accounting-On came 1350 s after its last record
        "s4": (600, OPEN, "open"),  # its NAS's clock is its own newest record: 900
        "s6": (1000, 1000, "stop"),
    }
    assert (clock, first) == (B + 1650, B)


def test_a_nas_silent_beyond_the_threshold_takes_the_newest_clock_of_all():
    later = record("Accounting-On", None, None, B + 1801, nas="10.0.0.9")
    ended = {s.session_id: s.ended_by for s in sessions_of([*S4, later])[0]}
    assert ended == {"s4": "stale"}  # 901 s silent: clock B + 1801 passed 900 + 900
    just = record("Accounting-On", None, None, B + 1800, nas="10.0.0.9")
    assert {s.session_id: s.ended_by for s in sessions_of([*S4, just])[0]} == {"s4": "open"}


def test_five_minute_rows_by_nas():
    figures = expected_figures(DAY, ISPS, LEASES)
    wrapped = (1 << 32) + 200  # s2's input: 4,000,000,000, then 100 and 200 after a wrap
    assert rows(figures, "nas") == {
        # s3 from 0, s1 from 100 (666 = floor(1000 x 200/300) of its first interim's
        # input), s2 from 250 (floor(4e9 x 50/300)); three online from 250
        (at(0), NAS): row(starts=3, seconds=300 + 200 + 50, octets_in=666 + 666_666_666,
                          octets_out=400, peak=3),
        # s3 stale at its last record, 300; s2's wrap: 294,967,396 over 550-850
        (at(300), NAS): row(stops=1, seconds=300 + 300,
                            octets_in=334 + 400 + 3_333_333_334 + 49_161_232,
                            octets_out=200 + 200, peak=2),
        (at(600), NAS): row(stops=1, seconds=100 + 300, octets_in=200 + 245_806_164 + 16,
                            octets_out=100, peak=2),
        # s6 starts and stops at 1000 with 50 octets: all in that bucket
        (at(900), NAS): row(starts=1, stops=1, seconds=300, octets_in=84 + 50, peak=1),
        (at(1200), NAS): row(seconds=300, peak=1),
        (at(1500), NAS): row(stops=1, seconds=150, peak=1),  # the Accounting-On at 1650
        # s4 open: time up to its last record, online through the end of the data
        (at(600), OTHER_NAS): row(starts=1, seconds=300, octets_in=(1 << 32) + 5,
                                  octets_out=7, peak=1),
        (at(900), OTHER_NAS): row(peak=1),
        (at(1200), OTHER_NAS): row(peak=1),
        (at(1500), OTHER_NAS): row(peak=1),
    }
    day = figures.rows("nas", "day")[(iso(B - 3600), NAS)]
    assert day == row(starts=4, stops=4, seconds=600 + 1400 + 300, octets_in=1600 + wrapped + 50,
                      octets_out=900, peak=3)


def test_five_minute_rows_by_lease():
    figures = expected_figures(DAY, ISPS, LEASES)
    assert {s.session_id: s.lease for s in figures.sessions} == {
        "s1": "la", "s2": "lp", "s3": "lp", "s4": NO_LEASE, "s6": NO_LEASE}
    assert rows(figures, "lease") == {
        (at(0), "la"): row(starts=1, seconds=200, octets_in=666, octets_out=400, peak=1),
        (at(300), "la"): row(seconds=300, octets_in=734, octets_out=400, peak=1),
        (at(600), "la"): row(stops=1, seconds=100, octets_in=200, octets_out=100, peak=1),
        (at(0), "lp"): row(starts=2, seconds=350, octets_in=666_666_666, peak=2),
        (at(300), "lp"): row(stops=1, seconds=300, octets_in=3_382_494_566, peak=1),
        (at(600), "lp"): row(seconds=300, octets_in=245_806_180, peak=1),
        (at(900), "lp"): row(seconds=300, octets_in=84, peak=1),
        (at(1200), "lp"): row(seconds=300, peak=1),
        (at(1500), "lp"): row(stops=1, seconds=150, peak=1),
        # no gauge for the sessions of no lease: no peak; rows of nothing else are left out
        (at(600), NO_LEASE): {**row(starts=1, seconds=300, octets_in=(1 << 32) + 5,
                                    octets_out=7), "online_peak": None},
        (at(900), NO_LEASE): {**row(starts=1, stops=1, octets_in=50), "online_peak": None},
    }


def test_utilization_events():
    figures = expected_figures(DAY, ISPS, LEASES)
    assert figures.events == [
        # lp: s3 and s2 together over its one session, 250 to 300
        {"isp": "isp-b", "lease": "lp", "kind": "over_sessions", "start": at(250),
         "end": at(300), "peak": 2},
        # la: none online from 700, going on at the end (950 s >= its 600 s window);
        # 0-100 before s1 was too short; lp's from 1650 lasted 0 s of its 60
        {"isp": "isp-a", "lease": "la", "kind": "under_sessions", "start": at(700),
         "end": "", "peak": 0},
    ]


def test_under_use_begins_with_the_lease_or_the_first_records_bucket():
    late = Lease(name="late", isp="isp-a", nas=(NAS,), sessions=2, under_percent=50,
                 under_window=60, starts=B + 150)
    figures = expected_figures([*S1, REBOOT], ISPS, (late,))
    # s1 began at 100, before the lease: it counts against none, and the lease is
    # under-used from its start at 150
    assert [s.lease for s in figures.sessions] == [NO_LEASE]
    assert [(e["kind"], e["start"], e["end"]) for e in figures.events] == [
        ("under_sessions", at(150), "")]
    early = Lease(name="early", isp="isp-a", nas=(NAS,), sessions=2, under_percent=100,
                  under_window=60, starts=B - 3600)
    figures = expected_figures([*S1, REBOOT], ISPS, (early,))
    # from the bucket of the first record (0), not the lease's start; under all along
    assert [(e["start"], e["end"], e["peak"]) for e in figures.events] == [(at(0), "", 0)]


@pytest.mark.parametrize("delta,ta,tb,pieces", [
    (1000, B + 100, B + 400, {B: 666, B + 300: 334}),
    (10, B + 299, B + 301, {B: 5, B + 300: 5}),
    (7, B + 10, B + 900, {B: 2, B + 300: 2, B + 600: 3}),  # floor(7 x 290/890) = 2, ...
    (50, B + 1000, B + 1000, {B + 900: 50}),
    (0, B, B + 300, {}),
])
def test_an_increase_is_spread_in_proportion_and_adds_up(delta, ta, tb, pieces):
    assert spread(delta, ta, tb) == pieces
    assert sum(pieces.values()) == delta


def test_records_as_the_nas_sends_them():
    r = parse(record("Interim-Update", "s", "u", B, delay=30, session_time=9, octets=(1, 2),
                     gigawords=(3, 0), routing=CLASS_B, port=4))
    assert (r.time, r.input, r.output, r.routed_isp, r.port) == (
        B, (3 << 32) + 1, 2, "isp-b", 4)
    assert routed_isp(b"vpop1;isp=isp-a;mode=proxy;reason=realm") == "isp-a"
    assert routed_isp("res-10m") is None


def test_differences_are_told_briefly():
    want = {(at(n * 300), NAS): row(starts=1) for n in range(100)}
    got = {key: row(starts=2) for key in want}
    lines = differences(want, got)
    assert lines[0] == "100 rows; they differ: starts in 100; first rows that differ:"
    assert len(lines) == 6
    assert lines[1] == f"  {at(0)} {NAS}: starts 1 expected, 2 reported"
    assert differences(want, want) == []
    events = expected_figures(DAY, ISPS, LEASES).events
    assert event_differences(events, events) == []
    told = event_differences(events, events[:1])
    assert told[:2] == ["2 events expected, 1 reported", "1 expected, not reported:"]
