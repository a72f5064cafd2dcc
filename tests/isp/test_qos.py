"""QoS buckets: histograms, summaries, folding, expiry and health, all with explicit times."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from vpop.isp.qos import (EPOCH, LEVELS, BucketSummary, Histogram, Level, QosRecorder, bin_of,
                          bin_value, bucket_start, check_levels, expiry, fold, isp_health,
                          server_answering, total)
from vpop.isp.selection import IspHealth

UTC = dt.timezone.utc
T0 = dt.datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
T0S = (T0 - EPOCH).total_seconds()


# --- histograms ----------------------------------------------------------------------

@pytest.mark.parametrize("ms", [0.0, 0.05, 0.1, 0.2, 1.0, 3.7, 42.0, 999.9, 20_000.0])
def test_bin_value_is_close(ms):
    if ms > 0.11:
        assert bin_value(bin_of(ms)) == pytest.approx(ms, rel=0.045)
    else:
        assert bin_of(ms) == 0


def test_very_slow_answers_land_in_the_last_bin():
    assert bin_of(10 ** 9) == bin_of(10 ** 7)


def test_percentiles_match_the_exact_ones_within_the_bin_width():
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(3, 1) for _ in range(5000))
    histogram = Histogram.of(values)
    assert histogram.total == 5000
    for q in (0.5, 0.95, 0.99):
        exact = values[int(q * len(values)) - 1]
        assert histogram.percentile(q) == pytest.approx(exact, rel=0.09)


def test_percentile_of_nothing_and_of_one():
    assert Histogram().percentile(0.5) is None
    assert Histogram.of([10.0]).percentile(0.99) == pytest.approx(10.0, rel=0.045)


def test_merge_is_the_histogram_of_both():
    a, b = [1.0, 2.0, 3.0], [2.0, 50.0]
    assert Histogram.of(a).merge(Histogram.of(b)) == Histogram.of(a + b)


def test_encode_decode():
    histogram = Histogram.of([0.01, 1.0, 1.0, 250.0])
    assert Histogram.decode(histogram.encode()) == histogram
    assert Histogram.decode("") == Histogram()
    for bad in ("x", "1", "1:x", "999:1", "1:-1"):
        with pytest.raises(ValueError):
            Histogram.decode(bad)


# --- the recorder --------------------------------------------------------------------

def test_recorder_buckets_and_flush():
    recorder = QosRecorder()
    recorder.probe("a", "a/1", at=T0S + 1, rtt_ms=2.0)
    recorder.probe("a", "a/1", at=T0S + 2, rtt_ms=None)
    recorder.request("a", "a/1", at=T0S + 3, outcome="accept", response_ms=10.0)
    recorder.request("a", "a/1", at=T0S + 4, outcome="reject", response_ms=12.0)
    recorder.request("a", "a/1", at=T0S + 5, outcome="timeout")
    recorder.request("a", "a/1", at=T0S + 6, outcome="invalid", response_ms=3.0)
    recorder.request("a", "a/1", at=T0S + 60, outcome="accept", response_ms=1.0)  # next bucket
    assert recorder.flush(T0S + 59.9) == []  # the first bucket is not over yet
    (first,) = recorder.flush(T0S + 60)
    assert (first.isp, first.server, first.start, first.seconds) == ("a", "a/1", T0, 60)
    assert (first.probes, first.probes_lost, first.requests, first.accepts, first.rejects,
            first.timeouts, first.invalid) == (2, 1, 4, 1, 1, 1, 1)
    assert first.loss == 0.5
    assert first.success_rate == 0.5
    assert first.availability == pytest.approx(3 / 6)  # 1 probe + accept + reject answered
    assert first.response.total == 2  # the invalid answer's time is not a response time
    assert first.rtt_ms(0.5) == pytest.approx(2.0, rel=0.045)
    assert first.response_ms(0.5) == pytest.approx(10.0, rel=0.045)
    assert first.response_ms(0.99) == pytest.approx(12.0, rel=0.045)
    (second,) = recorder.flush(0, everything=True)
    assert second.start == T0 + dt.timedelta(minutes=1)
    assert recorder.flush(10 ** 10, everything=True) == []


def test_recorder_refuses_unknown_outcomes():
    with pytest.raises(ValueError, match="outcome"):
        QosRecorder().request("a", "a/1", at=0, outcome="maybe")


def test_empty_summary_has_no_rates():
    summary = BucketSummary(isp="a", server="a/1", start=T0, seconds=60)
    assert (summary.loss, summary.success_rate, summary.availability) == (None, None, None)
    assert summary.rtt_ms(0.5) is None


# --- folding and expiry --------------------------------------------------------------

def minute(offset, **counts):
    return BucketSummary(isp="a", server="a/1", start=T0 + dt.timedelta(minutes=offset),
                         seconds=60, **counts)


def test_fold_into_five_minutes():
    rows = [minute(m, requests=1, accepts=1, response=Histogram.of([m + 1.0])) for m in range(7)]
    rows.append(BucketSummary(isp="a", server="a/2", start=T0, seconds=60, probes=1))
    folded = fold(rows, 300)
    assert [(s.server, s.start, s.seconds, s.requests) for s in folded] == [
        ("a/1", T0, 300, 5), ("a/1", T0 + dt.timedelta(minutes=5), 300, 2),
        ("a/2", T0, 300, 0)]
    assert folded[0].response == Histogram.of([1.0, 2.0, 3.0, 4.0, 5.0])


def test_fold_keeps_coarser_buckets_whole():
    hour = BucketSummary(isp="a", server="a/1", start=T0, seconds=3600, requests=3)
    assert fold([hour, minute(5, requests=1)], 300) == [
        BucketSummary(isp="a", server="a/1", start=T0, seconds=3600, requests=4)]


def test_total():
    merged = total([minute(2, probes=1), minute(0, probes=2)])
    assert (merged.start, merged.seconds, merged.probes) == (T0, 180, 3)
    assert total([]) is None


def test_bucket_start():
    assert bucket_start(T0 + dt.timedelta(seconds=299), 300) == T0
    assert bucket_start(T0S + 300, 300) == T0 + dt.timedelta(minutes=5)


def test_expiry_is_aligned_to_the_next_level():
    now = T0 + dt.timedelta(minutes=7, seconds=3)
    # 1-minute buckets older than a day, cut at a 5-minute boundary
    assert expiry(LEVELS, 0, now) == T0 - dt.timedelta(days=1) + dt.timedelta(minutes=5)
    assert expiry(LEVELS, 1, now) == T0 - dt.timedelta(days=30)
    assert expiry(LEVELS, 2, now) == T0 - dt.timedelta(days=365)


def test_levels_must_nest():
    check_levels(LEVELS)
    with pytest.raises(ValueError):
        check_levels([Level(seconds=60, keep=dt.timedelta(days=1)),
                      Level(seconds=90, keep=dt.timedelta(days=2))])
    with pytest.raises(ValueError):
        check_levels([Level(seconds=60, keep=dt.timedelta(days=2)),
                      Level(seconds=300, keep=dt.timedelta(days=1))])


# --- health --------------------------------------------------------------------------

def server_minute(server, offset, **counts):
    return BucketSummary(isp="a", server=server, start=T0 + dt.timedelta(minutes=offset),
                         seconds=60, **counts)


HEALTH = [
    # (buckets, expected health of ISP "a" with servers a/1 and a/2)
    ([], IspHealth()),
    ([server_minute("a/1", 0, requests=4, accepts=3, timeouts=1,
                    response=Histogram.of([20.0] * 3))],
     IspHealth(available=True, success_rate=0.75, p50_ms=pytest.approx(20.0, rel=0.045),
               loss=0.25)),
    # a/1 answered before but not in its latest bucket; a/2 not measured: available
    ([server_minute("a/1", 0, probes=1, rtt=Histogram.of([5.0])),
      server_minute("a/1", 1, probes=1, probes_lost=1)],
     IspHealth(available=True, success_rate=1.0, p50_ms=pytest.approx(5.0, rel=0.045),
               loss=0.5)),
    # both silent in their latest buckets: not available
    ([server_minute("a/1", 1, requests=2, timeouts=2),
      server_minute("a/2", 0, probes=1, rtt=Histogram.of([5.0])),
      server_minute("a/2", 1, probes=1, probes_lost=1)],
     IspHealth(available=False, success_rate=0.0, p50_ms=pytest.approx(5.0, rel=0.045),
               loss=0.75)),
]


@pytest.mark.parametrize("buckets, expected", HEALTH)
def test_isp_health(buckets, expected):
    health = isp_health({"a": ["a/1", "a/2"], "tunnel-only": []}, buckets)
    assert health == {"a": expected}


def test_server_answering():
    assert server_answering([]) is None
    assert server_answering([server_minute("a/1", 0)]) is None  # a bucket without exchanges
    assert server_answering([server_minute("a/1", 0, requests=1, rejects=1)]) is True
    assert server_answering([server_minute("a/1", 0, requests=1, rejects=1),
                             server_minute("a/1", 1, requests=1, invalid=1)]) is False
