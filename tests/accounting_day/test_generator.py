"""The generated day holds what it is designed to hold, and keeps its decisions clear
of their edges, so that a replay's result does not hang on a few seconds."""

from __future__ import annotations

import tomllib
from collections import Counter, defaultdict

import pytest

from accounting_day.figures import (OPEN, THRESHOLD, WRAP, bucket, expected_figures, iso,
                                    parse, under_intervals)
from accounting_day.generator import (CLOSING_AT, DAY_END, DAY_START, DESIGN, MAX_DELTA,
                                      arrival_order, at, event_time, generate_day, session_key)

MARGIN = 60  # seconds every decision keeps from its edge


@pytest.fixture(scope="module")
def day():
    return generate_day()


@pytest.fixture(scope="module")
def figures(day):
    return expected_figures([*day.records, day.closing_record()], day.isps, day.leases)


def test_the_size_of_the_day(day, figures):
    assert 2000 <= len(figures.sessions) <= 2300
    assert 34_000 <= len(day.records) <= 38_000
    assert {r.nas for r in map(parse, day.records)} == {n.address for n in day.nases}
    times = [event_time(p) for p in day.records]
    assert times == sorted(times), "not in event-time order"
    assert DAY_START <= times[0] and times[-1] < DAY_END
    assert generate_day().records == day.records, "not the same day from the same seed"
    assert generate_day(seed=1).records != day.records


def test_sessions_and_ports(day, figures):
    ports = {n.address: n.ports for n in day.nases}
    for s in figures.sessions:
        assert 1 <= s.port <= ports[s.nas]
        assert s.records[0].status == "Start"
    ids = Counter((s.nas, s.session_id) for s in figures.sessions)
    assert max(ids.values()) == 1, "an Acct-Session-Id used twice on a NAS"
    ended = Counter(s.ended_by for s in figures.sessions)
    assert ended["open"] == 0, "the closing record decides every session"
    assert ended["nas-reboot"] >= 10 and ended["stale"] >= 100 and ended["stop"] >= 1500


def test_no_end_hangs_on_the_threshold(day, figures):
    """A session without a Stop whose NAS sends an Accounting-On after its last record:
    the Accounting-On comes well within the threshold or well beyond it."""
    reboots = defaultdict(list)
    for r in map(parse, [*day.records, day.closing_record()]):
        if r.status == "Accounting-On":
            reboots[r.nas].append(r.time)
    checked = 0
    for s in figures.sessions:
        after = [t for t in reboots[s.nas] if t >= s.last]
        if s.ended_by != "stop" and after:
            assert abs(after[0] - (s.last + THRESHOLD)) >= MARGIN, s.key
            checked += 1
    assert checked >= 50


def test_the_reboots(day, figures):
    short, long = day.reboots
    assert short.accounting_on - short.silent_from < THRESHOLD < (
        long.accounting_on - long.silent_from)
    for reboot in day.reboots:
        silent = [r for r in map(parse, day.records) if r.nas == reboot.nas
                  and reboot.silent_from <= r.time < reboot.accounting_on]
        assert not silent, f"{reboot.nas} is not silent"
    # The sessions the reboots cut off: at the Accounting-On after the short silence,
    # at their last record after the long one.
    ends = {(s.nas, s.session_id): (s.ended_by, s.end, s.last) for s in figures.sessions}
    cut = defaultdict(Counter)
    for planned in day.sessions:
        if planned.cut_at is not None:
            ended_by, end, last = ends[(planned.nas.address, planned.session_id)]
            reboot = short if planned.nas.address == short.nas else long
            assert end == (reboot.accounting_on if reboot is short else last)
            cut[reboot.nas][ended_by] += 1
    assert set(cut[short.nas]) == {"nas-reboot"} and cut[short.nas]["nas-reboot"] >= 10
    assert set(cut[long.nas]) == {"stale"} and cut[long.nas]["stale"] >= 20


def test_stale_sessions_while_their_nas_goes_on(day, figures):
    designed = {(s.nas.address, s.session_id) for s in day.sessions if s.stale_after}
    assert len(designed) >= 20
    newest_of = defaultdict(list)
    for r in map(parse, day.records):
        newest_of[r.nas].append(r.time)
    for s in figures.sessions:
        if (s.nas, s.session_id) in designed:
            assert s.ended_by == "stale" and s.end == s.last
            heard = [t for t in newest_of[s.nas] if t > s.last + THRESHOLD + MARGIN]
            assert heard, f"{s.key}: its NAS fell silent too"


def test_designed_utilization(day, figures):
    events = defaultdict(list)
    for e in figures.events:
        events[(e["lease"], e["kind"])].append(e)
    for lease, (begin, end) in DESIGN["over"].items():
        inside = [e for e in events[(lease, "over_sessions")]
                  if iso(at(begin)) <= e["start"] < iso(at(begin) + 900)]
        assert inside and inside[-1]["end"] <= iso(at(end) + 900), (lease, inside)
    for lease, begins in DESIGN["under"].items():
        recorded = [e["start"] for e in events[(lease, "under_sessions")] if e["end"]]
        assert [b for b in begins if any(iso(at(b)) <= s < iso(at(b) + 900) for s in recorded)
                ] == begins, (lease, recorded)
    leases = {lease.name: lease for lease in day.leases}
    for name, (begin, end) in DESIGN["short_under"].items():
        lease = leases[name]
        found = [(a, b) for a, b, _ in under_intervals(lease, figures)
                 if at(begin) <= a < at(end) and b != OPEN]
        assert found and all(b - a < lease.under_window for a, b in found), (name, found)
    # The day ends with every lease under-used, going on when the closing record comes.
    going_on = {e["lease"] for e in figures.events if e["kind"] == "under_sessions"
                and not e["end"]}
    assert going_on == {name for name, lease in leases.items() if lease.under_percent}


def test_no_under_use_hangs_on_its_window(day, figures):
    for lease in day.leases:
        for start, end, _ in under_intervals(lease, figures):
            lasted = (CLOSING_AT if end == OPEN else end) - start
            assert abs(lasted - lease.under_window) >= MARGIN, (lease.name, iso(start))


def test_counters_wrap_and_carry_gigawords(day, figures):
    gigawords = {n.address: n.gigawords for n in day.nases}
    wrapped_then_more = Counter()
    for s in figures.sessions:
        records = s.records
        for kind in ("input", "output"):
            values = getattr(s, kind)
            steps = [b - a for a, b in zip(values, values[1:])]
            assert all(0 <= step <= MAX_DELTA for step in steps), s.key
            if gigawords[s.nas]:
                assert all(r.gigawords for r in records[1:])
            else:
                assert not any(r.gigawords for r in records)
                first = next((n for n, v in enumerate(values) if v >= WRAP), None)
                if first is not None and len(values) - first >= 3:
                    wrapped_then_more[s.nas] += 1
    big = Counter(s.nas for s in figures.sessions if s.output[-1] >= WRAP)
    assert {nas for nas, on in gigawords.items() if not on} <= {
        nas for nas, n in wrapped_then_more.items() if n >= 5}
    assert all(big[nas] >= 5 for nas, on in gigawords.items() if on)


def test_routing_by_class_realm_and_lease(day, figures):
    realms = {realm: isp.name for isp in day.isps for realm in isp.realms}
    kinds = Counter()
    for s in figures.sessions:
        routed = s.records[0].routed_isp
        realm = "@" + s.user.split("@")[1] if "@" in s.user else None
        if routed and realm in realms and realms[realm] != routed:
            kinds["class against another realm"] += 1
        elif routed:
            kinds["class"] += 1
        elif realm in realms:
            kinds["realm"] += 1
        elif realm:
            kinds["unknown realm"] += 1
        else:
            kinds["neither"] += 1
    assert min(kinds.values()) >= 20 and len(kinds) == 5, kinds
    by_lease = Counter(s.lease for s in figures.sessions)
    assert min(by_lease.values()) >= 100, by_lease
    # On .13's ports 1-80, sessions with neither count against west-c before noon (the
    # whole NAS) and against north-c-ports after it (its port range).
    neither = [s for s in figures.sessions if s.nas == "192.0.2.13" and s.port <= 80
               and not s.records[0].routed_isp and "@" not in s.user]
    assert {s.lease for s in neither if s.start < at("12:00")} == {"west-c"}
    assert {s.lease for s in neither if s.start >= at("12:00")} == {"north-c-ports"}


def test_records_with_a_delay(day):
    delays = Counter(dict(p).get("Acct-Delay-Time") for p in day.records)
    assert sum(n for d, n in delays.items() if d) >= 1000 and delays[0] >= 500


def test_the_import_file(day):
    plan = tomllib.loads(day.import_toml())
    assert [i["name"] for i in plan["isp"]] == [i.name for i in day.isps]
    assert {i["mode"] for i in plan["isp"]} == {"local"}
    leases = {lease["name"]: lease for lease in plan["lease"]}
    assert leases["north-c-ports"]["ports"] == [{"nas": "192.0.2.13", "first": 1, "last": 80}]
    assert leases["north-c-ports"]["starts"].isoformat() == "2026-03-02T12:00:00+00:00"
    assert leases["south-b"]["under_window"] == 1800 and "under_percent" not in leases["east-d"]


def test_an_arrival_order(day):
    arrival = arrival_order(day.records)
    sent = arrival.records
    assert sent[0] == day.records[0]
    assert set(sent) == set(day.records) and len(sent) == len(day.records) + arrival.repeated
    places = defaultdict(list)
    for place, pairs in enumerate(sent):
        places[pairs].append(place)
    again = [p for p in places.values() if len(p) > 1]
    assert len(again) == arrival.repeated and all(len(p) == 2 and p[1] - p[0] <= 200
                                                  for p in again)
    assert 0.015 * len(day.records) <= arrival.repeated <= 0.025 * len(day.records)
    assert arrival.late >= 0.08 * len(day.records) and arrival.swapped == 30
    # Late by up to 600 s of event time (a swapped interim up to 300 s more).
    newest, lateness = 0, []
    first_seen: set = set()
    for pairs in sent:
        if pairs in first_seen:
            continue
        first_seen.add(pairs)
        t = event_time(pairs)
        newest = max(newest, t)
        lateness.append(newest - t)
    assert max(lateness) <= 900 and sum(1 for x in lateness if x > 300) >= 100
    # A session's records in order but for the swapped interims.
    order = defaultdict(list)
    for pairs in dict.fromkeys(sent):
        if (key := session_key(pairs)) is not None:
            order[key].append(event_time(pairs))
    reversed_pairs = sum(1 for times in order.values()
                         for a, b in zip(times, times[1:]) if a > b)
    assert reversed_pairs == arrival.swapped
    # What the replay sends gives the day's figures: order and repeats change nothing.
    assert expected_figures([*sent, day.closing_record()], day.isps, day.leases).rows(
        "lease") == expected_figures([*day.records, day.closing_record()], day.isps,
                                     day.leases).rows("lease")


def test_the_first_record_opens_the_first_bucket(day, figures):
    assert bucket(figures.first) == DAY_START
