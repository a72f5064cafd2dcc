"""Accounting in the store, on SQLite and PostgreSQL: sessions, history, routing records,
rollups, gauges, the reaper and utilization events from a scripted day."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from acct_support import H, NAS, T0, add_lease, apply, at, life, play_day, rec, tick
from vpop.accounting.rollups import GRAINS
from vpop.store import accounting as store
from vpop.store.accounting_models import (AcctGauge, AcctPeak, AcctHistory, AcctRollup,
                                          LeaseRollup, RadAcct, RoutingRecord,
                                          UtilizationEvent)
from vpop.store.engine import make_sessionmaker


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def rows(sessions, model, *order):
    with sessions() as session:
        found = session.scalars(select(model).order_by(*order)).all()
        return [{c.name: getattr(r, c.key) for c in model.__mapper__.columns} for r in found]


def table_state(sessions):
    return {model.__tablename__: rows(sessions, model, *model.__table__.primary_key.columns)
            for model in (RadAcct, AcctHistory, RoutingRecord, AcctRollup, AcctGauge, AcctPeak,
                          LeaseRollup, UtilizationEvent)}


def test_a_session_from_start_to_stop(sessions):
    result = apply(sessions, life("s1", T0, T0 + 600, rate_in=10, isp="isp-a"))
    assert (result.stored, result.duplicates) == (3, 0)
    (row,) = rows(sessions, RadAcct, RadAcct.id)
    assert (row["status"], row["closed_by"], row["isp"], row["route_mode"]) == (
        "closed", "stop", "isp-a", "proxy")
    assert (row["start_time"], row["stop_time"], row["input_octets"]) == (
        at(T0), at(T0 + 600), 6000)
    assert [r["status"] for r in rows(sessions, AcctHistory, AcctHistory.id)] == [
        "start", "interim", "stop"]
    (route,) = rows(sessions, RoutingRecord, RoutingRecord.id)
    assert (route["username"], route["isp"], route["route_mode"], route["route_reason"],
            route["session_time"], route["input_octets"], route["closed_by"]) == (
        "alice", "isp-a", "proxy", "realm", 600, 6000, "stop")
    day = [r for r in rows(sessions, AcctRollup, AcctRollup.bucket) if r["grain"] == "day"]
    assert [(r["isp"], r["lease_id"], r["nas"], r["starts"], r["stops"], r["session_seconds"],
             r["input_octets"], r["records"]) for r in day] == [
        ("isp-a", 0, NAS, 1, 1, 600, 6000, 3)]
    assert {(g["kind"], g["key"], g["level"]) for g in rows(sessions, AcctGauge, AcctGauge.kind)
            } == {("isp", "isp-a", 0), ("nas", NAS, 0)}


def test_retransmissions_are_recognised_and_change_nothing(sessions):
    records = life("s1", T0, T0 + 900, rate_in=10) + life("s2", T0, T0 + 300)
    apply(sessions, records)
    before = table_state(sessions)
    again = apply(sessions, records, batch=2)
    assert (again.stored, again.duplicates) == (0, len(records))
    assert table_state(sessions) == before
    # Within one batch too, e.g. a retransmission with a longer Acct-Delay-Time.
    retry = rec("interim", "s3", T0 + 300, session_time=300, delay=5)
    result = apply(sessions, [rec("start", "s3", T0), retry, rec("interim", "s3", T0 + 300,
                                                                 session_time=300)])
    assert (result.stored, result.duplicates) == (2, 1)


def test_accounting_on_closes_what_that_nas_had_open_before(sessions):
    apply(sessions, [rec("start", "a", T0), rec("start", "b", T0 + 10),
                     rec("start", "c", T0, nas="192.0.2.2"),
                     rec("interim", "a", T0 + 300, session_time=300, octets_in=5)])
    on = rec("on", "", T0 + 400, user="", cause=None)
    late = rec("start", "d", T0 + 500)  # a session after the reboot
    result = apply(sessions, [on, late])
    assert result.closed == 2
    by_id = {r["acct_session_id"]: r for r in rows(sessions, RadAcct, RadAcct.id)}
    assert {k: (r["status"], r["closed_by"]) for k, r in by_id.items()} == {
        "a": ("closed", "nas-reboot"), "b": ("closed", "nas-reboot"), "c": ("open", None),
        "d": ("open", None)}
    assert (by_id["a"]["stop_time"], by_id["a"]["session_time"]) == (at(T0 + 400), 400)
    assert by_id["a"]["terminate_cause"] == "NAS-Reboot"
    assert {r["closed_by"] for r in rows(sessions, RoutingRecord, RoutingRecord.id)} == {
        "nas-reboot"}
    gauges = {(g["kind"], g["key"]): g["level"] for g in rows(sessions, AcctGauge, AcctGauge.key)}
    assert gauges[("nas", NAS)] == 1 and gauges[("nas", "192.0.2.2")] == 1
    history = rows(sessions, AcctHistory, AcctHistory.id)
    assert (history[-2]["status"], history[-2]["radacct_id"]) == ("on", 0)
    assert apply(sessions, [on]).duplicates == 1


def test_the_reaper_closes_silent_sessions_and_a_late_interim_reopens_them(sessions):
    apply(sessions, [rec("start", "quiet", T0), rec("start", "busy", T0 + 60),
                     rec("interim", "busy", T0 + 600, session_time=540)])
    assert tick(sessions, T0 + 900).reaped == 0  # the NAS's clock: 900 s after T0, not past
    # The NAS's own clock passes the quiet one's last record by more than 900 s.
    result = apply(sessions, [rec("interim", "busy", T0 + 901, session_time=841)])
    assert (result.reaped, result.closed) == (1, 0)
    quiet = rows(sessions, RadAcct, RadAcct.id)[0]
    assert (quiet["status"], quiet["closed_by"], quiet["terminate_cause"], quiet["stop_time"],
            quiet["flags"]) == ("closed", "reaper", "Stale-Session", at(T0), "reaped")
    assert rows(sessions, RoutingRecord, RoutingRecord.id)[0]["closed_by"] == "reaper"
    apply(sessions, [rec("interim", "quiet", T0 + 1500, session_time=1500, octets_in=9)])
    quiet = rows(sessions, RadAcct, RadAcct.id)[0]
    assert (quiet["status"], quiet["flags"]) == ("open", "reaped,reopened")
    assert rows(sessions, RoutingRecord, RoutingRecord.id) == []
    day = [r for r in rows(sessions, AcctRollup, AcctRollup.bucket) if r["grain"] == "day"][0]
    assert (day["starts"], day["stops"]) == (2, 0)  # the reaper's stop was taken back


def test_a_reused_session_id_starts_a_new_row(sessions):
    apply(sessions, [rec("start", "x", T0), rec("stop", "x", T0 + 60, session_time=60)])
    apply(sessions, [rec("start", "x", T0 + 3600)])
    old, new = rows(sessions, RadAcct, RadAcct.id)
    assert old["unique_id"].endswith(f"#{old['id']}") and "id-reused" in old["flags"]
    assert (new["status"], new["start_time"]) == ("open", at(T0 + 3600))
    assert len(rows(sessions, AcctHistory, AcctHistory.id)) == 3


@pytest.mark.parametrize("batch", [1, 2, None])
def test_a_reused_session_id_within_one_batch_keeps_both_sessions_whole(sessions, batch):
    apply(sessions, [rec("start", "x", T0), rec("stop", "x", T0 + 60, session_time=60,
                                                octets_in=7),
                     rec("start", "x", T0 + 3600), rec("stop", "x", T0 + 3700,
                                                       session_time=100, octets_in=9)],
          batch=batch)
    old, new = rows(sessions, RadAcct, RadAcct.start_time)
    assert (old["status"], old["stop_time"], old["input_octets"]) == ("closed", at(T0 + 60), 7)
    assert "id-reused" in old["flags"] and old["unique_id"] != new["unique_id"]
    assert (new["status"], new["start_time"], new["input_octets"]) == (
        "closed", at(T0 + 3600), 9)
    history = rows(sessions, AcctHistory, AcctHistory.id)
    assert [h["radacct_id"] for h in history] == [old["id"], old["id"], new["id"], new["id"]]
    routes = {r["radacct_id"]: r["input_octets"]
              for r in rows(sessions, RoutingRecord, RoutingRecord.id)}
    assert routes == {old["id"]: 7, new["id"]: 9}


def test_bad_input_is_stored_with_its_flags_and_counted(sessions):
    result = apply(sessions, [rec("interim", "x", T0 + 300, session_time=300, octets_in=50),
                              rec("interim", "x", T0 + 200, session_time=200),
                              rec("interim", "x", T0 + 600, session_time=600, octets_in=10,
                                  gigawords=True)])
    assert result.flags == {"no-start": 1, "out-of-order": 1, "negative": 1}
    assert [r["flags"] for r in rows(sessions, AcctHistory, AcctHistory.id)] == [
        "no-start", "out-of-order", "negative"]
    (row,) = rows(sessions, RadAcct, RadAcct.id)
    assert (row["input_octets"], row["flags"]) == (50, "no-start,out-of-order,negative")
    day = [r for r in rows(sessions, AcctRollup, AcctRollup.bucket) if r["grain"] == "day"][0]
    assert (day["records"], day["flagged"], day["input_octets"]) == (3, 3, 50)


# --- the scripted day ---------------------------------------------------------------------

EXPECTED_EVENTS = [
    # kind, start, end, peak, limit: computed by hand from scripted_day's docstring
    ("under_sessions", T0 + 1 * H, T0 + 2 * H, 1, 2),  # 1 online for an hour
    ("over_sessions", T0 + 2 * H + 1800, T0 + 2 * H + 2700, 3, 2),  # s3 made it 3
    ("under_sessions", T0 + 3 * H, T0 + 4 * H, 1, 2),
    # s4's 6,000,000 octets and s1's 300,000 in each 5 minutes from 04:00 to 04:20:
    # 6,300,000 * 8 / 300 s = 168 kbit/s against 80
    ("over_bandwidth", T0 + 4 * H, T0 + 4 * H + 1200, 168, 80),
    # s1 brought 10,800,000 by 04:00, 17,100,000 by 04:05 with s4's first 6,000,000, and
    # 23,400,000 by 04:10: the 5 minutes from 04:05 passed the volume. The month ends with
    # s1's 14,400,000 and s4's 24,000,000.
    ("over_volume", T0 + 4 * H + 300, None, 38_400_000, 20_000_000),
    ("under_sessions", T0 + 4 * H + 1200, None, 0, 2),  # 1, then 0 from 05:00: still going
]


def events(sessions):
    return [(e["kind"], int(e["start_time"].timestamp()),
             None if e["end_time"] is None else int(e["end_time"].timestamp()),
             e["peak"], e["limit_value"])
            for e in rows(sessions, UtilizationEvent, UtilizationEvent.start_time,
                          UtilizationEvent.kind)]


def test_scripted_day_events(sessions):
    add_lease(sessions)
    play_day(sessions, batch=None)
    assert events(sessions) == EXPECTED_EVENTS


@pytest.mark.parametrize("batch, ticks", [
    (1, ()),
    (7, [T0 + h * 600 for h in range(0, 24 * 6)]),  # ticks every 10 minutes of event time
    (50, [T0 + 4 * H + 1500, T0 + 12 * H]),
])
def test_a_replayed_day_gives_the_same_events_and_rollups_however_it_comes(
        sessions, engine, batch, ticks):
    add_lease(sessions)
    play_day(sessions, batch, ticks)
    assert events(sessions) == EXPECTED_EVENTS
    state = table_state(sessions)
    assert [r for r in state["acct_rollup"] if r["grain"] == "day"] == [
        dict(grain="day", bucket=at(T0), isp="isp-a", lease_id=1, nas=NAS, starts=4, stops=4,
             session_seconds=(4 * H + H + 900 + 1200), input_octets=38_400_000,
             output_octets=0, records=49 + 13 + 4 + 5, flagged=0),  # s1 ... s4
        dict(grain="day", bucket=at(T0), isp="isp-b", lease_id=0, nas=NAS, starts=1, stops=1,
             session_seconds=600, input_octets=0, output_octets=0, records=3, flagged=0)]


def test_the_lease_gauge_and_its_peaks(sessions):
    lease_id = add_lease(sessions)
    play_day(sessions, batch=None)
    peaks = {(p["grain"], int(p["bucket"].timestamp()) - T0): (p["peak"], p["last"])
             for p in rows(sessions, AcctPeak, AcctPeak.bucket)
             if p["kind"] == "lease" and p["key"] == str(lease_id)}
    assert peaks[("hour", 1 * H)] == (1, 1)
    assert peaks[("hour", 2 * H)] == (3, 2)  # 2, 3, 2
    assert peaks[("hour", 3 * H)] == (1, 1)  # 1 at 03:00 ...
    assert ("5min", 3 * H + 300) not in peaks  # ... then nothing changed until 04:00
    assert peaks[("hour", 4 * H)] == (2, 1)
    assert peaks[("day", 0)] == (3, 0)
    day = [r for r in rows(sessions, LeaseRollup, LeaseRollup.bucket) if r["grain"] == "day"]
    assert [(r["octets"], r["peak_5min_octets"]) for r in day] == [(38_400_000, 6_300_000)]


def test_random_batches_of_a_busy_stream_match_one_batch(sessions, engine, db_url):
    rng = random.Random(4)
    records = []
    for n in range(40):
        start = T0 + rng.randrange(0, 2 * H)
        records += life(f"r{n}", start, start + rng.randrange(60, 3 * H), rate_in=rng.randrange(9),
                        rate_out=rng.randrange(9), isp=rng.choice(["isp-a", "isp-b", None]),
                        nas=rng.choice([NAS, "bras-2"]))
    records.sort(key=lambda r: r.event_time)
    apply(sessions, records)
    whole = table_state(sessions)
    assert sum(r["input_octets"] for r in whole["acct_rollup"] if r["grain"] == "day") == sum(
        r["input_octets"] for r in whole["radacct"])
    for grain in GRAINS:  # every grain has the same totals
        assert sum(r["session_seconds"] for r in whole["acct_rollup"] if r["grain"] == grain) \
            == sum(r["session_time"] for r in whole["radacct"])


# --- attribution, time and bad times ----------------------------------------------------

def test_sessions_without_a_class_are_attributed_by_realm_then_by_the_lease_of_their_place(
        sessions):
    lease_id = add_lease(sessions)  # isp-a leases NAS
    realms = {"bob@isp-b.example": "isp-b", "carol@isp-a.example": "isp-a"}.get
    apply(sessions, [rec("start", "x", T0, user="bob@isp-b.example"),  # isp-b: no lease here
                     rec("start", "y", T0, user="carol@isp-a.example"),
                     rec("start", "z", T0, user="dave"),  # no Class, no realm: the place's
                     rec("start", "w", T0, user="erin", isp="isp-b")],  # a Class: as it says
          realm_isp=realms)
    got = {r["acct_session_id"]: (r["isp"], r["lease_id"], r["route_reason"])
           for r in rows(sessions, RadAcct, RadAcct.id)}
    assert got == {"x": ("isp-b", None, "attributed by realm"),
                   "y": ("isp-a", lease_id, "attributed by realm"),
                   "z": ("isp-a", lease_id, "attributed by lease"),
                   "w": ("isp-b", None, "realm")}


def test_an_implausible_time_is_stored_flagged_and_kept_out_of_the_figures(sessions):
    apply(sessions, life("s1", T0, T0 + 600, rate_in=10))
    before = table_state(sessions)
    # A replay of that day, today: an Interim stamped 2090 (its arrival time was used) ...
    far = rec("interim", "s2", T0 + 300, session_time=300, flags=("bad-timestamp",))
    far.event_time = T0 + 280 * 86_400
    # ... and an Interim before its session's start.
    early = rec("interim", "s1", T0 - 60, session_time=5, octets_in=1)
    result = apply(sessions, [rec("start", "s2", T0 + 100), far, early])
    assert result.flags["implausible-time"] == 2
    after = table_state(sessions)
    s1 = [r for r in after["radacct"] if r["acct_session_id"] == "s1"][0]
    assert (s1["input_octets"], s1["start_time"], "implausible-time" in s1["flags"]) == (
        6000, at(T0), True)
    s2 = [r for r in after["radacct"] if r["acct_session_id"] == "s2"][0]
    assert (s2["update_time"], s2["status"]) == (at(T0 + 100), "open")
    day = [r for r in after["acct_rollup"] if r["grain"] == "day"]
    assert (day[0]["records"], day[0]["flagged"], day[0]["session_seconds"],
            day[0]["input_octets"]) == (6, 2, 600, 6000)
    assert [h["flags"] for h in rows(sessions, AcctHistory, AcctHistory.id)][-2:] == [
        "bad-timestamp,implausible-time", "implausible-time"]
    assert before["acct_peak"] != after["acct_peak"]  # s2's start, only
    with sessions() as session:
        assert store.event_clock(session) == T0 + 600


@pytest.mark.parametrize("order", ["on first", "on last"])
def test_accounting_on_ends_sessions_within_the_threshold_and_finds_stale_ones(
        sessions, order):
    """NAS restarts at T0 + 3000. 'a' was last heard of 600 s before: it ends there.
    'b' 2000 s before: it was stale, and ends at its last record."""
    records = [rec("start", "a", T0 + 2400), rec("start", "b", T0 + 1000)]
    on = rec("on", "", T0 + 3000, user="", cause=None)
    apply(sessions, [on] + records if order == "on first" else records + [on], batch=1)
    got = {r["acct_session_id"]: (r["closed_by"], r["stop_time"])
           for r in rows(sessions, RadAcct, RadAcct.id)}
    assert got == {"a": ("nas-reboot", at(T0 + 3000)), "b": ("reaper", at(T0 + 1000))}


def test_an_accounting_on_after_the_reaper_ends_what_was_not_stale_yet_at_its_time(sessions):
    apply(sessions, [rec("start", "a", T0), rec("start", "b", T0, nas="192.0.2.2"),
                     rec("interim", "b", T0 + 2000, session_time=2000, nas="192.0.2.2")])
    # NAS went silent after T0: by T0 + 2000 it has been silent longer than 900 s
    (a,) = [r for r in rows(sessions, RadAcct, RadAcct.id) if r["acct_session_id"] == "a"]
    assert (a["closed_by"], a["stop_time"]) == ("reaper", at(T0))
    apply(sessions, [rec("on", "", T0 + 800, user="", cause=None)])  # it came late
    (a,) = [r for r in rows(sessions, RadAcct, RadAcct.id) if r["acct_session_id"] == "a"]
    assert (a["closed_by"], a["stop_time"], a["session_time"]) == (
        "nas-reboot", at(T0 + 800), 800)
    day = [r for r in rows(sessions, AcctRollup, AcctRollup.bucket)
           if r["grain"] == "day" and r["nas"] == NAS][0]
    assert (day["starts"], day["stops"], day["session_seconds"]) == (1, 1, 800)
