"""Which ISP serves a session, and why: a pure function of the request, the ISPs and
their measured health.

The chain (``SelectionPolicy.chain``, configurable) is tried in order:

``realm``    the User-Name carries an ISP's realm ("realm @isp.example")
``choice``   the ISP the subscriber chose, else their profile's ("subscriber choice")
``number``   the dialled number (Called-Station-Id) is an ISP's ("dialled number 4930...")
``score``    the best score among the ranked ISPs that can serve now ("score 0.87 (...)")
``default``  the configured default ISP ("default")

and if none decides, no ISP ("no ISP"): the caller serves the subscriber locally or
rejects.

An ISP can serve when it is not disabled, not marked down, inside one of its
schedule windows (if it has any), and in proxy mode has an available server (in
tunnel mode at least one LNS). When the ISP a rule names cannot serve:

- if the subscriber's profile allows failover, the chain goes on with the next rule
  and the reason says so ("subscriber choice isp-a: marked down, failing over; ...");
- otherwise the decision is that ISP with ``available=False`` and the reason ends in
  "(unavailable: ...)": the caller rejects, and the NAS or user is told the ISP is
  unavailable rather than being moved silently to another.

The score of a ranked ISP is a weighted mean, each part from 0 to 1:

    quality      = success_rate * latency_ms / (latency_ms + p50_ms)
    price        = cheapest cost / this ISP's cost, the cost being that of a reference
                   session (session_minutes minutes, session_gb GB) at the ISP's prices;
                   1 for the cheapest (and for everyone when all are free)
    availability = 1 - loss
    score        = (w_q * quality + w_p * price + w_a * availability) / (w_q + w_p + w_a)

An ISP without measurements counts as perfect (``IspHealth()``): a new ISP must be
tried to be measured. The highest score wins; scores within ``tie_margin`` of the
best are equal, and among equals the ``rng`` picks (the first by name without one).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vpop.config import ISP_RULES
from vpop.isp.model import Isp, Window
from vpop.isp.realms import find_realm, realm_text, upstream_name

RULES = ISP_RULES  # the rules, in their default order (validated by the config)
_FROZEN = dict(frozen=True, slots=True, kw_only=True)
# Made per request: not frozen, as a frozen dataclass's __init__ pays a call per field.
_PER_REQUEST = dict(slots=True, kw_only=True)
_EPSILON = 1e-9


@dataclass(**_PER_REQUEST)
class SelectionRequest:
    user_name: str
    called_station_id: str = ""  # normalised like caller IDs; "" if absent
    chosen_isp: str | None = None  # the subscriber's choice, else their profile's ISP
    failover_allowed: bool = False  # the profile lets another ISP stand in


@dataclass(**_FROZEN)
class IspHealth:
    available: bool = True  # at least one upstream server alive
    success_rate: float = 1.0  # proxied requests answered, 0..1
    p50_ms: float | None = None  # median response time; None: not measured
    loss: float = 0.0  # unanswered exchanges (Status-Server and proxied), 0..1


@dataclass(**_FROZEN)
class SelectionPolicy:
    chain: tuple[str, ...] = RULES
    default_isp: str | None = None
    weight_quality: float = 0.5
    weight_price: float = 0.3
    weight_availability: float = 0.2
    latency_ms: float = 100.0  # the median response time that halves quality
    session_minutes: float = 60.0  # the reference session the price part compares
    session_gb: float = 1.0
    tie_margin: float = 0.0  # scores this close to the best count as equal

    def __post_init__(self) -> None:
        unknown = [rule for rule in self.chain if rule not in RULES]
        if unknown or len(set(self.chain)) != len(self.chain):
            raise ValueError(f"chain must list each of {', '.join(RULES)} at most once")
        weights = (self.weight_quality, self.weight_price, self.weight_availability)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("weights must not be negative, and one must be positive")
        if self.latency_ms <= 0 or self.session_minutes < 0 or self.session_gb < 0:
            raise ValueError("latency_ms must be positive, the reference session not negative")
        if self.tie_margin < 0:
            raise ValueError("tie_margin must not be negative")


def policy_from_settings(settings) -> SelectionPolicy:
    """From the [isp] settings (vpop.config.IspSettings)."""
    return SelectionPolicy(
        chain=tuple(settings.chain), default_isp=settings.default_isp or None,
        weight_quality=settings.weight_quality, weight_price=settings.weight_price,
        weight_availability=settings.weight_availability)


@dataclass(**_PER_REQUEST)
class Candidate:
    """An ISP a rule considered: why it could not serve, or its score."""
    isp: str
    rule: str
    eligible: bool
    note: str = ""  # the reason it cannot serve, or the score's parts
    score: float | None = None


@dataclass(**_PER_REQUEST)
class Decision:
    isp: Isp | None
    reason: str
    user_name_upstream: str  # the User-Name for the ISP: realm stripped or rewritten
    rule: str = ""  # the rule that decided; "" when none did
    # False: the ISP a rule named cannot serve and the subscriber may not fail over.
    # The caller rejects (isp may be None if the chosen ISP does not exist).
    available: bool = True
    candidates: tuple[Candidate, ...] = ()


_UNMEASURED = IspHealth()


def select_isp(request: SelectionRequest, isps: Sequence[Isp],
               health: Mapping[str, IspHealth], *, now: dt.datetime,
               policy: SelectionPolicy, rng: random.Random | None = None) -> Decision:
    """Walk the policy's chain; see the module docstring for the rules."""
    now = _utc(now)
    realm = find_realm(request.user_name, isps)
    user = realm.user if realm is not None else request.user_name
    notes: list[str] = []
    candidates: list[Candidate] = []

    def decide(isp: Isp, rule: str, label: str, *, available: bool = True) -> Decision:
        return Decision(isp=isp, reason="; ".join([*notes, label]), rule=rule,
                        user_name_upstream=upstream_name(isp, request.user_name, user),
                        available=available, candidates=tuple(candidates))

    for rule in policy.chain:
        if rule == "score":
            ranked = _ranked(isps, health, now, policy, candidates, rng)
            if ranked is not None:
                return decide(*ranked)
            continue
        named = _named(rule, request, isps, realm, policy)
        if named is None:
            continue
        name, isp, label = named
        why = "unknown ISP" if isp is None else unavailable(isp, health, now)
        candidates.append(Candidate(isp=name, rule=rule, eligible=not why, note=why))
        if not why:
            return decide(isp, rule, label)
        if rule == "default" or request.failover_allowed:
            notes.append(f"{label} {name}: {why}" +
                         (", failing over" if rule != "default" else ""))
            continue
        if isp is None:
            return Decision(isp=None, reason="; ".join([*notes, f"{label} ({name}: {why})"]),
                            rule=rule, user_name_upstream=request.user_name,
                            available=False, candidates=tuple(candidates))
        return decide(isp, rule, f"{label} (unavailable: {why})", available=False)
    return Decision(isp=None, reason="; ".join([*notes, "no ISP"]),
                    user_name_upstream=request.user_name, candidates=tuple(candidates))


def _named(rule: str, request: SelectionRequest, isps: Sequence[Isp], realm,
           policy: SelectionPolicy) -> tuple[str, Isp | None, str] | None:
    """(ISP name, the ISP or None if unknown, label) for the rules that name one ISP."""
    if rule == "realm":
        if realm is None:
            return None
        return realm.isp.name, realm.isp, f"realm {realm_text(realm.rule)}"
    if rule == "choice":
        name = request.chosen_isp
        return (name, _by_name(isps, name), "subscriber choice") if name else None
    if rule == "number":
        number = request.called_station_id
        if number:
            for isp in isps:
                if number in isp.numbers:
                    return isp.name, isp, f"dialled number {number}"
        return None
    name = policy.default_isp
    return (name, _by_name(isps, name), "default") if name else None


def _by_name(isps: Sequence[Isp], name: str) -> Isp | None:
    return next((isp for isp in isps if isp.name == name), None)


def unavailable(isp: Isp, health: Mapping[str, IspHealth], now: dt.datetime) -> str:
    """Why the ISP cannot serve at ``now``; "" if it can."""
    if isp.status == "disabled":
        return "disabled"
    if isp.status == "down":
        return "marked down"
    if isp.schedule and not in_schedule(isp.schedule, _utc(now)):
        return "outside its schedule"
    if isp.mode == "proxy":
        if not isp.servers:
            return "no RADIUS server"
        if not health.get(isp.name, _UNMEASURED).available:
            return "no server available"
    if isp.mode == "tunnel" and not isp.tunnels:
        return "no tunnel endpoint"
    return ""


def in_window(window: Window, now: dt.datetime) -> bool:
    """Window semantics: [start, end) on each listed weekday; when end <= start the
    window runs past midnight into the next day (so start == end is 24 hours)."""
    now = _utc(now)
    day, time = now.weekday(), now.time()
    if window.start < window.end:
        return day in window.weekdays and window.start <= time < window.end
    return ((day in window.weekdays and time >= window.start)
            or ((day - 1) % 7 in window.weekdays and time < window.end))


def in_schedule(schedule: Sequence[Window], now: dt.datetime) -> bool:
    """An empty schedule is always open."""
    return not schedule or any(in_window(window, now) for window in schedule)


@dataclass(**_FROZEN)
class Score:
    total: float
    quality: float
    price: float
    availability: float

    def __str__(self) -> str:
        return (f"score {self.total:.2f} (quality {self.quality:.2f}, price {self.price:.2f}, "
                f"availability {self.availability:.2f})")


def session_cost(isp: Isp, policy: SelectionPolicy) -> float:
    return (float(isp.price_per_minute) * policy.session_minutes
            + float(isp.price_per_gb) * policy.session_gb)


def score(health: IspHealth, cost: float, cheapest: float, policy: SelectionPolicy) -> Score:
    """The documented score (module docstring) of one ISP."""
    latency = 1.0 if health.p50_ms is None else \
        policy.latency_ms / (policy.latency_ms + max(0.0, health.p50_ms))
    quality = _unit(health.success_rate) * latency
    price = 1.0 if cost <= cheapest + _EPSILON else cheapest / cost
    availability = 1.0 - _unit(health.loss)
    weights = policy.weight_quality + policy.weight_price + policy.weight_availability
    total = (policy.weight_quality * quality + policy.weight_price * price
             + policy.weight_availability * availability) / weights
    return Score(total=total, quality=quality, price=price, availability=availability)


def _ranked(isps: Sequence[Isp], health: Mapping[str, IspHealth], now: dt.datetime,
            policy: SelectionPolicy, candidates: list[Candidate],
            rng: random.Random | None) -> tuple[Isp, str, str] | None:
    eligible: list[Isp] = []
    for isp in isps:
        if not isp.ranked:
            continue
        why = unavailable(isp, health, now)
        if why:
            candidates.append(Candidate(isp=isp.name, rule="score", eligible=False, note=why))
        else:
            eligible.append(isp)
    if not eligible:
        return None
    costs = {isp.name: session_cost(isp, policy) for isp in eligible}
    cheapest = min(costs.values())
    scored = []
    for isp in eligible:
        result = score(health.get(isp.name, _UNMEASURED), costs[isp.name], cheapest, policy)
        scored.append((isp, result))
        candidates.append(Candidate(isp=isp.name, rule="score", eligible=True,
                                    note=str(result), score=result.total))
    best = max(result.total for _, result in scored)
    tied = sorted(((isp, result) for isp, result in scored
                   if result.total >= best - policy.tie_margin - _EPSILON),
                  key=lambda pair: pair[0].name)
    isp, result = rng.choice(tied) if rng is not None and len(tied) > 1 else tied[0]
    return isp, "score", str(result)


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is dt.timezone.utc:  # what the request path passes: nothing to convert
        return now
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.timezone.utc)
