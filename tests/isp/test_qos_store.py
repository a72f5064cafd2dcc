"""The QoS series in the database: record, read back, downsample, health. SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from vpop.isp.qos import BucketSummary, Histogram, QosRecorder, EPOCH
from vpop.isp.selection import IspHealth
from vpop.store.isp_models import IspRecord, IspQos, IspServer
from vpop.store.qos import downsample, latest_health, record_buckets, series, servers_by_isp

UTC = dt.timezone.utc
NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def bucket(start, seconds=60, server="a/1", isp="a", **counts):
    return BucketSummary(isp=isp, server=server, start=start, seconds=seconds, **counts)


def minutes_ago(n):
    return NOW - dt.timedelta(minutes=n)


def rows(session):
    return sorted((r.server, r.bucket_start, r.bucket_seconds, r.requests)
                  for r in session.scalars(select(IspQos)))


def test_recorded_buckets_read_back(session):
    recorder = QosRecorder()
    at = (minutes_ago(3) - EPOCH).total_seconds()
    for offset, ms in enumerate((5.0, 7.0, 9.0)):
        recorder.request("a", "a/1", at=at + offset, outcome="accept", response_ms=ms)
    recorder.probe("a", "a/1", at=at, rtt_ms=2.0)
    recorder.probe("a", "a/1", at=at + 1, rtt_ms=None)
    assert record_buckets(session, recorder.flush((NOW - EPOCH).total_seconds())) == 1
    session.commit()
    row = session.scalars(select(IspQos)).one()
    assert (row.requests, row.accepts, row.probes, row.probes_lost) == (3, 3, 2, 1)
    assert row.response_p50_ms == pytest.approx(7.0, rel=0.045)
    assert row.rtt_p99_ms == pytest.approx(2.0, rel=0.045)
    (back,) = series(session, since=minutes_ago(10))
    assert back.start == minutes_ago(3)
    assert back.response == Histogram.of([5.0, 7.0, 9.0])
    assert (back.loss, back.success_rate) == (0.5, 1.0)


def test_series_merges_workers_and_resolutions(session):
    start = NOW - dt.timedelta(minutes=10)
    record_buckets(session, [
        bucket(start, requests=1, accepts=1),
        bucket(start, requests=2, timeouts=2),  # another worker, same minute
        bucket(start + dt.timedelta(minutes=1), requests=1, rejects=1),
        bucket(start, server="b/1", isp="b", probes=1),
    ])
    session.commit()
    per_minute = series(session, since=start, isp="a")
    assert [(s.start, s.requests) for s in per_minute] == [
        (start, 3), (start + dt.timedelta(minutes=1), 1)]
    (five,) = series(session, since=start, server="a/1", resolution=300)
    assert (five.start, five.seconds, five.requests, five.success_rate) == (
        start, 300, 4, 0.5)
    assert series(session, since=start, until=start) == []
    assert {s.server for s in series(session, since=start)} == {"a/1", "b/1"}


def test_only_level_sizes_are_recorded(session):
    with pytest.raises(ValueError, match="bucket of 10 s"):
        record_buckets(session, [bucket(NOW, seconds=10)])


def test_downsampling(session):
    day, month, year = dt.timedelta(days=1), dt.timedelta(days=30), dt.timedelta(days=365)
    old_minute = NOW - day - dt.timedelta(hours=1)
    record_buckets(session, [
        bucket(minutes_ago(5), requests=1),  # fresh: stays
        bucket(old_minute, requests=1, response=Histogram.of([1.0])),
        bucket(old_minute + dt.timedelta(minutes=4), requests=2, response=Histogram.of([9.0])),
        bucket(old_minute + dt.timedelta(minutes=5), requests=4),
        bucket(NOW - month - dt.timedelta(hours=2), seconds=300, requests=8),
        bucket(NOW - month - dt.timedelta(hours=2, minutes=-5), seconds=300, requests=16),
        bucket(NOW - year - dt.timedelta(hours=2), seconds=3600, requests=32),
    ])
    session.commit()
    assert downsample(session, NOW) == 6
    session.commit()
    assert rows(session) == [
        ("a/1", NOW - month - dt.timedelta(hours=2), 3600, 24),
        ("a/1", old_minute, 300, 3),
        ("a/1", old_minute + dt.timedelta(minutes=5), 300, 4),
        ("a/1", minutes_ago(5), 60, 1),
    ]
    five = session.scalars(select(IspQos).where(IspQos.bucket_start == old_minute)).one()
    assert Histogram.decode(five.response_histogram) == Histogram.of([1.0, 9.0])
    assert five.response_p99_ms == pytest.approx(9.0, rel=0.045)
    assert downsample(session, NOW) == 0  # nothing more is due


def test_late_rows_join_the_coarse_bucket(session):
    old = NOW - dt.timedelta(days=2)
    record_buckets(session, [bucket(old, requests=1)])
    downsample(session, NOW)
    record_buckets(session, [bucket(old + dt.timedelta(minutes=1), requests=2)])  # late
    downsample(session, NOW)
    session.commit()
    assert rows(session) == [("a/1", old, 300, 3)]


def test_series_includes_coarse_buckets_overlapping_the_start(session):
    hour = NOW - dt.timedelta(days=40)
    record_buckets(session, [bucket(hour, seconds=3600, requests=5)])
    session.commit()
    (found,) = series(session, since=hour + dt.timedelta(minutes=30), resolution=60)
    assert (found.start, found.seconds, found.requests) == (hour, 3600, 5)


def add_isp(session, name, servers):
    session.add(IspRecord(name=name, servers=[IspServer(name=s, address="192.0.2.1", secret="s")
                                        for s in servers]))
    session.flush()


def test_latest_health(session):
    add_isp(session, "a", ["a/1", "a/2"])
    add_isp(session, "quiet", ["q/1"])
    add_isp(session, "tunnels-only", [])
    assert servers_by_isp(session) == {"a": ["a/1", "a/2"], "quiet": ["q/1"]}
    record_buckets(session, [
        bucket(minutes_ago(30), requests=10, timeouts=10),  # outside the window
        bucket(minutes_ago(2), requests=4, accepts=3, timeouts=1,
               response=Histogram.of([20.0, 20.0, 20.0])),
        bucket(minutes_ago(1), server="a/2", requests=1, timeouts=1),
    ])
    session.commit()
    health = latest_health(session, NOW)
    assert set(health) == {"a", "quiet"}
    assert health["quiet"] == IspHealth()
    a = health["a"]
    assert (a.available, a.success_rate, a.loss) == (True, 0.6, 0.4)
    assert a.p50_ms == pytest.approx(20.0, rel=0.045)
    # a/1 silent too in its latest minute: no server answers
    record_buckets(session, [bucket(minutes_ago(1), requests=1, invalid=1)])
    session.commit()
    assert latest_health(session, NOW)["a"].available is False
    assert session.scalar(select(func.count()).select_from(IspQos)) == 4
