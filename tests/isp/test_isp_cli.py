"""`vpop isp status`: the report from the store, as a table and as JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from vpop.config import DatabaseSettings, Settings
from vpop.isp.cli import add_arguments, isp_status
from vpop.isp.qos import BucketSummary, Histogram
from vpop.store.engine import make_engine, make_sessionmaker
from vpop.store.isp_models import Isp, IspServer, IspTunnel
from vpop.store.qos import record_buckets


def arguments(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def seed(url):
    now = dt.datetime.now(dt.timezone.utc)
    minute = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=2)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            session.add(Isp(name="acme", servers=[
                IspServer(name="acme-1", address="192.0.2.1", secret="s"),
                IspServer(name="acme-2", address="192.0.2.2", secret="s", priority=2)]))
            session.add(Isp(name="lns-co", mode="tunnel", status="down",
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
    assert (first["name"], first["state"], first["requests"], first["success_rate"]) == (
        "acme-1", "up", 4, 0.75)
    assert first["availability"] == 5 / 6
    assert 9.5 < first["p50_ms"] < 10.5 and 28 < first["p99_ms"] < 32
    assert (second["state"], second["loss"], second["success_rate"]) == ("down", 1.0, None)
    assert (lns["mode"], lns["status"], lns["servers"], lns["available"]) == (
        "tunnel", "down", [], None)


def test_table(db_url, capsys):
    seed(db_url)
    settings = Settings(database=DatabaseSettings(url=db_url))
    assert isp_status(settings, arguments()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("over the last 15 minutes")
    assert lines[1].split() == ["ISP", "MODE", "STATUS", "SERVER", "STATE", "AVAIL", "SUCCESS",
                                "P50", "MS", "P99", "MS", "REQUESTS"]
    row = lines[2].split()
    assert row[:7] == ["acme", "proxy", "active", "acme-1", "up", "83.3%", "75.0%"]
    assert 9.5 < float(row[7]) < 10.5 and row[9] == "4"
    assert lines[3].split() == ["acme-2", "down", "0.0%", "-", "-", "-", "0"]
    assert lines[4].split() == ["lns-co", "tunnel", "down", "-"]


def test_one_isp_and_an_unknown_one(db_url, capsys):
    seed(db_url)
    settings = Settings(database=DatabaseSettings(url=db_url))
    assert isp_status(settings, arguments("lns-co", "--json")) == 0
    assert [i["name"] for i in json.loads(capsys.readouterr().out)["isps"]] == ["lns-co"]
    assert isp_status(settings, arguments("nowhere")) == 2
    assert "no ISP 'nowhere'" in capsys.readouterr().err
    assert isp_status(settings, arguments("--minutes", "0")) == 2
