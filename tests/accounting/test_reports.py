"""Reports on the scripted day, row by row, from the rollups."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from acct_support import H, LEASE_TERMS, T0, add_lease, play_day
from vpop.accounting import reports
from vpop.cli import report as cli
from vpop.config import DatabaseSettings, Settings
from vpop.errors import ConfigError
from vpop.store.engine import make_sessionmaker


@pytest.fixture
def day(db_url, engine):
    sessions = make_sessionmaker(engine)
    add_lease(sessions)
    play_day(sessions, batch=None)
    return Settings(database=DatabaseSettings(url=db_url))


def args(**kw):
    base = dict(isp=None, lease=None, nas=None, start="2026-03-01", end="2026-03-02",
                grain=None, format="csv", progress=False, events=False, by="isp",
                online=False, limit=1000)
    return argparse.Namespace(**{**base, **kw})


def run(report, settings, **kw):
    out = io.StringIO()
    assert report(settings, args(**kw), out=out, err=io.StringIO(), now=T0 + 24 * H) == 0
    return out.getvalue()


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_utilization_by_hour(day):
    rows = {r["bucket"][11:16]: r for r in csv_rows(run(cli.report_utilization, day))}
    assert len(rows) == 24
    pick = lambda r, *keys: tuple(r[k] for k in keys)  # noqa: E731
    keys = ("lease", "sessions_leased", "sessions_avg", "sessions_peak", "ports_avg_pct",
            "ports_peak_pct", "octets", "mbps_avg", "mbps_peak", "mbps_leased", "events")
    assert pick(rows["00:00"], *keys) == ("isp-a-berlin", "2", "0.0", "0", "0.0", "0.0", "0",
                                          "0.0", "0.0", "0.08", "")
    assert pick(rows["01:00"], *keys) == ("isp-a-berlin", "2", "1.0", "1", "50.0", "50.0",
                                          "3600000", "0.008", "0.008", "0.08", "under_sessions")
    # s1, s2 and s3: 3600 + 3600 + 900 session seconds; 3 online from 02:30 to 02:45
    assert pick(rows["02:00"], *keys) == ("isp-a-berlin", "2", "2.25", "3", "112.5", "150.0",
                                          "3600000", "0.008", "0.008", "0.08", "over_sessions")
    # s2 stopped at 03:00 sharp: from the hour's first second on, 1 was online
    assert pick(rows["03:00"], *keys) == ("isp-a-berlin", "2", "1.0", "1", "50.0", "50.0",
                                          "3600000", "0.008", "0.008", "0.08", "under_sessions")
    # s1 and s4 (20 minutes); 6,300,000 octets in the busiest 5 minutes: 0.168 Mbit/s
    assert pick(rows["04:00"], *keys) == (
        "isp-a-berlin", "2", "1.333333", "2", "66.7", "100.0", "27600000", "0.061", "0.168",
        "0.08", "under_sessions over_bandwidth over_volume")
    assert pick(rows["06:00"], *keys) == ("isp-a-berlin", "2", "0.0", "0", "0.0", "0.0", "0",
                                          "0.0", "0.0", "0.08", "under_sessions over_volume")


def test_utilization_events(day):
    rows = json.loads(run(cli.report_utilization, day, events=True, format="json"))
    assert [(r["kind"], r["start"][11:16], r["end"][11:16] or None, r["seconds"], r["peak"],
             r["unit"]) for r in rows] == [
        ("under_sessions", "01:00", "02:00", 3600, 1, "sessions"),
        ("over_sessions", "02:30", "02:45", 900, 3, "sessions"),
        ("under_sessions", "03:00", "04:00", 3600, 1, "sessions"),
        ("over_bandwidth", "04:00", "04:20", 1200, 168, "kbit/s"),
        ("over_volume", "04:05", None, 24 * H - 4 * H - 300, 38_400_000, "octets"),
        ("under_sessions", "04:20", None, 24 * H - 4 * H - 1200, 0, "sessions")]


def test_utilization_filters(day):
    assert len(csv_rows(run(cli.report_utilization, day, isp="isp-a"))) == 24
    assert csv_rows(run(cli.report_utilization, day, isp="isp-b")) == []
    assert csv_rows(run(cli.report_utilization, day, nas="192.0.2.99")) == []
    assert len(csv_rows(run(cli.report_utilization, day, grain="day"))) == 1
    five = csv_rows(run(cli.report_utilization, day, start="2026-03-01T04:00",
                        end="2026-03-01T04:30", grain="5min"))
    assert [(r["bucket"][11:16], r["octets"], r["mbps_peak"]) for r in five] == [
        ("04:00", "6300000", "0.168"), ("04:05", "6300000", "0.168"),
        ("04:10", "6300000", "0.168"), ("04:15", "6300000", "0.168"),
        ("04:20", "300000", "0.008"), ("04:25", "300000", "0.008")]
    with pytest.raises(ConfigError, match="no such lease"):
        run(cli.report_utilization, day, lease="nope")


def test_sessions_by_isp(day):
    rows = csv_rows(run(cli.report_sessions, day, grain="day"))
    assert [(r["group"], r["starts"], r["stops"], r["online_peak"], r["hours"],
             r["input_octets"], r["records"], r["flagged"]) for r in rows] == [
        ("isp-a", "4", "4", "3", "5.583333", "38400000", "71", "0"),
        ("isp-b", "1", "1", "1", "0.166667", "0", "3", "0")]


def test_sessions_by_lease_and_nas(day):
    by_lease = csv_rows(run(cli.report_sessions, day, grain="day", by="lease"))
    assert [(r["group"], r["starts"], r["online_peak"]) for r in by_lease] == [
        ("(no lease)", "1", ""), ("isp-a-berlin", "4", "3")]
    by_nas = csv_rows(run(cli.report_sessions, day, grain="day", by="nas"))
    assert [(r["group"], r["starts"], r["online_peak"]) for r in by_nas] == [
        ("192.0.2.1", "5", "3")]  # s1, s2 and isp-b's s5 at 02:00; s1, s2, s3 at 02:30
    # A peak is shown only where it is exact: not for one ISP's share of a NAS.
    narrowed = csv_rows(run(cli.report_sessions, day, grain="day", by="nas", isp="isp-a"))
    assert [(r["group"], r["starts"], r["online_peak"]) for r in narrowed] == [
        ("192.0.2.1", "4", "")]


def test_sessions_online_now(day):
    assert csv_rows(run(cli.report_sessions, day, online=True)) == []


def test_table_output_and_the_progress_bar(day):
    out, err = io.StringIO(), io.StringIO()
    cli.report_sessions(day, args(format="table", progress=True, grain="hour"), out=out,
                        err=err, now=T0)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == list(reports.SESSION_COLUMNS)
    assert "sessions [" in err.getvalue() and "1/1" in err.getvalue()


def test_period_parsing():
    assert cli.parse_time("2026-03-01", "--from") == T0
    assert cli.parse_time("2026-03-01T01:00:00+01:00", "--from") == T0
    with pytest.raises(ConfigError, match="--to 'soon'"):
        cli.parse_time("soon", "--to")
    with pytest.raises(ConfigError, match="after"):
        cli.filters_from(args(start="2026-03-02", end="2026-03-01"), T0)
    filters = cli.filters_from(args(start=None, end=None), T0 + 5 * H)
    assert (filters.start, filters.end, filters.grain) == (T0, T0 + 24 * H, "hour")
    assert LEASE_TERMS["sessions"] == 2


NASTY = {"username": "\x1b[2J\x00evil\nname", "isp": "isp-a", "seconds": 60, "caller": "\ufffd"}


@pytest.mark.parametrize("fmt", reports.FORMATS)
def test_names_with_control_characters_stay_text_and_the_formats_stay_valid(fmt):
    columns = ("username", "isp", "seconds", "caller")
    text = reports.render([NASTY], columns, fmt)
    assert not any(ord(c) < 0x20 and c != "\n" for c in text)
    if fmt == "json":
        assert json.loads(text) == [NASTY]  # JSON escapes, and gives back the name exactly
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert text.count("\n") == 2  # a header and one record, one line each
        assert rows[0]["username"] == "\\x1b[2J\\x00evil\\x0aname"
        assert rows[0]["seconds"] == "60"
    else:
        assert "\\x1b[2J\\x00evil\\x0aname" in text
