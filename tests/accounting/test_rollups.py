"""Cutting activity into buckets, and the gauges' peaks."""

import pytest

from acct_support import NAS, T0, rec
from vpop.accounting import sessions as S
from vpop.accounting.rollups import (GaugeChange, RollupBatch, bucket, bucket_peaks,
                                     levels_from, month_start, net_changes,
                                     next_month, pieces)


def test_pieces_share_octets_by_time_and_add_up_exactly():
    span = S.Span(T0 + 100, T0 + 1000, 1001, 7)  # 200 s, 300 s, 300 s, 100 s
    got = list(pieces(span))
    assert [(b - T0, s) for b, s, _, _ in got] == [(0, 200), (300, 300), (600, 300), (900, 100)]
    assert [i for _, _, i, _ in got] == [222, 334, 333, 112]  # cumulative rounding
    assert sum(i for _, _, i, _ in got) == 1001 and sum(o for *_, o in got) == 7


def test_an_instant_has_its_octets_and_no_time():
    assert list(pieces(S.Span(T0 + 299, T0 + 299, 5, 6))) == [(T0, 0, 5, 6)]


def test_untimed_spans_bring_octets_only():
    assert list(pieces(S.Span(T0, T0 + 600, 10, 0, timed=False))) == [
        (T0, 0, 5, 0), (T0 + 300, 0, 5, 0)]


def test_months():
    march = month_start(T0 + 20 * 86_400)
    assert march == T0 and next_month(T0) == T0 + 31 * 86_400
    assert next_month(month_start(1_796_083_200)) == 1_798_761_600  # 2026-12 -> 2027-01


def test_hours_and_days_are_sums_of_their_5_minute_buckets():
    batch = RollupBatch()
    state = None
    for record in (rec("start", t=T0 + 3500, isp="isp-a"),
                   rec("stop", t=T0 + 3900, session_time=400, octets_in=400, isp="isp-a")):
        step = S.apply(state, record, lambda r, s: S.Attribution(7))
        batch.add(step)
        state = step.after
    assert {key[2:] for key in batch.cells} == {("isp-a", 7, NAS)}
    cells = {(g, b - T0): m for (g, b, *_), m in batch.cells.items()}
    #                 starts stops seconds in  out records flagged
    assert cells[("5min", 3300)] == [1, 0, 100, 100, 0, 1, 0]
    assert cells[("5min", 3600)] == [0, 0, 300, 300, 0, 0, 0]
    assert cells[("5min", 3900)] == [0, 1, 0, 0, 0, 1, 0]  # the Stop, on the boundary
    assert cells[("hour", 0)] == [1, 0, 100, 100, 0, 1, 0]
    assert cells[("hour", 3600)] == [0, 1, 300, 300, 0, 1, 0]
    assert cells[("day", 0)] == [1, 1, 400, 400, 0, 2, 0]
    assert batch.lease_octets == {(7, T0 + 3300): 100, (7, T0 + 3600): 300}
    assert [c.delta for c in batch.gauge_changes] == [1, 1, 1, -1, -1, -1]


def test_changes_in_one_second_are_netted_whatever_their_order():
    changes = [GaugeChange("lease", "7", T0 + 20, -1), GaugeChange("lease", "7", T0 + 10, 1),
               GaugeChange("lease", "7", T0 + 20, 1), GaugeChange("nas", NAS, T0 + 20, 1)]
    assert net_changes(changes) == {("lease", "7"): {T0 + 10: 1},
                                    ("nas", NAS): {T0 + 20: 1}}
    assert net_changes(reversed(changes)) == net_changes(changes)


def test_peaks_are_the_most_online_at_any_second_of_the_bucket():
    series = levels_from(3, [(T0 + 10, 1), (T0 + 20, 1), (T0 + 30, -1), (T0 + 400, -1)])
    assert series == [(T0 + 10, 1, 4), (T0 + 20, 1, 5), (T0 + 30, -1, 4), (T0 + 400, -1, 3)]
    fine = bucket_peaks(3, [(t, level) for t, _, level in series])
    assert fine == {T0: (5, 4), T0 + 300: (4, 3)}  # the second bucket began with 4 online


def test_a_bucket_whose_first_change_is_a_drop_peaks_at_the_level_it_began_with():
    assert bucket_peaks(6, [(T0 + 100, 5)]) == {T0: (6, 5)}
    # ... unless the drop is at its first second: it began with 5
    assert bucket_peaks(6, [(T0, 5)]) == {T0: (5, 5)}


@pytest.mark.parametrize("grain, size", [("5min", 300), ("hour", 3600), ("day", 86_400)])
def test_buckets_are_aligned_to_utc(grain, size):
    assert bucket(T0 + size + 1, grain) == T0 + size
