"""ISP selection: the chain, eligibility, failover, schedules and the score, as tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from decimal import Decimal

import pytest

from vpop.isp.model import Isp, TunnelEndpoint, UpstreamServer, Window
from vpop.isp.realms import parse_realm
from vpop.isp.selection import (IspHealth, SelectionPolicy, SelectionRequest, in_window,
                                policy_from_settings, score, select_isp)

UTC = dt.timezone.utc
# A Wednesday, 12:00 UTC.
NOON = dt.datetime(2030, 1, 2, 12, 0, tzinfo=UTC)


def server(name):
    return UpstreamServer(name=name, address="192.0.2.1", secret=b"s")


def isp(name, *, realms=(), numbers=(), **kw):
    kw.setdefault("servers", (server(f"{name}/1"),))
    kw.setdefault("ranked", True)  # these ISPs all take part in the ranked choice
    return Isp(name=name, realms=tuple(parse_realm(r) for r in realms), numbers=tuple(numbers),
               **kw)


ALPHA = isp("alpha", realms=["@alpha.example", "alpha/"], numbers=["4930100"],
            price_per_minute=Decimal("0.02"))
BETA = isp("beta", realms=["@beta.example"], numbers=["4930200"],
           price_per_minute=Decimal("0.01"))
GAMMA = isp("gamma", realms=[r"~(?P<user>[a-z]+)\.gamma"], mode="tunnel", servers=(),
            tunnels=(TunnelEndpoint(address="198.51.100.1"),), ranked=False)
ISPS = (ALPHA, BETA, GAMMA)
POLICY = SelectionPolicy(default_isp="alpha")


def request(user="u", called="", chosen=None, failover=False):
    return SelectionRequest(user_name=user, called_station_id=called, chosen_isp=chosen,
                            failover_allowed=failover)


def replaced(name, **changes):
    return tuple(dataclasses.replace(i, **changes) if i.name == name else i for i in ISPS)


DOWN = {"alpha": IspHealth(available=False)}

CASES = [
    # (id, request, isps, health, policy, isp, reason, upstream user name, available)
    ("suffix realm", request("joe@alpha.example"), ISPS, {}, POLICY,
     "alpha", "realm @alpha.example", "joe", True),
    ("suffix realm ignores case", request("joe@ALPHA.Example"), ISPS, {}, POLICY,
     "alpha", "realm @alpha.example", "joe", True),
    ("prefix realm", request("alpha/joe"), ISPS, {}, POLICY,
     "alpha", "realm alpha/", "joe", True),
    ("regex realm, user group", request("joe.gamma"), ISPS, {}, POLICY,
     "gamma", r"realm ~(?P<user>[a-z]+)\.gamma", "joe", True),
    ("realm before choice", request("joe@beta.example", chosen="alpha"), ISPS, {}, POLICY,
     "beta", "realm @beta.example", "joe", True),
    ("choice", request("joe", chosen="beta"), ISPS, {}, POLICY,
     "beta", "subscriber choice", "joe", True),
    ("choice before number", request("joe", called="4930100", chosen="beta"), ISPS, {},
     POLICY, "beta", "subscriber choice", "joe", True),
    ("number", request("joe", called="4930200"), ISPS, {}, POLICY,
     "beta", "dialled number 4930200", "joe", True),
    ("score: the cheaper one", request("joe"), ISPS, {}, SelectionPolicy(),
     "beta", "score 1.00 (quality 1.00, price 1.00, availability 1.00)", "joe", True),
    ("default when no ranked ISP", request("joe"), tuple(i for i in ISPS if i is GAMMA), {},
     SelectionPolicy(default_isp="gamma"), "gamma", "default", "joe", True),
    ("nothing decides", request("joe"), (GAMMA,), {}, SelectionPolicy(),
     None, "no ISP", "joe", True),
    # The chosen ISP cannot serve: without failover the decision names it, unavailable.
    ("choice down, no failover", request("joe", chosen="alpha"), ISPS, DOWN, POLICY,
     "alpha", "subscriber choice (unavailable: no server available)", "joe", False),
    ("choice down, failover", request("joe", chosen="alpha", failover=True), ISPS, DOWN,
     POLICY, "beta", "subscriber choice alpha: no server available, failing over; "
     "score 1.00 (quality 1.00, price 1.00, availability 1.00)", "joe", True),
    ("choice marked down, failover to the number",
     request("joe", chosen="alpha", called="4930200", failover=True),
     replaced("alpha", status="down"), {}, POLICY, "beta",
     "subscriber choice alpha: marked down, failing over; dialled number 4930200", "joe", True),
    ("choice disabled", request("joe", chosen="alpha"), replaced("alpha", status="disabled"),
     {}, POLICY, "alpha", "subscriber choice (unavailable: disabled)", "joe", False),
    ("unknown choice, no failover", request("joe", chosen="zeta"), ISPS, {}, POLICY,
     None, "subscriber choice (zeta: unknown ISP)", "joe", False),
    ("unknown choice, failover", request("joe", chosen="zeta", failover=True), ISPS, {},
     SelectionPolicy(chain=("choice", "default"), default_isp="beta"), "beta",
     "subscriber choice zeta: unknown ISP, failing over; default", "joe", True),
    ("realm down, no failover", request("joe@alpha.example"), ISPS, DOWN, POLICY,
     "alpha", "realm @alpha.example (unavailable: no server available)", "joe", False),
    ("realm down, failover keeps the bare user", request("joe@alpha.example", failover=True),
     ISPS, DOWN, SelectionPolicy(chain=("realm", "default"), default_isp="beta"),
     "beta", "realm @alpha.example alpha: no server available, failing over; default",
     "joe", True),
    ("number outside its schedule, failover",
     request("joe", called="4930200", failover=True),
     replaced("beta", schedule=(Window(weekdays=frozenset({5, 6}), start=dt.time(0),
                                       end=dt.time(0)),)),
     {}, SelectionPolicy(chain=("number", "score")), "alpha",
     "dialled number 4930200 beta: outside its schedule, failing over; "
     "score 1.00 (quality 1.00, price 1.00, availability 1.00)", "joe", True),
    ("default down: no ISP", request("joe"), ISPS, DOWN,
     SelectionPolicy(chain=("default",), default_isp="alpha"),
     None, "default alpha: no server available; no ISP", "joe", True),
    ("chain without realm ignores realms", request("joe@alpha.example", chosen="beta"), ISPS,
     {}, SelectionPolicy(chain=("choice",)), "beta", "subscriber choice", "joe", True),
    ("strip_realm off sends the name as received", request("joe@alpha.example"),
     replaced("alpha", strip_realm=False), {}, POLICY,
     "alpha", "realm @alpha.example", "joe@alpha.example", True),
    ("rewrite", request("alpha/joe"), replaced("alpha", rewrite="{user}@wholesale.alpha"),
     {}, POLICY, "alpha", "realm alpha/", "joe@wholesale.alpha", True),
    ("rewrite by choice, no realm", request("joe", chosen="alpha"),
     replaced("alpha", rewrite="vpop-{name}"), {}, POLICY,
     "alpha", "subscriber choice", "vpop-joe", True),
    ("tunnel ISPs need no server health", request("x.gamma"), ISPS,
     {"gamma": IspHealth(available=False)}, POLICY, "gamma",
     r"realm ~(?P<user>[a-z]+)\.gamma", "x", True),
]


@pytest.mark.parametrize(
    "req, isps, health, policy, expected, reason, upstream, available",
    [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_selection(req, isps, health, policy, expected, reason, upstream, available):
    decision = select_isp(req, isps, health, now=NOON, policy=policy)
    assert (decision.isp.name if decision.isp else None) == expected
    assert decision.reason == reason
    assert decision.user_name_upstream == upstream
    assert decision.available is available


# --- schedules -----------------------------------------------------------------------

WEEKDAYS = frozenset(range(5))
OFFICE = Window(weekdays=WEEKDAYS, start=dt.time(8), end=dt.time(20))
NIGHT = Window(weekdays=frozenset({4}), start=dt.time(22), end=dt.time(6))  # Fri 22 - Sat 6
WHOLE_DAY = Window(weekdays=frozenset({6}), start=dt.time(0), end=dt.time(0))


def at(day, hour, minute=0):
    # 2030-01-07 is a Monday: day 0.
    return dt.datetime(2030, 1, 7 + day, hour, minute, tzinfo=UTC)


WINDOWS = [
    (OFFICE, at(0, 8), True), (OFFICE, at(0, 7, 59), False), (OFFICE, at(4, 19, 59), True),
    (OFFICE, at(4, 20), False), (OFFICE, at(5, 12), False),
    (NIGHT, at(4, 21, 59), False), (NIGHT, at(4, 22), True), (NIGHT, at(4, 23, 59), True),
    (NIGHT, at(5, 0), True), (NIGHT, at(5, 5, 59), True), (NIGHT, at(5, 6), False),
    (NIGHT, at(3, 23), False), (NIGHT, at(0, 1), False),
    (WHOLE_DAY, at(6, 0), True), (WHOLE_DAY, at(6, 23, 59), True), (WHOLE_DAY, at(7, 0), False),
    # Another zone is read as UTC: 23:30 in UTC+2 on Monday is 21:30 UTC Monday.
    (OFFICE, dt.datetime(2030, 1, 7, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), False),
    (Window(weekdays=frozenset({6}), start=dt.time(23), end=dt.time(1)), at(0, 0, 30), True),
]


@pytest.mark.parametrize("window, now, inside", WINDOWS)
def test_windows(window, now, inside):
    assert in_window(window, now) is inside


def test_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        select_isp(request(), ISPS, {}, now=dt.datetime(2030, 1, 1), policy=POLICY)


# --- the score ----------------------------------------------------------------------

def test_score_parts():
    policy = SelectionPolicy(weight_quality=2, weight_price=1, weight_availability=1)
    result = score(IspHealth(success_rate=0.9, p50_ms=100.0, loss=0.5), cost=2.0, cheapest=1.0,
                   policy=policy)
    assert (result.quality, result.price, result.availability) == (0.45, 0.5, 0.5)
    assert result.total == pytest.approx((2 * 0.45 + 0.5 + 0.5) / 4)
    assert str(result) == "score 0.47 (quality 0.45, price 0.50, availability 0.50)"


def test_free_isps_all_score_full_price():
    assert score(IspHealth(), cost=0.0, cheapest=0.0, policy=POLICY).price == 1.0
    assert score(IspHealth(), cost=1.0, cheapest=0.0, policy=POLICY).price == 0.0


def test_out_of_range_measurements_are_clamped():
    result = score(IspHealth(success_rate=1.5, loss=-1.0, p50_ms=-5.0), 0.0, 0.0, POLICY)
    assert (result.quality, result.availability) == (1.0, 1.0)


SCORED = [
    # (health of alpha and beta, policy, winner): beta is cheaper (0.01 vs 0.02 per minute)
    ({}, SelectionPolicy(), "beta"),
    ({"beta": IspHealth(success_rate=0.5)}, SelectionPolicy(), "alpha"),
    ({"beta": IspHealth(p50_ms=400.0)}, SelectionPolicy(), "alpha"),
    ({"beta": IspHealth(loss=0.9)}, SelectionPolicy(weight_price=0.1), "alpha"),
    ({"beta": IspHealth(loss=0.9)}, SelectionPolicy(weight_price=1, weight_quality=0,
                                                    weight_availability=0), "beta"),
    ({"beta": IspHealth(available=False)}, SelectionPolicy(), "alpha"),
    ({}, SelectionPolicy(weight_price=0), "alpha"),  # equal: the first by name
]


@pytest.mark.parametrize("health, policy, winner", SCORED)
def test_ranked_choice(health, policy, winner):
    decision = select_isp(request(), ISPS, health, now=NOON, policy=policy)
    assert (decision.isp.name, decision.rule) == (winner, "score")
    # gamma is not ranked; the others are listed with their scores
    assert {c.isp for c in decision.candidates} == {"alpha", "beta"}
    best = max(c.score for c in decision.candidates if c.eligible)
    assert decision.reason.startswith(f"score {best:.2f}")


def test_ties_are_broken_by_the_rng():
    policy = SelectionPolicy(weight_price=0.0)  # alpha and beta are equal
    chosen = {select_isp(request(), ISPS, {}, now=NOON, policy=policy,
                         rng=random.Random(seed)).isp.name for seed in range(20)}
    assert chosen == {"alpha", "beta"}


def test_tie_margin_makes_close_scores_equal():
    health = {"beta": IspHealth(success_rate=0.99)}
    policy = SelectionPolicy(weight_price=0.0)
    assert select_isp(request(), ISPS, health, now=NOON, policy=policy).isp.name == "alpha"
    policy = SelectionPolicy(weight_price=0.0, tie_margin=0.01)
    chosen = {select_isp(request(), ISPS, health, now=NOON, policy=policy,
                         rng=random.Random(seed)).isp.name for seed in range(20)}
    assert chosen == {"alpha", "beta"}


def test_ineligible_candidates_are_listed_with_the_reason():
    isps = replaced("alpha", status="disabled")
    decision = select_isp(request(), isps, {}, now=NOON, policy=SelectionPolicy())
    notes = {(c.isp, c.eligible, c.note) for c in decision.candidates}
    assert ("alpha", False, "disabled") in notes
    assert decision.isp.name == "beta"


def test_longest_literal_realm_wins_over_a_shorter_one_and_regexes():
    outer = isp("outer", realms=["@example", r"~.*@sub\.example"])
    inner = isp("inner", realms=["@sub.example"])
    decision = select_isp(request("joe@sub.example"), (outer, inner), {}, now=NOON,
                          policy=POLICY)
    assert (decision.isp.name, decision.reason) == ("inner", "realm @sub.example")


@pytest.mark.parametrize("kwargs, words", [
    (dict(chain=("realm", "magic")), "chain must list"),
    (dict(chain=("realm", "realm")), "chain must list"),
    (dict(weight_quality=0, weight_price=0, weight_availability=0), "one must be positive"),
    (dict(weight_price=-1), "must not be negative"),
    (dict(latency_ms=0), "latency_ms"),
    (dict(tie_margin=-0.1), "tie_margin"),
])
def test_bad_policies(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SelectionPolicy(**kwargs)


def test_policy_from_settings():
    from vpop.config import IspSettings
    policy = policy_from_settings(IspSettings(chain=("number", "default"), default_isp="x",
                                              weight_price=0.7))
    assert (policy.chain, policy.default_isp, policy.weight_price) == (
        ("number", "default"), "x", 0.7)
    assert policy_from_settings(IspSettings()).default_isp is None
