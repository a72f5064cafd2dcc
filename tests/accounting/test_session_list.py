"""Session lists for the portal and the API: filters, keyset pages, one ISP's only."""

from __future__ import annotations

import pytest

from acct_support import T0, life, rec
from vpop.errors import ConfigError
from vpop.store import accounting as store
from vpop.store import reports
from vpop.store.engine import make_sessionmaker


@pytest.fixture
def sessions(engine):
    maker = make_sessionmaker(engine)
    records = []
    for n in range(12):
        isp = ("isp-a", "isp-b", None)[n % 3]
        start = T0 + min(n, 9) * 600 + max(0, n - 9) * 10  # the online ones close together
        if n < 9:
            records += life(f"s{n}", start, start + 900, user=f"u{n}", isp=isp,
                            nas=f"192.0.2.{1 + n % 2}")
        else:  # still online
            records.append(rec("start", f"s{n}", start, user=f"u{n}", isp=isp,
                               nas=f"192.0.2.{1 + n % 2}"))
    with maker.begin() as session:
        store.apply_batch(session, sorted(records, key=lambda r: r.event_time),
                          leases=store.load_leases(session))
    return maker


def test_pages_newest_first_without_gaps_or_repeats(sessions):
    with sessions() as session:
        seen, after = [], None
        while True:
            rows, after = reports.session_page(session, reports.SessionQuery(), after=after,
                                               limit=5)
            seen += [r["username"] for r in rows]
            if after is None:
                break
    assert seen == [f"u{n}" for n in reversed(range(12))]


@pytest.mark.parametrize("query, expected", [
    (dict(isp="isp-a"), [9, 6, 3, 0]),
    (dict(isp="isp-b", status="open"), [10]),
    (dict(status="closed", nas="192.0.2.2"), [7, 5, 3, 1]),
    (dict(username="u4"), [4]),
    (dict(start=T0 + 1200, end=T0 + 3000), [4, 3, 2]),
    (dict(status="open"), [11, 10, 9]),
])
def test_filters(sessions, query, expected):
    with sessions() as session:
        rows, after = reports.session_page(session, reports.SessionQuery(**query), limit=50)
    assert [int(r["username"][1:]) for r in rows] == expected
    assert after is None


def test_one_session_only_for_its_isp(sessions):
    with sessions() as session:
        row = reports.session_page(session, reports.SessionQuery(username="u0"))[0][0]
        assert reports.session_by_id(session, row["id"], isp="isp-a")["username"] == "u0"
        assert reports.session_by_id(session, row["id"], isp="isp-b") is None
        assert [r["status"] for r in reports.session_records(session, row["id"])] == [
            "start", "interim", "interim", "stop"]


def test_export_reads_every_page(sessions):
    with sessions() as session:
        pages = list(reports.session_pages(session, reports.SessionQuery(isp="isp-b"), chunk=2))
    assert [len(p) for p in pages] == [2, 2]


def test_a_position_that_is_not_one_is_refused(sessions):
    with sessions() as session, pytest.raises(ConfigError, match="not a position"):
        reports.session_page(session, reports.SessionQuery(), after="yesterday")

