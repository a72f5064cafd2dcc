"""`vpop isp status`: the report from the store, as a table and as JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from vpop.config import DatabaseSettings, Settings
from vpop.cli.isp_status import add_arguments, isp_status
from vpop.isp.pool import ServerState
from vpop.isp.qos import BucketSummary, Histogram
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.isp_models import IspRecord, IspServer, IspTunnel
from vpop.store.qos import record_buckets, record_states


def arguments(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


SINCE = dt.datetime(2026, 12, 5, 8, 41, 7, 250000, tzinfo=dt.timezone.utc)


def store_states(url, *states):
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            record_states(session, states)
    finally:
        engine.dispose()


def seed(url):
    now = dt.datetime.now(dt.timezone.utc)
    minute = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.add(IspRecord(name="acme", servers=[
                IspServer(name="acme-1", address="192.0.2.1", secret="s"),
                IspServer(name="acme-2", address="192.0.2.2", secret="s", priority=2)]))
            session.add(IspRecord(name="lns-co", mode="tunnel", status="down",
                            tunnels=[IspTunnel(address="198.51.100.1")]))
            session.flush()
            record_buckets(session, [
                BucketSummary(isp="acme", server="acme-1", start=minute, seconds=60,
                              requests=4, accepts=3, timeouts=1, probes=2,
                              response=Histogram.of([10.0, 10.0, 30.0]),
                              rtt=Histogram.of([2.0, 2.0])),
                BucketSummary(isp="acme", server="acme-2", start=minute, seconds=60,
                              probes=2, probes_lost=2),
            ])
    finally:
        engine.dispose()


def test_json(db_url, capsys):
    seed(db_url)
    settings = Settings(database=DatabaseSettings(url=db_url))
    assert isp_status(settings, arguments("--json", "--minutes", "5")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["minutes"] == 5
    acme, lns = report["isps"]
    assert (acme["name"], acme["mode"], acme["status"], acme["available"]) == (
        "acme", "proxy", "active", True)
    first, second = acme["servers"]
    assert (first["name"], first["answering"], first["requests"], first["success_rate"]) == (
        "acme-1", "up", 4, 0.75)
    assert first["availability"] == 5 / 6
    assert 9.5 < first["p50_ms"] < 10.5 and 28 < first["p99_ms"] < 32
    assert (second["answering"], second["loss"], second["success_rate"]) == ("down", 1.0, None)
    # No vpop serve has run with these servers: no state of the proxy's yet.
    assert (first["state"], first["since"], second["state"]) == ("-", None, "-")
    assert (lns["mode"], lns["status"], lns["servers"], lns["available"]) == (
        "tunnel", "down", [], None)


def test_table(db_url, capsys):
    seed(db_url)
    store_states(db_url,
                 ServerState(server="acme-1", isp="acme", state="alive", since=SINCE,
                             reason="vpop started"),
                 ServerState(server="acme-2", isp="acme", state="dead", since=SINCE,
                             reason="no answer for the zombie period"))
    settings = Settings(database=DatabaseSettings(url=db_url))
    assert isp_status(settings, arguments()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("over the last 15 minutes")
    assert lines[1].split() == ["ISP", "MODE", "STATUS", "SERVER", "STATE", "SINCE", "AVAIL",
                                "SUCCESS", "P50", "MS", "P99", "MS", "REQUESTS"]
    row = lines[2].split()
    assert row[:8] == ["acme", "proxy", "active", "acme-1", "alive", "2026-12-05T08:41:07Z",
                       "83.3%", "75.0%"]
    assert 9.5 < float(row[8]) < 10.5 and row[10] == "4"
    assert lines[3].split() == ["acme-2", "dead", "2026-12-05T08:41:07Z", "0.0%", "-", "-", "-",
                                "0"]
    assert lines[4].split() == ["lns-co", "tunnel", "down", "-"]


def test_a_state_change_shows_at_once_and_the_latest_wins(db_url, capsys):
    seed(db_url)
    settings = Settings(database=DatabaseSettings(url=db_url))
    later = SINCE + dt.timedelta(seconds=12)
    store_states(db_url, ServerState(server="acme-1", isp="acme", state="alive", since=SINCE,
                                     reason="vpop started"))
    # Two workers' changes, stored in the other order: the later one stays.
    store_states(db_url, ServerState(server="acme-1", isp="acme", state="dead", since=later,
                                     reason="no answer for the zombie period"))
    store_states(db_url, ServerState(server="acme-1", isp="acme", state="zombie",
                                     since=later - dt.timedelta(seconds=10),
                                     reason="request unanswered"))
    assert isp_status(settings, arguments("acme", "--json")) == 0
    first = json.loads(capsys.readouterr().out)["isps"][0]["servers"][0]
    assert (first["state"], first["reason"]) == ("dead", "no answer for the zombie period")
    assert dt.datetime.fromisoformat(first["since"]) == later


def test_one_isp_and_an_unknown_one(db_url, capsys):
    seed(db_url)
    settings = Settings(database=DatabaseSettings(url=db_url))
    assert isp_status(settings, arguments("lns-co", "--json")) == 0
    assert [i["name"] for i in json.loads(capsys.readouterr().out)["isps"]] == ["lns-co"]
    assert isp_status(settings, arguments("nowhere")) == 2
    assert "no ISP 'nowhere'" in capsys.readouterr().err
    assert isp_status(settings, arguments("--minutes", "0")) == 2
